"""Signing keys: rotation without a flag day, then revocation; a key on a PKCS#11 token (SoftHSM,
a software stand-in for a hardware token) certified by a CA with an expiry."""
from __future__ import annotations

import datetime
import shutil
import tarfile
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from ota import certs, client, keys, signing
from ota.bundle import Bundle, create_bundle, open_bundle
from ota_testlib import COMPATIBLE, SMALL_SEGMENT, Rig, SmallImages, install_stream, run_install

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")


def _bundle(tmp: Path, name: str, image: Path, signer: signing.Signer, trusted: Path,
            version: str = "2.0.0") -> Bundle:
    path = create_bundle(image, tmp / f"{name}.ffota", compatible=COMPATIBLE, version=version,
                         signing_key=signer, segment_size=SMALL_SEGMENT, certificates=signer.chain)
    return open_bundle(path, trusted_keys_dir=trusted)


def _trust_only(rig: Rig, *pems: Path) -> None:
    """The device's image trusts exactly these *.pem files."""
    folder = rig.device.root / "etc" / "keys"
    for old in folder.glob("*.pem"):
        old.unlink()
    for pem in pems:
        shutil.copy(pem, folder / pem.name)


def test_rotation_then_revocation(rig: Rig, small_images: SmallImages, tmp_path: Path) -> None:
    project = tmp_path / "keys"
    keys.keygen(project)
    before = _bundle(tmp_path, "before", small_images.v2, signing.load_signer(project), project)
    kept, _ = keys.rotate(project)
    assert sorted(p.name for p in project.glob("*.pem")) == sorted([kept.name, keys.PUBLIC_NAME])
    after = _bundle(tmp_path, "after", small_images.v2, signing.load_signer(project), project,
                    version="2.1.0")
    assert open_bundle(before.path, trusted_keys_dir=project)  # both trusted during the rotation
    # An image built during the rotation trusts both: it takes bundles signed with the new key.
    _trust_only(rig, *project.glob("*.pem"))
    assert client.deploy(rig.target, rig.options, after, show_progress=False, reboot=False).ok
    with pytest.raises(UserError, match="this is the current signing key: rotate first"):
        keys.revoke(project / keys.PUBLIC_NAME, project)
    keys.revoke(kept, project)
    with pytest.raises(UserError, match=r"bundle is signed by a revoked key \(revoked/"):
        open_bundle(before.path, trusted_keys_dir=project)
    assert open_bundle(after.path, trusted_keys_dir=project)


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> signing.TokenConfig:
    if not SOFTHSM.is_file():
        pytest.skip("softhsm2 is not installed (requirements/ota.apt)")
    pytest.importorskip("pkcs11")
    from fleetforge.tools import run_tool

    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    monkeypatch.setenv("FLEETFORGE_PKCS11_PIN", "4711")
    run_tool(["softhsm2-util", "--init-token", "--free", "--label", "fleet", "--pin", "4711",
              "--so-pin", "0815"], debian_package="softhsm2")
    return signing.TokenConfig(str(SOFTHSM), "fleet")


def test_a_key_on_a_token_certified_by_a_ca(rig: Rig, small_images: SmallImages, tmp_path: Path,
                                            token: signing.TokenConfig) -> None:
    project = tmp_path / "keys"
    signing.keygen_on_token(token, project)
    assert not (project / keys.PRIVATE_NAME).exists()  # the private key stays on the token
    ca = certs.create_ca(project)
    certs.certify(signing.load_signer(project).public_key(), project, days=30)
    signer = signing.load_signer(project)
    assert isinstance(signer, signing.TokenSigner) and len(signer.chain) == 1
    # The images trust the CA only, not the signing key.
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(ca, trusted)
    bundle = _bundle(tmp_path, "token", small_images.v2, signer, trusted)
    assert b"\ncert " in bundle.manifest_bytes
    _trust_only(rig, ca)
    result = client.deploy(rig.target, rig.options, bundle, show_progress=False, boot_timeout=30)
    assert result.ok, result.message

    # Another CA's certificate: refused on the host and on the device.
    other = tmp_path / "other"
    keys.keygen(other)
    certs.create_ca(other)
    certs.certify(signing.load_signer(other).public_key(), other)
    foreign = _bundle(tmp_path, "foreign", small_images.v1, signing.load_signer(other), other,
                      version="3.0.0")
    with pytest.raises(UserError, match="is not issued by a trusted CA"):
        open_bundle(foreign.path, trusted_keys_dir=trusted)
    answer = run_install(rig, install_stream(foreign))
    assert answer.status != 0 and "not issued by a CA this device trusts" in answer.stderr

    # An expired certificate: the host refuses it; a device checks dates only when told to
    # (CERT_CHECK_TIME=yes: robots often boot without a trusted clock).
    with pytest.raises(UserError, match="is valid from .* not now: certify the signing key again"):
        certs.verify_chain(list(signer.chain), certs.trusted_cas(trusted),
                when=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=31))
    certs.certify(signer.public_key(), project, days=1,  # ended nine days ago
                  start=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10))
    stale = create_bundle(small_images.v1, tmp_path / "stale.ffota", compatible=COMPATIBLE,
                          version="3.0.0", signing_key=signing.load_signer(project),
                          segment_size=SMALL_SEGMENT,
                          certificates=signing.load_signer(project).chain)
    with pytest.raises(UserError, match="not now: certify the signing key again"):
        open_bundle(stale, trusted_keys_dir=trusted)
    with open(rig.device.conf, "a") as conf:
        conf.write("CERT_CHECK_TIME=yes\n")
    with tarfile.open(stale) as tar:
        text, signature = (tar.extractfile(name).read() for name in ("manifest", "manifest.sig"))
    answer = run_install(rig, install_stream(bundle, manifest=text, signature=signature))
    assert answer.status != 0 and "not issued by a CA this device trusts (or has expired)" in answer.stderr

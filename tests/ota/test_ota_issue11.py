"""The attacks and failures of issue 11 that the OTA agent and client own, each replayed on a
loopback device (the shipped agent under busybox sh, behind a real sshd or dropbear). Each of them
succeeded against the agent before this change: the test names what held.

The image-level halves (every image records its version; revocations ship in the image) are in
test_ota_qemu.py, on the built image.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from fleetforge.tools import require_tool, run_tool
from ota import client, keys, loopback
from ota.bundle import Bundle, create_bundle, open_bundle
from ota.manifest import Artifact, Manifest
from ota.states import chain_is_valid
from ota_testlib import (COMPATIBLE, SMALL_SEGMENT, Rig, SmallImages, install_stream, run_install, small_image)


def _bundle(base: Path, name: str, image: Path, version: str, signer: Path, *,
            trusted: Path | None = None, security: int = 0) -> Bundle:
    path = create_bundle(image, base / f"{name}.ffota", compatible=COMPATIBLE, version=version,
                         signing_key=keys.load_private(signer), segment_size=SMALL_SEGMENT,
                         security_version=security)
    return open_bundle(path, trusted_keys_dir=trusted or signer)


def _cut_halfway(bundle: Bundle):  # type: ignore[no-untyped-def]
    def cut(sent: int) -> None:
        if sent > bundle.manifest.rootfs_size // 2:
            raise client.LinkCut()
    return cut


# 1. Never stuck ---------------------------------------------------------------------------------

def test_a_new_bundle_after_a_dropped_deploy_installs(rig: Rig, small_images: SmallImages,
                                                      ota_keys: Path, tmp_path: Path) -> None:
    # Before: `begin` of another bundle removed the manifest it had just received; every later
    # deploy failed, also after a reboot, until someone edited /persist/ota/state by hand.
    other = _bundle(tmp_path, "other", small_image(tmp_path / "v3.img", seed=3), "3.0.0", ota_keys)
    with pytest.raises(UserError):
        client.deploy(rig.target, rig.options, small_images.v2_bundle, show_progress=False,
                      on_progress=_cut_halfway(small_images.v2_bundle))
    rig.device.wait_unlocked()
    assert client.status(rig.target, rig.options).state == "Download"

    result = client.deploy(rig.target, rig.options, other, show_progress=False, boot_timeout=30)

    assert result.ok, result.message
    status = client.status(rig.target, rig.options)
    assert (status.booted, status.slot_versions["B"], status.result) == \
        ("B", "3.0.0", "committed 3.0.0 on slot B")
    assert chain_is_valid(status.history)
    log = (rig.device.state_dir / "log").read_text()
    assert "state Failure" in log and "state Cleanup" in log  # the old install was abandoned


def test_a_concurrent_deploy_is_refused_and_changes_nothing(rig: Rig, small_images: SmallImages,
                                                            ota_keys: Path, tmp_path: Path) -> None:
    other = _bundle(tmp_path, "other", small_image(tmp_path / "v3.img", seed=3), "3.0.0", ota_keys)
    halfway = threading.Event()
    proceed = threading.Event()

    def slow(sent: int) -> None:  # the first deploy holds the device mid-transfer
        if sent > small_images.v2_bundle.manifest.rootfs_size // 2 and not halfway.is_set():
            halfway.set()
            proceed.wait(30)

    first: list[client.DeployResult] = []
    worker = threading.Thread(target=lambda: first.append(client.deploy(
        rig.target, rig.options, small_images.v2_bundle, show_progress=False, reboot=False,
        on_progress=slow)))
    worker.start()
    try:
        assert halfway.wait(30)
        with pytest.raises(UserError, match=r"another update is in progress \(started "
                                            r"\d{4}-\d\d-\d\d .*UTC, install pid \d+\): wait for it"
                                            r".*fleetforge ota.rollback --abort"):
            client.deploy(rig.target, rig.options, other, show_progress=False)
        assert rig.device.slot_bytes("A", 4096) == small_images.v1.read_bytes()[:4096]
    finally:
        proceed.set()
        worker.join(60)
    assert first and first[0].ok  # the first update went on untouched
    status = client.status(rig.target, rig.options)
    assert (status.state, status.version) == ("Reboot", "2.0.0")
    assert rig.device.slot_bytes("B", small_images.v2.stat().st_size) == small_images.v2.read_bytes()


def test_abort_cancels_an_update_and_recover_settles_any_state(
        rig: Rig, small_images: SmallImages) -> None:
    bundle = small_images.v2_bundle
    with pytest.raises(UserError):
        client.deploy(rig.target, rig.options, bundle, show_progress=False,
                      on_progress=_cut_halfway(bundle))
    rig.device.wait_unlocked()
    assert "aborted the update to 2.0.0; slot A stays" in client.abort(rig.target, rig.options)
    status = client.status(rig.target, rig.options)
    assert (status.state, status.result, status.boot_left["B"]) == \
        ("Idle", "aborted by the operator", 0)
    assert status.history[-3:] == ["Failure", "Cleanup", "Idle"] and chain_is_valid(status.history)
    assert not (rig.device.state_dir / "pending.manifest").exists()

    # A boot step killed in the middle of a trial's health check (no reboot since): recover
    # finishes it instead of leaving the device waiting for a reboot that never comes.
    assert client.deploy(rig.target, rig.options, bundle, show_progress=False, reboot=False).ok
    rig.device.set_fault("VerifyReboot:kill")
    rig.device.power_cycle()  # boots B on trial; the boot step dies in VerifyReboot
    assert client.status(rig.target, rig.options).state == "VerifyReboot"
    with pytest.raises(UserError, match="in the trial boot of slot B .*fleetforge ota.recover"):
        client.rollback(rig.target, rig.options, reboot=False)
    message = client.recover(rig.target, rig.options)
    assert message == "state Idle; booted slot B; last result: committed 2.0.0 on slot B"
    assert client.status(rig.target, rig.options).committed == "B"


def test_boot_tries_stay_topped_up_while_a_download_waits(rig: Rig, small_images: SmallImages) -> None:
    # Before: with a download pending, the boot step left the tries of the booted slot alone,
    # so a few reboots used them up.
    with pytest.raises(UserError):
        client.deploy(rig.target, rig.options, small_images.v2_bundle, show_progress=False,
                      on_progress=_cut_halfway(small_images.v2_bundle))
    rig.device.wait_unlocked()
    for _ in range(4):
        rig.device.power_cycle()
    status = client.status(rig.target, rig.options)
    assert (status.state, status.booted, status.boot_left["A"]) == ("Download", "A", 3)


# 2. Paths from a signed manifest stay confined --------------------------------------------------

def _signed(manifest: Manifest, signer: Path) -> tuple[bytes, bytes]:
    text = manifest.render()
    return text, keys.load_private(signer).sign(text)


def test_a_signed_manifest_cannot_write_outside_the_artifacts(rig: Rig, small_images: SmallImages,
                                                             ota_keys: Path, tmp_path: Path) -> None:
    payload = b"not where it belongs\n"
    evil = Artifact("model", "file", len(payload), hashlib.sha256(payload).hexdigest(),
                    "../../../owned")  # from .store/NAME@ID.tmp: /persist/owned
    base = small_images.v2_bundle.manifest
    manifest = replace(base, rootfs_size=0, rootfs_sha256="", segment_size=0, segments=(),
                       chunks=(), artifacts=(evil,))
    text, signature = _signed(manifest, ota_keys)
    with pytest.raises(UserError, match=r"file name '\.\./\.\./\.\./owned' must be one plain name"):
        Manifest.parse(text, where="evil")  # the host refuses it
    # A client that skips that check: the device refuses it too, and nothing is written.
    answer = run_install(rig, install_stream(small_images.v2_bundle, manifest=text,
                                             signature=signature,
                                             records=f"ART model {len(payload)}\n".encode() + payload))
    assert answer.status != 0
    assert "artifact model: its file name '../../../owned' is not a plain name" in answer.stderr
    assert not list(rig.device.root.rglob("owned"))
    assert client.status(rig.target, rig.options).history == []

    # A file set (a tar) whose entries leave the artifact: a link out, then a file through it.
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.USTAR_FORMAT) as out:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        out.addfile(link)
        through = tarfile.TarInfo("escape/owned")
        through.size = len(payload)
        out.addfile(through, io.BytesIO(payload))
    data = tar.getvalue()
    tree = Artifact("labels", "tree", len(data), hashlib.sha256(data).hexdigest(), "-")
    text, signature = _signed(replace(manifest, artifacts=(tree,)), ota_keys)
    answer = run_install(rig, install_stream(small_images.v2_bundle, manifest=text,
                                             signature=signature,
                                             records=f"ART labels {len(data)}\n".encode() + data))
    assert answer.status != 0
    assert "artifact labels is refused: an entry that is not a file or a directory: escape" \
        in answer.stderr
    assert not (tmp_path / "owned").exists()
    assert not list((rig.device.persist / "artifacts" / ".store").iterdir())


# 3. Host keys: the whole known set, whatever the key type ---------------------------------------

def test_a_host_that_switches_key_type_is_refused(rig: Rig) -> None:
    # Before: known_hosts held an Ed25519 key; the device (or a man in the middle) answered with
    # ECDSA, and --trust-new-host accepted and recorded it (only keys of one type were compared).
    known_before = rig.options.known_hosts.read_text()
    assert " ssh-ed25519 " in known_before
    port = rig.server.port
    rig.server.stop()
    impostor = rig.server.workdir / "ecdsa"
    impostor.mkdir()
    ecdsa_key = impostor / "ssh_host_ecdsa_key"
    run_tool(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", ecdsa_key],
             debian_package="openssh-client")
    config = (rig.server.workdir / "sshd_config").read_text().replace(
        f"HostKey {rig.server.workdir / 'ssh_host_ed25519_key'}", f"HostKey {ecdsa_key}")
    (impostor / "sshd_config").write_text(config)
    process = subprocess.Popen([require_tool("sshd", "openssh-server"), "-D", "-e", "-f",
                                str(impostor / "sshd_config")], stderr=subprocess.DEVNULL)
    try:
        loopback.wait_listening(port, process, impostor / "sshd.log")
        with pytest.raises(UserError, match="HOST KEY CHANGED: the device offers ecdsa-sha2-nistp256 "
                                            "SHA256:.*none of the known ssh-ed25519 SHA256:"):
            client.status(rig.target, replace(rig.options, trust_new_host=True))
        assert rig.options.known_hosts.read_text() == known_before  # nothing recorded
    finally:
        process.terminate()
        process.wait()


# 5. Revocation, on the host and on the device ---------------------------------------------------

def test_a_revoked_key_is_refused_on_host_and_device(either_rig: Rig, small_images: SmallImages,
                                                     ota_keys: Path, tmp_path: Path) -> None:
    rig = either_rig  # the signature checked by ota-receive, and by openssl
    old = tmp_path / "old"
    keys.keygen(old)
    bundle = _bundle(tmp_path, "old-signed", small_images.v2, "2.0.0", old)
    # The device trusts the old key (an image built before the rotation) ...
    device_keys = rig.device.root / "etc" / "keys"
    (device_keys / "old.pem").write_bytes((old / keys.PUBLIC_NAME).read_bytes())
    host_keys = tmp_path / "host-keys"
    host_keys.mkdir()
    (host_keys / "old.pem").write_bytes((old / keys.PUBLIC_NAME).read_bytes())
    (host_keys / keys.PUBLIC_NAME).write_bytes((ota_keys / keys.PUBLIC_NAME).read_bytes())
    keys.revoke(host_keys / "old.pem", host_keys)
    # ... the host refuses it once it is revoked,
    with pytest.raises(UserError, match=r"bundle is signed by a revoked key \(revoked/old.pem\)"):
        open_bundle(bundle.path, trusted_keys_dir=host_keys)
    # ... and so does a device whose image ships the revocation (keys/revoked/ baked in),
    (device_keys / "revoked").mkdir()
    (device_keys / "revoked" / "rotated-out.pem").write_bytes(
        (host_keys / "revoked" / "old.pem").read_bytes())
    answer = run_install(rig, install_stream(bundle))
    assert answer.status != 0
    assert "bundle is signed by a revoked key (old.pem)" in answer.stderr
    # ... also after falling back to an image that does not know the revocation yet: the boot
    # step kept it on /persist.
    rig.device.power_cycle()
    (device_keys / "revoked" / "rotated-out.pem").unlink()
    answer = run_install(rig, install_stream(bundle))
    assert answer.status != 0 and "signed by a revoked key" in answer.stderr
    assert client.status(rig.target, rig.options).history == []


# 6. Anti-rollback that survives reinstalling an old signed release ------------------------------

def test_security_version_floor_survives_rollback_and_downgrade(
        rig: Rig, small_images: SmallImages, ota_keys: Path, tmp_path: Path) -> None:
    v2 = _bundle(tmp_path, "v2", small_images.v2, "2.0.0", ota_keys, security=2)
    old = _bundle(tmp_path, "v1", small_images.v1, "1.0.0", ota_keys, security=1)
    newer_but_vulnerable = _bundle(tmp_path, "v3", small_image(tmp_path / "v3.img", seed=3),
                                   "3.0.0", ota_keys, security=1)
    assert client.deploy(rig.target, rig.options, v2, show_progress=False, boot_timeout=30).ok
    assert client.status(rig.target, rig.options).security_floor == 2
    refused = r"bundle security version 1 is below this device's floor 2 \(anti-rollback"
    with pytest.raises(UserError, match=refused):
        client.deploy(rig.target, rig.options, old, show_progress=False, allow_downgrade=True)
    with pytest.raises(UserError, match=refused):
        client.deploy(rig.target, rig.options, newer_but_vulnerable, show_progress=False)
    # Back on the old slot (its image says security version 0): the floor stays.
    assert "slot A will boot next" in client.rollback(rig.target, rig.options, reboot=False)
    rig.device.power_cycle()
    assert client.status(rig.target, rig.options).booted == "A"
    with pytest.raises(UserError, match=refused):
        client.deploy(rig.target, rig.options, old, show_progress=False, allow_downgrade=True)


# 8. Throughput: one command per update -----------------------------------------------------------

def test_a_deploy_is_one_install_command_on_one_connection(rig: Rig, small_images: SmallImages) -> None:
    # Before: begin, index, receive, one receive-artifact per artifact and activate, each a
    # channel and a round trip of its own over paramiko (AES-CTR + HMAC in Python). Now the
    # system's OpenSSH client (the same as the scp / ssh-cat baseline) runs one `install`.
    bundle = small_images.v2_bundle
    with rig.options.connect(rig.target) as conn:
        result = client.transfer(conn, rig.options, bundle, show_progress=False)
    assert result.ok and rig.device.calls() == ["install"]
    assert result.sent_bytes == bundle.manifest.rootfs_size


# 8. Pull mode: robots behind NAT update themselves from any static HTTP server ------------------

@pytest.fixture
def http_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """`python3 -m http.server` on loopback (a stand-in for the user's static file server); its
    log lists every file a device fetched."""
    root = tmp_path / "www"
    root.mkdir()
    port = loopback.free_port()
    log = tmp_path / "http.log"
    process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                str(port), "--directory", str(root)],
                               stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    loopback.wait_listening(port, process, log)
    yield root, f"http://127.0.0.1:{port}", log
    process.terminate()
    process.wait()


def _pull(rig: Rig, url: str, *args: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    return rig.device.run_agent("pull", url, *args, timeout=timeout)


def test_pull_installs_resumes_and_fetches_only_the_delta(
        rig: Rig, http_server, small_images: SmallImages, ota_keys: Path, tmp_path: Path) -> None:
    from ota.publish import publish

    root, url, log = http_server
    published = publish(small_images.v2_bundle, root, channel="robots")
    assert published.channel == root / "robots"
    # A link that drops in the middle: the pull is killed after two segments.
    rig.device.set_fault("Verify:kill")  # once everything is downloaded
    first = _pull(rig, f"{url}/robots")
    assert first.returncode != 0
    status = client.status(rig.target, rig.options)
    assert status.state == "Verify"
    segments = small_images.v2_bundle.manifest.segment_count
    assert status.seg_done == segments
    fetched_before = log.read_text().count("GET /store/")
    # The rerun resumes: nothing is fetched twice.
    second = _pull(rig, f"{url}/robots", "--reboot")
    assert second.returncode == 0, second.stderr
    assert log.read_text().count("GET /store/") == fetched_before
    assert b"DONE activated slot B version 2.0.0" in second.stdout
    status = client.wait_for_outcome(rig.target, rig.options, timeout=30)  # it rebooted itself
    assert (status.booted, status.result) == ("B", "committed 2.0.0 on slot B")
    assert rig.device.slot_bytes("B", small_images.v2.stat().st_size) == small_images.v2.read_bytes()
    assert _pull(rig, f"{url}/robots").stdout.strip().endswith(b"DONE up to date (version 2.0.0)")

    # v3 changes one 32 KiB block of v2: the device fetches about that, not the image.
    image = bytearray(small_images.v2.read_bytes())
    image[300_000:300_000 + 32768] = bytes(32768)
    (tmp_path / "v3.img").write_bytes(bytes(image))
    v3 = _bundle(tmp_path, "v3", tmp_path / "v3.img", "3.0.0", ota_keys)
    publish(v3, root, channel="robots")
    before = log.read_text().count("\n")
    third = _pull(rig, f"{url}/robots", "--reboot")
    assert third.returncode == 0, third.stderr
    fetched = int(third.stdout.split(b"FETCHED ")[1].split()[0])
    assert 0 < fetched < 0.25 * len(image), fetched
    assert "GET /store/" in "".join(log.read_text().splitlines(True)[before:])
    assert client.wait_for_outcome(rig.target, rig.options, timeout=30).slot_versions["A"] == "3.0.0"
    assert rig.device.slot_bytes("A", len(image)) == bytes(image)


def test_pull_refuses_what_the_server_tampered_with(rig: Rig, http_server, small_images: SmallImages,
                                                   ota_keys: Path, tmp_path: Path) -> None:
    from ota.publish import publish

    root, url, _ = http_server
    publish(small_images.v2_bundle, root, channel="robots")
    digest = small_images.v2_bundle.manifest.segments[1]
    blob = bytearray((root / "store" / digest).read_bytes())
    blob[100] ^= 0xFF
    (root / "store" / digest).write_bytes(bytes(blob))
    answer = _pull(rig, f"{url}/robots")
    assert answer.returncode != 0
    assert b"segment 1 does not match the signed manifest" in answer.stderr
    assert rig.device.slot_bytes("A", 4096) == small_images.v1.read_bytes()[:4096]
    status = client.status(rig.target, rig.options)
    assert status.booted == "A" and status.boot_left["B"] == 0  # never activated
    rogue = tmp_path / "rogue"
    keys.keygen(rogue)
    publish(_bundle(tmp_path, "rogue", small_images.v2, "9.0.0", rogue), root, channel="robots")
    answer = _pull(rig, f"{url}/robots")
    assert b"bundle signature does not verify against any trusted key" in answer.stderr

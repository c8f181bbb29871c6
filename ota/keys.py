"""OTA signing keys: create, rotate and revoke the Ed25519 pair; load trusted keys; check manifests.

The keys folder (`keys/`, fleetforge.paths.keys_dir): `ota-signing.key` (the private key bundles are
signed with; or `ota-signing.p11`: the key is on a PKCS#11 token, ota/signing.py), every `*.pem`
beside it is trusted and baked into images with feature/ota: a public key (several: key rotation)
or a CA certificate (ota/certs.py: then any key it certifies, while its certificate is valid), and
`revoked/*.pem` are public keys no build and no device trusts any more (also baked in; devices
keep every revocation they ever saw on /persist).
This module is the one key generator: the feature/ota build hook runs `python -m ota.keys create`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleetforge.errors import UserError
from fleetforge.paths import keys_dir as keys_dir_default

from ota import certs

PRIVATE_NAME = "ota-signing.key"
PUBLIC_NAME = "ota-signing.pem"
REVOKED_DIR = "revoked"


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    tmp.rename(path)


def keygen(keys_dir: Path | None = None, *, force: bool = False) -> Path:
    """Create the signing key pair; refuses to replace one unless `force`."""
    keys_dir = keys_dir or keys_dir_default()
    private_path = keys_dir / PRIVATE_NAME
    if private_path.exists() and not force:
        raise UserError("a signing key already exists (rotate it with: fleetforge ota.keygen "
                        "--rotate)", where=str(private_path))
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys_dir.chmod(0o700)
    key = Ed25519PrivateKey.generate()
    _write_private(private_path, key)
    (keys_dir / PUBLIC_NAME).write_bytes(public_pem(key.public_key()))
    return private_path


def ensure_key(keys_dir: Path) -> bool:
    """Create the signing key pair unless the folder already trusts a key; True if created."""
    if any(keys_dir.glob("*.pem")):
        return False
    keygen(keys_dir)
    return True


def retire(keys_dir: Path | None = None) -> Path:
    """The first half of a rotation: the current public key stays trusted as
    `ota-signing-<time>.pem` (images built now trust it and the next key), the private key file,
    its certificate and token settings go. Returns the kept public key."""
    keys_dir = keys_dir or keys_dir_default()
    old_public = keys_dir / PUBLIC_NAME
    if not old_public.is_file():
        raise UserError("no signing key to rotate (create one: fleetforge ota.keygen)",
                        where=str(old_public))
    kept = keys_dir / f"ota-signing-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}.pem"
    old_public.rename(kept)
    for name in (PRIVATE_NAME, "ota-signing.crt", "ota-signing.p11"):
        (keys_dir / name).unlink(missing_ok=True)
    return kept


def rotate(keys_dir: Path | None = None) -> tuple[Path, Path]:
    """A new signing key file after `retire`. Returns (old public, new private)."""
    keys_dir = keys_dir or keys_dir_default()
    kept = retire(keys_dir)
    return kept, keygen(keys_dir)


def revoke(public: Path, keys_dir: Path | None = None) -> Path:
    """Move a trusted public key to revoked/: no bundle signed with it is accepted any more, by
    this host and by every image built from now on (and devices that ran one, forever)."""
    keys_dir = keys_dir or keys_dir_default()
    key = load_public(public)
    if (keys_dir / PUBLIC_NAME).is_file() and _same(key, _load_public(keys_dir / PUBLIC_NAME)):
        raise UserError("this is the current signing key: rotate first (fleetforge ota.keygen "
                        "--rotate), then revoke the old one", where=str(public))
    revoked = keys_dir / REVOKED_DIR
    revoked.mkdir(parents=True, exist_ok=True)
    target = revoked / public.name
    target.write_bytes(public_pem(key))
    if public.resolve().parent == keys_dir.resolve():
        public.unlink()
    return target


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(keys_dir: Path | None = None) -> Ed25519PrivateKey:
    keys_dir = keys_dir or keys_dir_default()
    path = keys_dir / PRIVATE_NAME
    if not path.is_file():
        raise UserError("no OTA signing key (run: fleetforge ota.keygen)", where=str(path))
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError("the OTA signing key is not Ed25519", where=str(path))
    return key


def _load_public(path: Path) -> Ed25519PublicKey | None:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, OSError):
        return None
    return key if isinstance(key, Ed25519PublicKey) else None


def load_public(path: Path) -> Ed25519PublicKey:
    key = _load_public(path)
    if key is None:
        raise UserError("not an Ed25519 public key (PEM)", where=str(path))
    return key


def _same(a: Ed25519PublicKey | None, b: Ed25519PublicKey | None) -> bool:
    return a is not None and b is not None and public_pem(a) == public_pem(b)


def revoked_keys(keys_dir: Path | None = None) -> list[tuple[Path, Ed25519PublicKey]]:
    keys_dir = keys_dir or keys_dir_default()
    found = ((p, _load_public(p)) for p in sorted((keys_dir / REVOKED_DIR).glob("*.pem")))
    return [(p, k) for p, k in found if k is not None]


def load_trusted(keys_dir: Path | None = None) -> list[Ed25519PublicKey]:
    """The trusted public keys (`*.pem`), less any that is revoked (whatever its file name)."""
    keys_dir = keys_dir or keys_dir_default()
    revoked = [k for _, k in revoked_keys(keys_dir)]
    trusted = (_load_public(p) for p in sorted(keys_dir.glob("*.pem")))
    return [k for k in trusted if k is not None and not any(_same(k, r) for r in revoked)]


def _verifies(key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, data)
        return True
    except InvalidSignature:
        return False


def signature_ok(data: bytes, signature: bytes, trusted: list[Ed25519PublicKey]) -> bool:
    return any(_verifies(key, data, signature) for key in trusted)


def check_signature(data: bytes, signature: bytes, keys_dir: Path | None, *, where: str) -> None:
    """Refuse (UserError) unless a trusted, unrevoked key signed `data`: one of the trusted keys,
    or a key whose certificate (the manifest's `cert` lines) leads to a trusted CA and is valid
    now. The message says why."""
    folder = keys_dir or keys_dir_default()
    revoked = revoked_keys(folder)
    chain = certs.manifest_chain(data)
    cas = certs.trusted_cas(folder) if chain else []
    if cas:
        leaf = certs.verify_chain(chain, cas)
        for path, key in revoked:
            if _same(leaf, key):
                raise UserError(f"bundle is signed by a revoked key ({REVOKED_DIR}/{path.name}): "
                                "sign it again with the current key", where=where)
        if _verifies(leaf, data, signature):
            return
        raise UserError("bundle signature does not match its certificate", where=where)
    trusted = load_trusted(folder)
    if signature_ok(data, signature, trusted):
        return
    for path, key in revoked:
        if _verifies(key, data, signature):
            raise UserError(f"bundle is signed by a revoked key ({REVOKED_DIR}/{path.name}): "
                            "sign it again with the current key", where=where)
    if not trusted:
        raise UserError("no trusted OTA public key to check the bundle with (run: fleetforge "
                        "ota.keygen)", where=str(folder))
    raise UserError("bundle signature does not verify against any trusted key", where=where)


def main(argv: list[str] | None = None) -> int:
    """`python -m ota.keys create DIR`: the build hook's way to get a key (one generator)."""
    parser = argparse.ArgumentParser(prog="python -m ota.keys")
    parser.add_argument("action", choices=["create"])
    parser.add_argument("keys_dir", type=Path)
    args = parser.parse_args(argv)
    if ensure_key(args.keys_dir):
        print(f"created the OTA signing key {args.keys_dir / PRIVATE_NAME} "
              "(see: fleetforge ota.keygen)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""OTA signing keys: create the Ed25519 pair, load it, sign and check manifests (host side)."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleetforge.errors import UserError
from fleetforge.paths import keys_dir as keys_dir_default

# Private key `ota-signing.key`; every `*.pem` beside it is a trusted public key that builds with
# feature/ota bake into the image (several allowed: key rotation).
PRIVATE_NAME = "ota-signing.key"
PUBLIC_NAME = "ota-signing.pem"


def keygen(keys_dir: Path | None = None, *, force: bool = False) -> Path:
    keys_dir = keys_dir or keys_dir_default()
    private_path = keys_dir / PRIVATE_NAME
    if private_path.exists() and not force:
        raise UserError("a signing key already exists (pass --force to replace it)",
                        where=str(private_path))
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys_dir.chmod(0o700)
    key = Ed25519PrivateKey.generate()
    tmp = private_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    tmp.rename(private_path)
    (keys_dir / PUBLIC_NAME).write_bytes(public_pem(key.public_key()))
    return private_path


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


def load_trusted(keys_dir: Path | None = None) -> list[Ed25519PublicKey]:
    keys_dir = keys_dir or keys_dir_default()
    keys = []
    for path in sorted(keys_dir.glob("*.pem")):
        key = serialization.load_pem_public_key(path.read_bytes())
        if isinstance(key, Ed25519PublicKey):
            keys.append(key)
    return keys


def signature_ok(data: bytes, signature: bytes, trusted: list[Ed25519PublicKey]) -> bool:
    for key in trusted:
        try:
            key.verify(signature, data)
            return True
        except InvalidSignature:
            continue
    return False

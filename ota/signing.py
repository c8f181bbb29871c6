"""Who signs bundles: the Ed25519 key file (keys/ota-signing.key), or a key on a PKCS#11 token
(keys/ota-signing.p11 says which; the private key never leaves the token), each with its
certificate chain when the key is certified (ota/certs.py).

keys/ota-signing.p11 (TOML):
    module = "/usr/lib/softhsm/libsofthsm2.so"   # the token's PKCS#11 library
    token = "fleet"                                # token label
    key = "ota-signing"                            # key label on the token
    pin_env = "FLEETFORGE_PKCS11_PIN"              # where the user PIN comes from
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleetforge.errors import UserError
from fleetforge.paths import keys_dir as keys_dir_default

from ota import certs, keys

TOKEN_NAME = "ota-signing.p11"
DEFAULT_PIN_ENV = "FLEETFORGE_PKCS11_PIN"
ED25519_OID = "1.3.101.112"


class Signer(Protocol):
    """Signs a manifest; `chain` is its certificate chain (DER, leaf first), maybe empty."""

    chain: tuple[bytes, ...]

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey: ...


@dataclass(frozen=True)
class FileSigner:
    key: Ed25519PrivateKey
    chain: tuple[bytes, ...] = ()

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def public_key(self) -> Ed25519PublicKey:
        return self.key.public_key()


@dataclass(frozen=True)
class TokenConfig:
    """keys/ota-signing.p11: where the signing key lives."""

    module: str
    token: str
    key: str = "ota-signing"
    pin_env: str = DEFAULT_PIN_ENV

    @classmethod
    def load(cls, path: Path) -> TokenConfig:
        try:
            data = tomllib.loads(path.read_text())
            return cls(**{k: str(v) for k, v in data.items()})
        except (tomllib.TOMLDecodeError, TypeError) as error:
            raise UserError(f"bad token settings ({error}); expected module, token, key, "
                            "pin_env", where=str(path)) from None

    def render(self) -> str:
        return (f'module = "{self.module}"\ntoken = "{self.token}"\nkey = "{self.key}"\n'
                f'pin_env = "{self.pin_env}"\n')

    def session(self):  # type: ignore[no-untyped-def]
        """An open user session on the token (a context manager)."""
        import pkcs11  # python-pkcs11: only needed by projects whose key is on a token

        pin = os.environ.get(self.pin_env)
        if not pin:
            raise UserError(f"the token's user PIN is not set: export {self.pin_env}=...")
        try:
            token = pkcs11.lib(self.module).get_token(token_label=self.token)
            return token.open(rw=True, user_pin=pin)
        except (pkcs11.PKCS11Error, RuntimeError) as error:
            raise UserError(f"cannot open token '{self.token}' with {self.module}: "
                            f"{type(error).__name__} {error}") from None


@dataclass(frozen=True)
class TokenSigner:
    config: TokenConfig
    public: Ed25519PublicKey
    chain: tuple[bytes, ...] = ()

    def sign(self, data: bytes) -> bytes:
        import pkcs11

        with self.config.session() as session:
            key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=self.config.key)
            return bytes(key.sign(data, mechanism=pkcs11.Mechanism.EDDSA))

    def public_key(self) -> Ed25519PublicKey:
        return self.public


def load_signer(keys_dir: Path | None = None) -> Signer:
    """The project's signer: the key on a token when keys/ota-signing.p11 exists, else the key
    file; with its certificate chain when it has one."""
    keys_dir = keys_dir or keys_dir_default()
    chain = certs.load_chain(keys_dir)
    token = keys_dir / TOKEN_NAME
    if token.is_file():
        public = keys.load_public(keys_dir / keys.PUBLIC_NAME)
        return TokenSigner(TokenConfig.load(token), public, chain)
    return FileSigner(keys.load_private(keys_dir), chain)


def keygen_on_token(config: TokenConfig, keys_dir: Path | None = None) -> Path:
    """Create the Ed25519 signing key on the token (never extractable), export its public key to
    keys/ota-signing.pem and record the token in keys/ota-signing.p11."""
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters

    keys_dir = keys_dir or keys_dir_default()
    if (keys_dir / keys.PRIVATE_NAME).exists() or (keys_dir / TOKEN_NAME).exists():
        raise UserError("a signing key already exists (rotate it: fleetforge ota.keygen --rotate)",
                        where=str(keys_dir))
    keys_dir.mkdir(parents=True, exist_ok=True)
    with config.session() as session:
        params = session.create_domain_parameters(pkcs11.KeyType.EC_EDWARDS, {
            pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID)}, local=True)
        public, _ = params.generate_keypair(store=True, label=config.key, private_template={
            pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: False})
        point = bytes(public[pkcs11.Attribute.EC_POINT])
    raw = point[-32:]  # a DER OCTET STRING around the 32-byte Ed25519 public key
    (keys_dir / keys.PUBLIC_NAME).write_bytes(
        keys.public_pem(Ed25519PublicKey.from_public_bytes(raw)))
    (keys_dir / TOKEN_NAME).write_text(config.render())
    return keys_dir / TOKEN_NAME

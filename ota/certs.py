"""Certificates for OTA signing keys: an offline root CA certifies a signing key (a key file or a
key on a PKCS#11 token) for a limited time; bundles carry the signer's certificate chain in their
signed manifest (`cert` lines), and images trust the CA instead of each signing key.

keys/ca/ota-ca.key     the root CA's private key (keep it offline; only `ota.certify` needs it)
keys/ota-ca.pem        the root CA certificate: a trusted *.pem, baked into images
keys/ota-signing.crt   the signing key's certificate (PEM), issued by the CA, with an expiry
"""
from __future__ import annotations

import base64
import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from fleetforge.errors import UserError

CA_KEY = Path("ca") / "ota-ca.key"
CA_CERT = "ota-ca.pem"
CHAIN_NAME = "ota-signing.crt"
MAX_CHAIN = 4  # leaf and intermediates a manifest may carry


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def create_ca(keys_dir: Path, *, days: int = 3650, name: str = "FleetForge OTA root") -> Path:
    """A root CA (Ed25519, self-signed): keys/ca/ota-ca.key and the trusted keys/ota-ca.pem."""
    key_path = keys_dir / CA_KEY
    if key_path.exists():
        raise UserError("a CA already exists", where=str(key_path))
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, None))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    (keys_dir / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return keys_dir / CA_CERT


def certify(public_key: Ed25519PublicKey, keys_dir: Path, *, days: int = 365,
            name: str = "FleetForge OTA signing", start: datetime.datetime | None = None) -> Path:
    """Issue keys/ota-signing.crt: the CA certifies `public_key` for `days` from `start` (now)."""
    key_path = keys_dir / CA_KEY
    if not key_path.is_file():
        raise UserError("no CA to certify with (create one: fleetforge ota.ca)", where=str(key_path))
    ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((keys_dir / CA_CERT).read_bytes())
    begins = start or _now() - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(begins).not_valid_after(begins + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .sign(ca_key, None))  # type: ignore[arg-type]
    path = keys_dir / CHAIN_NAME
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def load_chain(keys_dir: Path) -> tuple[bytes, ...]:
    """The signing key's certificate chain (DER, leaf first), or () when it has none."""
    path = keys_dir / CHAIN_NAME
    if not path.is_file():
        return ()
    return tuple(c.public_bytes(serialization.Encoding.DER)
                 for c in x509.load_pem_x509_certificates(path.read_bytes()))


def manifest_lines(chain: tuple[bytes, ...]) -> list[str]:
    return [f"cert {base64.b64encode(der).decode()}" for der in chain]


def manifest_chain(text: bytes) -> list[bytes]:
    """The `cert` lines of a manifest, as DER."""
    found = []
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith("cert "):
            try:
                found.append(base64.b64decode(line[5:], validate=True))
            except ValueError:
                raise UserError("a manifest `cert` line is not base64") from None
    return found[:MAX_CHAIN + 1]


def trusted_cas(keys_dir: Path) -> list[x509.Certificate]:
    """The CA certificates among the trusted *.pem files."""
    cas = []
    for path in sorted(keys_dir.glob("*.pem")):
        data = path.read_bytes()
        if b"BEGIN CERTIFICATE" in data:
            cas.extend(x509.load_pem_x509_certificates(data))
    return cas


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if cert.issuer != issuer.subject or not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes)
        return True
    except InvalidSignature:
        return False


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_chain(chain: list[bytes], cas: list[x509.Certificate], *,
                 when: datetime.datetime | None = None) -> Ed25519PublicKey:
    """The leaf's public key, once the chain leads to a trusted CA and every certificate on the
    way is valid at `when` (now); UserError naming what failed otherwise."""
    when = when or _now()
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as error:
        raise UserError(f"the bundle's certificate is malformed ({error})") from None
    leaf, pool = certs[0], certs[1:]
    current = leaf
    for _ in range(MAX_CHAIN + 1):
        if not current.not_valid_before_utc <= when <= current.not_valid_after_utc:
            raise UserError(f"certificate '{current.subject.rfc4514_string()}' is valid from "
                            f"{current.not_valid_before_utc:%Y-%m-%d} to "
                            f"{current.not_valid_after_utc:%Y-%m-%d}, not now: certify the "
                            "signing key again (fleetforge ota.certify)")
        ca = next((c for c in cas if _signed_by(current, c)), None)
        if ca is not None:
            if not ca.not_valid_before_utc <= when <= ca.not_valid_after_utc:
                raise UserError(f"the CA '{ca.subject.rfc4514_string()}' has expired")
            key = leaf.public_key()
            if not isinstance(key, Ed25519PublicKey):
                raise UserError("the bundle's signing certificate is not for an Ed25519 key")
            return key
        issuer = next((c for c in pool if _is_ca(c) and _signed_by(current, c)), None)
        if issuer is None:
            raise UserError(f"certificate '{current.subject.rfc4514_string()}' is not issued by "
                            "a trusted CA: sign with a key certified by the CA this image trusts")
        current = issuer
    raise UserError("the bundle's certificate chain is too long")

"""The relay's certificate: a kept development certificate or the operator's.

The development certificate is a self-signed ECDSA P-256 certificate made on
first start. Its key is kept in a state directory, so a restarted relay keeps
the same SPKI pin, and endpoints that pinned it keep connecting.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import NameOID

from lanparty.errors import ConfigError

DEV_CERT_NAME = "lanparty-relay.local"
DEV_CERT_VALIDITY = datetime.timedelta(days=3650)
DEV_KEY_FILE = "relay-dev-key.pem"
DEV_CERT_FILE = "relay-dev-cert.pem"
SPKI_PIN_PREFIX = "sha256:"


def public_key_pin(public_key: CertificatePublicKeyTypes | PublicKeyTypes) -> str:
    """``sha256:<hex>`` of a public key's SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SPKI_PIN_PREFIX + hashlib.sha256(spki).hexdigest()


def spki_pin(certificate: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's SubjectPublicKeyInfo."""
    return public_key_pin(certificate.public_key())


@attrs.frozen
class ServerIdentity:
    """A certificate chain (leaf first) and its private key, as PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.cert_pem)[0]

    @property
    def spki_pin(self) -> str:
        return spki_pin(self.certificate)

    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def _subject_alt_names(names: Sequence[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in dict.fromkeys([DEV_CERT_NAME, *names]):
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general


def _make_dev_certificate(key: ec.EllipticCurvePrivateKey, names: Sequence[str]) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEV_CERT_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + DEV_CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _dev_names(certificate: x509.Certificate) -> set[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    names: set[str] = set(extension.value.get_values_for_type(x509.DNSName))
    names.update(str(a) for a in extension.value.get_values_for_type(x509.IPAddress))
    return names


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def load_or_create_dev_identity(state_dir: Path, names: Sequence[str] = ()) -> ServerIdentity:
    """The kept development identity, made on first use.

    The key never changes once made; the certificate is re-issued with the
    same key when it expires or the operator asks for other names, so the
    SPKI pin stays the same.
    """
    key_path, cert_path = state_dir / DEV_KEY_FILE, state_dir / DEV_CERT_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ConfigError(f"{key_path} does not hold an ECDSA key; move it away")
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        key_pem = key_path.read_bytes()
        wanted = {DEV_CERT_NAME, *names}
        cert_pem = cert_path.read_bytes() if cert_path.exists() else b""
        if not _dev_certificate_fits(cert_pem, key, wanted):
            cert_pem = _make_dev_certificate(key, names)
            cert_path.write_bytes(cert_pem)
    except OSError as exc:
        raise ConfigError(f"cannot keep the development certificate in {state_dir}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"the development key in {key_path} is unreadable: {exc}") from exc
    return ServerIdentity(cert_pem=cert_pem, key_pem=key_pem)


def _dev_certificate_fits(
    cert_pem: bytes, key: ec.EllipticCurvePrivateKey, wanted_names: set[str]
) -> bool:
    if not cert_pem:
        return False
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    same_key = spki_pin(certificate) == public_key_pin(key.public_key())
    fresh = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > (
        datetime.timedelta(days=30)
    )
    return same_key and fresh and _dev_names(certificate) == wanted_names


def load_server_identity(cert_path: Path, key_path: Path) -> ServerIdentity:
    """An operator's PEM certificate chain and key, checked to belong together."""
    try:
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the relay certificate or key: {exc}") from exc
    try:
        certificate = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError as exc:
        raise ConfigError(f"{cert_path} is not a PEM certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key_path} is not an unencrypted PEM private key: {exc}") from exc
    if public_key_pin(key.public_key()) != spki_pin(certificate):
        raise ConfigError(f"the key in {key_path} does not belong to the certificate {cert_path}")
    return ServerIdentity(cert_pem=cert_pem, key_pem=key_pem)


def load_certificate_file(path: Path) -> list[x509.Certificate]:
    """Certificates from a PEM file (one or more) or a DER file (one)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the certificate file {path}: {exc}") from exc
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigError(f"{path} holds no certificate in PEM or DER form: {exc}") from exc

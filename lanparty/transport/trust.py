"""How an endpoint decides to trust the relay (PROTOCOL.md section 1).

Three modes, chosen by the user, and no mode that skips verification:

- ``PinnedCertificate``: a certificate file. If the relay presents that very
  certificate, it is trusted (pinning; the server name is only SNI).
  Otherwise the file's certificates act as CA roots and the relay's chain
  must lead to one of them for the server name.
- ``SpkiPin``: SHA-256 of the relay certificate's SubjectPublicKeyInfo.
- ``SystemTrust``: the system's trust store, checked for the server name.

The QUIC libraries still check the handshake signature against the
certificate the relay sent (possession of its key); ``verify_relay_chain``
then decides whether that certificate is the one we trust. Doing the check
here rather than inside the library lets a failure say which pin was
expected and which one the relay presented.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import warnings
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from lanparty.errors import ConfigError, TransportError
from lanparty.transport.certs import load_certificate_file, spki_pin

_PIN_TEXT = re.compile(r"sha256:[0-9a-fA-F]{64}")


class TrustError(TransportError):
    """The relay's certificate is not the one the user told us to trust."""


@attrs.frozen
class PinnedCertificate:
    certificates: tuple[x509.Certificate, ...]
    source: str

    @classmethod
    def from_file(cls, path: Path) -> PinnedCertificate:
        return cls(tuple(load_certificate_file(path)), str(path))

    def describe(self) -> str:
        pins = ", ".join(spki_pin(c) for c in self.certificates)
        return f"the certificate in {self.source} ({pins})"


@attrs.frozen
class SpkiPin:
    pin: str

    @classmethod
    def parse(cls, text: str) -> SpkiPin:
        if _PIN_TEXT.fullmatch(text.strip()) is None:
            raise ConfigError(f"{text!r} is not a pin like sha256:<64 hex digits>")
        return cls(text.strip().lower())

    def describe(self) -> str:
        return self.pin


@attrs.frozen
class SystemTrust:
    """The system's CA store; ``ca_file`` replaces it (PEM bundle)."""

    ca_file: Path | None = None

    def roots(self) -> list[x509.Certificate]:
        if self.ca_file is not None:
            return load_certificate_file(self.ca_file)
        roots = []
        with warnings.catch_warnings():
            # Old store entries (negative serials) warn; they are the OS's, not ours.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            for der in _ca_certs_der(ssl.create_default_context()):
                try:
                    roots.append(x509.load_der_x509_certificate(der))
                except ValueError:
                    continue  # one broken store entry must not hide the others
        return roots

    def describe(self) -> str:
        return f"the CA store {self.ca_file}" if self.ca_file else "the system trust store"


Trust = PinnedCertificate | SpkiPin | SystemTrust


def _ca_certs_der(context: ssl.SSLContext) -> list[bytes]:
    certificates: list[bytes] = context.get_ca_certs(binary_form=True)
    if certificates:
        return certificates
    capath = ssl.get_default_verify_paths().capath
    found: list[bytes] = []
    if capath:
        for path in sorted(Path(capath).glob("*")):
            try:
                found.extend(
                    c.public_bytes(serialization.Encoding.DER) for c in load_certificate_file(path)
                )
            except ConfigError:
                continue
    return found


def verify_relay_chain(trust: Trust, chain_der: list[bytes], server_name: str) -> None:
    """Raise ``TrustError`` unless the presented chain (leaf first) is trusted."""
    if not chain_der:
        raise TrustError("the relay presented no certificate")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError as exc:
        raise TrustError(f"the relay presented an unreadable certificate: {exc}") from exc
    leaf = chain[0]
    seen = spki_pin(leaf)
    if isinstance(trust, SpkiPin):
        if seen != trust.pin:
            raise TrustError(
                f"relay certificate pin mismatch: expected {trust.pin}, the relay presented {seen}"
            )
        return
    if isinstance(trust, PinnedCertificate):
        if any(leaf == pinned for pinned in trust.certificates):
            return
        roots = [c for c in trust.certificates if _is_ca(c)]
        if not roots:
            raise TrustError(
                f"relay certificate mismatch: expected {trust.describe()}, "
                f"the relay presented {seen}"
            )
    else:
        roots = trust.roots()
    _verify_issued(roots, chain, server_name, trust, seen)


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _verify_issued(
    roots: list[x509.Certificate],
    chain: list[x509.Certificate],
    server_name: str,
    trust: Trust,
    seen: str,
) -> None:
    if not roots:
        raise TrustError(f"{trust.describe()} holds no CA certificate to check the relay against")
    subject: x509.verification.Subject
    try:
        subject = x509.IPAddress(ipaddress.ip_address(server_name))
    except ValueError:
        subject = x509.DNSName(server_name)
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(datetime.datetime.now(datetime.UTC))
        .build_server_verifier(subject)
    )
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError as exc:
        raise TrustError(
            f"relay certificate ({seen}) is not trusted by {trust.describe()} "
            f"for the name {server_name!r}: {exc}"
        ) from exc

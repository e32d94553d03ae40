"""Relay certificate verification in each trust mode, without sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lanparty.errors import ConfigError
from lanparty.transport.certs import ServerIdentity, load_or_create_dev_identity
from lanparty.transport.trust import (
    PinnedCertificate,
    SpkiPin,
    SystemTrust,
    TrustError,
    verify_relay_chain,
)
from tests.pki import CertificateAuthority


def _chain(identity: ServerIdentity) -> list[bytes]:
    return [
        c.public_bytes(serialization.Encoding.DER)
        for c in x509.load_pem_x509_certificates(identity.cert_pem)
    ]


@pytest.fixture
def dev(tmp_path: Path) -> ServerIdentity:
    return load_or_create_dev_identity(tmp_path / "relay")


@pytest.fixture
def other_dev(tmp_path: Path) -> ServerIdentity:
    return load_or_create_dev_identity(tmp_path / "other")


def test_spki_pin_accepts_the_pinned_key(dev: ServerIdentity) -> None:
    verify_relay_chain(SpkiPin.parse(dev.spki_pin), _chain(dev), "anything")


def test_spki_pin_mismatch_names_both_pins(dev: ServerIdentity, other_dev: ServerIdentity) -> None:
    with pytest.raises(TrustError) as caught:
        verify_relay_chain(SpkiPin.parse(other_dev.spki_pin), _chain(dev), "x")
    message = str(caught.value)
    assert other_dev.spki_pin in message
    assert dev.spki_pin in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text", ["sha256:abc", "sha1:" + "0" * 64, "0" * 64, "sha256:" + "g" * 64, ""]
)
def test_malformed_pins_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        SpkiPin.parse(text)


def test_upper_case_pin_is_normalised(dev: ServerIdentity) -> None:
    pin = SpkiPin.parse("sha256:" + dev.spki_pin.removeprefix("sha256:").upper())
    verify_relay_chain(pin, _chain(dev), "x")


def test_pinned_certificate_file(
    tmp_path: Path, dev: ServerIdentity, other_dev: ServerIdentity
) -> None:
    (tmp_path / "relay.der").write_bytes(dev.certificate_der())
    trust = PinnedCertificate.from_file(tmp_path / "relay.der")
    verify_relay_chain(trust, _chain(dev), "not-checked.example")
    with pytest.raises(TrustError) as caught:
        verify_relay_chain(trust, _chain(other_dev), "x")
    assert dev.spki_pin in str(caught.value)
    assert other_dev.spki_pin in str(caught.value)


def test_ca_file_checks_issuer_and_name(tmp_path: Path) -> None:
    ca, stranger = CertificateAuthority(), CertificateAuthority("stranger CA")
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    trust = PinnedCertificate.from_file(tmp_path / "ca.pem")
    issued = ca.issue("relay.example.net", "198.18.0.1")
    verify_relay_chain(trust, _chain(issued), "relay.example.net")
    verify_relay_chain(trust, _chain(issued), "198.18.0.1")
    with pytest.raises(TrustError, match=r"wrong\.example\.net"):
        verify_relay_chain(trust, _chain(issued), "wrong.example.net")
    with pytest.raises(TrustError, match="not trusted"):
        verify_relay_chain(trust, _chain(stranger.issue("relay.example.net")), "relay.example.net")


def test_system_trust_uses_the_store_and_checks_the_name(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    (tmp_path / "bundle.pem").write_bytes(ca.pem())
    trust = SystemTrust(ca_file=tmp_path / "bundle.pem")
    issued = ca.issue("relay.example.net")
    verify_relay_chain(trust, _chain(issued), "relay.example.net")
    with pytest.raises(TrustError):
        verify_relay_chain(trust, _chain(issued), "evil.example.net")


def test_system_trust_store_does_not_trust_a_self_signed_relay(dev: ServerIdentity) -> None:
    with pytest.raises(TrustError):
        verify_relay_chain(SystemTrust(), _chain(dev), "lanparty-relay.local")


def test_garbage_and_empty_chains_are_trust_errors(dev: ServerIdentity) -> None:
    pin = SpkiPin.parse(dev.spki_pin)
    with pytest.raises(TrustError, match="no certificate"):
        verify_relay_chain(pin, [], "x")
    with pytest.raises(TrustError, match="unreadable"):
        verify_relay_chain(pin, [b"\x30\x03junk"], "x")

"""Development identity, operator PEM files, certificate files and pins."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lanparty.errors import ConfigError
from lanparty.transport.certs import (
    DEV_CERT_FILE,
    DEV_CERT_NAME,
    DEV_KEY_FILE,
    load_certificate_file,
    load_or_create_dev_identity,
    load_server_identity,
    spki_pin,
)
from tests.pki import CertificateAuthority


def test_dev_identity_is_kept_across_restarts(tmp_path: Path) -> None:
    first = load_or_create_dev_identity(tmp_path)
    second = load_or_create_dev_identity(tmp_path)
    assert first == second
    assert first.spki_pin.startswith("sha256:")
    assert len(first.spki_pin) == len("sha256:") + 64
    assert stat.S_IMODE((tmp_path / DEV_KEY_FILE).stat().st_mode) == 0o600


def test_dev_certificate_names_the_relay_and_operator_names(tmp_path: Path) -> None:
    identity = load_or_create_dev_identity(tmp_path, ["relay.example.net", "198.18.0.1"])
    names = identity.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert set(names.get_values_for_type(x509.DNSName)) == {DEV_CERT_NAME, "relay.example.net"}
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["198.18.0.1"]


def test_new_names_reissue_the_certificate_with_the_same_key(tmp_path: Path) -> None:
    first = load_or_create_dev_identity(tmp_path)
    second = load_or_create_dev_identity(tmp_path, ["relay.example.net"])
    assert first.cert_pem != second.cert_pem
    assert first.spki_pin == second.spki_pin


def test_a_damaged_dev_certificate_is_remade_from_the_kept_key(tmp_path: Path) -> None:
    first = load_or_create_dev_identity(tmp_path)
    (tmp_path / DEV_CERT_FILE).write_bytes(b"garbage")
    assert load_or_create_dev_identity(tmp_path).spki_pin == first.spki_pin


def test_a_damaged_dev_key_is_a_config_error_not_a_new_pin(tmp_path: Path) -> None:
    load_or_create_dev_identity(tmp_path)
    (tmp_path / DEV_KEY_FILE).write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="unreadable"):
        load_or_create_dev_identity(tmp_path)


def test_operator_identity_loads_and_checks_the_key(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    issued, other = ca.issue("relay.example.net"), ca.issue("other.example.net")
    (tmp_path / "cert.pem").write_bytes(issued.cert_pem)
    (tmp_path / "key.pem").write_bytes(issued.key_pem)
    (tmp_path / "other-key.pem").write_bytes(other.key_pem)
    loaded = load_server_identity(tmp_path / "cert.pem", tmp_path / "key.pem")
    assert loaded.spki_pin == issued.spki_pin
    with pytest.raises(ConfigError, match="does not belong"):
        load_server_identity(tmp_path / "cert.pem", tmp_path / "other-key.pem")
    with pytest.raises(ConfigError, match="cannot read"):
        load_server_identity(tmp_path / "missing.pem", tmp_path / "key.pem")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        load_server_identity(tmp_path / "key.pem", tmp_path / "key.pem")


def test_certificate_files_in_der_and_pem(tmp_path: Path) -> None:
    identity = load_or_create_dev_identity(tmp_path / "state")
    (tmp_path / "relay.der").write_bytes(identity.certificate_der())
    (tmp_path / "relay.pem").write_bytes(identity.cert_pem)
    (tmp_path / "junk").write_bytes(b"\x00\x01junk")
    der = load_certificate_file(tmp_path / "relay.der")
    pem = load_certificate_file(tmp_path / "relay.pem")
    assert der == pem == [identity.certificate]
    assert spki_pin(der[0]) == identity.spki_pin
    with pytest.raises(ConfigError, match="no certificate"):
        load_certificate_file(tmp_path / "junk")


def test_spki_pin_is_sha256_of_the_public_key_info(tmp_path: Path) -> None:
    identity = load_or_create_dev_identity(tmp_path)
    spki = identity.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert identity.spki_pin == "sha256:" + hashlib.sha256(spki).hexdigest()

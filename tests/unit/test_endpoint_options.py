"""The relay and trust options shared by gateway and client."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lanparty.endpoint_options import (
    add_relay_arguments,
    parse_relay_address,
    relay_endpoint_from_args,
)
from lanparty.errors import ConfigError
from lanparty.transport import PinnedCertificate, SpkiPin, SystemTrust, load_or_create_dev_identity

PIN = "sha256:" + "ab" * 32


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_relay_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("relay.example.net", ("relay.example.net", 4433)),
        ("relay.example.net:443", ("relay.example.net", 443)),
        ("198.18.0.1:5000", ("198.18.0.1", 5000)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[2001:db8::1]", ("2001:db8::1", 4433)),
    ],
)
def test_relay_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_relay_address(text) == expected


@pytest.mark.parametrize("text", ["", ":443", "host:0", "host:70000", "host:x"])
def test_bad_relay_addresses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_relay_address(text)


def test_each_trust_mode(tmp_path: Path) -> None:
    pinned = relay_endpoint_from_args(parse("--relay", "r:1", "--room", "x", "--relay-pin", PIN))
    assert pinned.trust == SpkiPin(PIN)
    identity = load_or_create_dev_identity(tmp_path)
    (tmp_path / "relay.der").write_bytes(identity.certificate_der())
    with_file = relay_endpoint_from_args(
        parse("--relay", "r", "--room", "x", "--relay-ca-cert", str(tmp_path / "relay.der"))
    )
    assert isinstance(with_file.trust, PinnedCertificate)
    system = relay_endpoint_from_args(
        parse("--relay", "r", "--room", "x", "--server-name", "relay.example.net")
    )
    assert isinstance(system.trust, SystemTrust)
    assert system.server_name == "relay.example.net"


def test_no_trust_mode_is_an_error_that_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="--relay-pin"):
        relay_endpoint_from_args(parse("--relay", "r", "--room", "x"))


def test_pin_and_certificate_are_exclusive() -> None:
    with pytest.raises(SystemExit):
        parse("--relay", "r", "--room", "x", "--relay-pin", PIN, "--relay-ca-cert", "f")

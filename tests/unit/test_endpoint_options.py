"""The relay and trust options shared by gateway and client."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lanparty.credentials import b64url
from lanparty.endpoint.options import (
    add_relay_arguments,
    parse_relay_address,
    relay_endpoint_from_args,
    required_invite_from_args,
)
from lanparty.errors import ConfigError
from lanparty.transport import PinnedCertificate, SpkiPin, SystemTrust, load_or_create_dev_identity

PIN = "sha256:" + "ab" * 32
ROOM = "abcdefghijklmnopqrstuvwxyz"
KEY = bytes(range(32))


def parse(*argv: str, invite: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_relay_arguments(parser, invite=invite)
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
    pinned = relay_endpoint_from_args(parse("--relay", "r:1", "--relay-pin", PIN))
    assert pinned.trust == SpkiPin(PIN)
    identity = load_or_create_dev_identity(tmp_path)
    (tmp_path / "relay.der").write_bytes(identity.certificate_der())
    with_file = relay_endpoint_from_args(
        parse("--relay", "r", "--relay-ca-cert", str(tmp_path / "relay.der"))
    )
    assert isinstance(with_file.trust, PinnedCertificate)
    system = relay_endpoint_from_args(parse("--relay", "r", "--server-name", "relay.example.net"))
    assert isinstance(system.trust, SystemTrust)
    assert system.server_name == "relay.example.net"


def test_no_trust_mode_is_an_error_that_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="--relay-pin"):
        relay_endpoint_from_args(parse("--relay", "r"))


def test_pin_and_certificate_are_exclusive() -> None:
    with pytest.raises(SystemExit):
        parse("--relay", "r", "--relay-pin", PIN, "--relay-ca-cert", "f")


INVITE = f"lanparty://relay.example.net:443/{ROOM}?pin={PIN}&key={b64url(KEY)}"
OTHER_PIN = "sha256:" + "cd" * 32


def test_an_invite_gives_relay_room_key_and_pin() -> None:
    args = parse("--invite", INVITE)
    endpoint = relay_endpoint_from_args(args)
    assert (endpoint.host, endpoint.port) == ("relay.example.net", 443)
    assert endpoint.trust == SpkiPin(PIN)
    assert endpoint.server_name is None
    invite = required_invite_from_args(args)
    assert (invite.room, invite.client_key) == (ROOM, KEY)


def test_an_invite_without_a_pin_trusts_the_system_store() -> None:
    args = parse("--invite", f"lanparty://relay.example.net/{ROOM}?key={b64url(KEY)}")
    assert isinstance(relay_endpoint_from_args(args).trust, SystemTrust)


def test_an_ipv6_invite_with_sni() -> None:
    args = parse(
        "--invite",
        f"lanparty://[2001:db8::1]/{ROOM}?pin={PIN}&key={b64url(KEY)}&sni=relay.example.net",
    )
    endpoint = relay_endpoint_from_args(args)
    assert (endpoint.host, endpoint.port) == ("2001:db8::1", 4433)
    assert endpoint.server_name == "relay.example.net"


def test_explicit_options_replace_the_invites_parts(tmp_path: Path) -> None:
    args = parse(
        "--invite", INVITE, "--relay", "198.18.0.1:5000",
        "--relay-pin", OTHER_PIN, "--server-name", "name.example",
    )  # fmt: skip
    endpoint = relay_endpoint_from_args(args)
    assert (endpoint.host, endpoint.port) == ("198.18.0.1", 5000)
    assert endpoint.trust == SpkiPin(OTHER_PIN)
    assert endpoint.server_name == "name.example"
    assert required_invite_from_args(args).room == ROOM
    identity = load_or_create_dev_identity(tmp_path)
    (tmp_path / "relay.der").write_bytes(identity.certificate_der())
    with_file = parse("--invite", INVITE, "--relay-ca-cert", str(tmp_path / "relay.der"))
    assert isinstance(relay_endpoint_from_args(with_file).trust, PinnedCertificate)


def test_a_bad_invite_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="key is missing"):
        relay_endpoint_from_args(parse("--invite", f"lanparty://relay/{ROOM}?pin={PIN}"))
    with pytest.raises(ConfigError, match="starts with lanparty://"):
        required_invite_from_args(parse("--invite", "relay:443"))


def test_a_client_needs_an_invite() -> None:
    with pytest.raises(ConfigError, match="--invite"):
        relay_endpoint_from_args(parse())
    with pytest.raises(ConfigError, match="--invite"):
        required_invite_from_args(parse("--relay", "r", "--relay-pin", PIN))


def test_a_gateway_needs_the_relay() -> None:
    with pytest.raises(ConfigError, match="--relay HOST:PORT"):
        relay_endpoint_from_args(parse(invite=False))
    with pytest.raises(SystemExit):
        parse("--invite", INVITE, invite=False)

"""The relay and trust options shared by gateway and client."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lanparty.endpoint_options import (
    add_relay_arguments,
    parse_relay_address,
    relay_endpoint_from_args,
    room_from_args,
)
from lanparty.errors import ConfigError
from lanparty.gateway import cli as gateway_cli
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


INVITE = f"lanparty://relay.example.net:443/party?pin={PIN}"
OTHER_PIN = "sha256:" + "cd" * 32


def test_an_invite_gives_relay_room_and_pin() -> None:
    args = parse("--invite", INVITE)
    endpoint = relay_endpoint_from_args(args)
    assert (endpoint.host, endpoint.port) == ("relay.example.net", 443)
    assert endpoint.trust == SpkiPin(PIN)
    assert endpoint.server_name is None
    assert room_from_args(args) == "party"


def test_an_ipv6_invite_with_sni() -> None:
    args = parse("--invite", f"lanparty://[2001:db8::1]/r?pin={PIN}&sni=relay.example.net")
    endpoint = relay_endpoint_from_args(args)
    assert (endpoint.host, endpoint.port) == ("2001:db8::1", 4433)
    assert endpoint.server_name == "relay.example.net"


def test_explicit_options_replace_the_invites_parts(tmp_path: Path) -> None:
    args = parse(
        "--invite", INVITE, "--relay", "198.18.0.1:5000", "--room", "other",
        "--relay-pin", OTHER_PIN, "--server-name", "name.example",
    )  # fmt: skip
    endpoint = relay_endpoint_from_args(args)
    assert (endpoint.host, endpoint.port) == ("198.18.0.1", 5000)
    assert endpoint.trust == SpkiPin(OTHER_PIN)
    assert endpoint.server_name == "name.example"
    assert room_from_args(args) == "other"
    identity = load_or_create_dev_identity(tmp_path)
    (tmp_path / "relay.der").write_bytes(identity.certificate_der())
    with_file = parse("--invite", INVITE, "--relay-ca-cert", str(tmp_path / "relay.der"))
    assert isinstance(relay_endpoint_from_args(with_file).trust, PinnedCertificate)


def test_a_bad_invite_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pin is missing"):
        relay_endpoint_from_args(parse("--invite", "lanparty://relay/party"))
    with pytest.raises(ConfigError, match="starts with lanparty://"):
        room_from_args(parse("--invite", "relay:443"))


@pytest.mark.parametrize(
    "argv", [(), ("--room", "x", "--relay-pin", PIN), ("--relay", "r", "--relay-pin", PIN)]
)
def test_without_invite_relay_and_room_are_needed(argv: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="--invite"):
        relay_endpoint_from_args(parse(*argv))


def test_room_from_args_without_room_or_invite() -> None:
    with pytest.raises(ConfigError, match="--room NAME"):
        room_from_args(parse("--relay", "r"))


def test_the_gateway_takes_an_invite_or_the_long_options() -> None:
    with_invite = gateway_cli.build_config(
        gateway_cli.build_parser().parse_args(["eth0", "--invite", INVITE])
    )
    assert with_invite.interface == "eth0"
    assert with_invite.room == "party"
    assert with_invite.relay.trust == SpkiPin(PIN)
    long_options = gateway_cli.build_config(
        gateway_cli.build_parser().parse_args(
            ["eth0", "--relay", "r:1", "--room", "x", "--relay-pin", PIN]
        )
    )
    assert (long_options.room, long_options.relay.host, long_options.relay.port) == ("x", "r", 1)

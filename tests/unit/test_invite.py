"""Invites: format, strict parsing, and round trips."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.errors import ConfigError
from lanparty.invite import Invite
from lanparty.relay.cli import build_parser, invite_line

PIN = "sha256:" + "ab" * 32


def test_a_plain_invite() -> None:
    invite = Invite.parse(f"lanparty://relay.example.net:443/party-1?pin={PIN}")
    assert invite == Invite("relay.example.net", 443, "party-1", PIN)
    assert invite.effective_server_name == "relay.example.net"
    assert invite.format() == f"lanparty://relay.example.net:443/party-1?pin={PIN}"


def test_the_port_defaults_to_4433_and_is_always_written() -> None:
    invite = Invite.parse(f"  lanparty://198.18.0.1/ROOM?pin={PIN}\n")
    assert (invite.host, invite.port) == ("198.18.0.1", 4433)
    assert invite.format() == f"lanparty://198.18.0.1:4433/ROOM?pin={PIN}"


def test_ipv6_hosts_are_in_brackets() -> None:
    invite = Invite.parse(f"lanparty://[2001:db8::1]:5000/r?pin={PIN}")
    assert (invite.host, invite.port) == ("2001:db8::1", 5000)
    assert invite.format() == f"lanparty://[2001:db8::1]:5000/r?pin={PIN}"
    assert Invite.parse(f"lanparty://[::1]/r?pin={PIN}").port == 4433


def test_sni_is_written_only_when_it_differs_from_the_host() -> None:
    invite = Invite.parse(f"lanparty://198.18.0.1:443/r?pin={PIN}&sni=relay.example.net")
    assert invite.server_name == "relay.example.net"
    assert invite.effective_server_name == "relay.example.net"
    assert invite.format().endswith("&sni=relay.example.net")
    same = Invite("relay.example.net", 443, "r", PIN, server_name="relay.example.net")
    assert "sni" not in same.format()
    assert Invite.parse(same.format()).server_name is None


def test_upper_case_pins_and_schemes_are_read() -> None:
    invite = Invite.parse(f"LANPARTY://h/r?pin={PIN.upper().replace('SHA256', 'sha256')}")
    assert invite.pin == PIN


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"https://h/r?pin={PIN}", "starts with lanparty://"),
        (f"h:443/r?pin={PIN}", "starts with lanparty://"),
        ("lanparty://h:443", "room is missing"),
        ("lanparty://h:443/r", "pin is missing"),
        ("lanparty://h:443/r?sni=x", "pin is missing"),
        (f"lanparty://h:443/?pin={PIN}", "room name"),
        (f"lanparty://h:443/a b?pin={PIN}", "spaces"),
        (f"lanparty://h:443/{'a' * 33}?pin={PIN}", "room name"),
        (f"lanparty://h:443/r/x?pin={PIN}", "no '/'"),
        (f"lanparty://h:443/r%20?pin={PIN}", "'%'"),
        (f"lanparty://h:443/r?pin={PIN}#frag", "'#'"),
        (f"lanparty://h:0/r?pin={PIN}", "port"),
        (f"lanparty://h:65536/r?pin={PIN}", "port"),
        (f"lanparty://h:/r?pin={PIN}", "port"),
        (f"lanparty://h:x/r?pin={PIN}", "port"),
        (f"lanparty:///r?pin={PIN}", "host is missing"),
        (f"lanparty://user@h/r?pin={PIN}", "user"),
        (f"lanparty://2001:db8::1/r?pin={PIN}", "brackets"),
        (f"lanparty://[relay]/r?pin={PIN}", "IPv6"),
        (f"lanparty://[2001:db8::1/r?pin={PIN}", "IPv6"),
        (f"lanparty://[::1]x/r?pin={PIN}", "after ']'"),
        (f"lanparty://[::g]/r?pin={PIN}", "not an IPv6 address"),
        (f"lanparty://bad!host/r?pin={PIN}", "host name"),
        (f"lanparty://-h/r?pin={PIN}", "host name"),
        ("lanparty://h/r?pin=sha256:abc", "not a pin"),
        ("lanparty://h/r?pin=" + "ab" * 32, "not a pin"),
        (f"lanparty://h/r?pin={PIN}&pin={PIN}", "twice"),
        (f"lanparty://h/r?pin={PIN}&colour=red", "unknown invite field"),
        (f"lanparty://h/r?pin={PIN}&", "not a field"),
        (f"lanparty://h/r?pin={PIN}&sni=", "not a field"),
        (f"lanparty://h/r?pin={PIN}&sni=198.18.0.1:1", "not a DNS name"),
        (f"lanparty://h/r?pin={PIN}&sni=a..b", "not a DNS name"),
    ],
)
def test_bad_invites_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        Invite.parse(text)
    assert str(caught.value).startswith("invite ")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"host": "a b"}, "host name"),
        ({"host": "fe80::1%eth0"}, "zone"),
        ({"port": 0}, "port"),
        ({"port": True}, "port"),
        ({"room": "a/b"}, "room name"),
        ({"pin": PIN.upper()}, "pin"),
        ({"server_name": "::1"}, "DNS name"),
    ],
)
def test_invites_are_checked_when_made(fields: dict[str, object], reason: str) -> None:
    values: dict[str, object] = {"host": "h", "port": 1, "room": "r", "pin": PIN, **fields}
    with pytest.raises(ConfigError, match=reason):
        Invite(**values)  # type: ignore[arg-type]


_LABEL = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,10}[A-Za-z0-9_])?", fullmatch=True)
_DNS = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_HOSTS = st.one_of(
    _DNS,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: str(ipaddress.IPv6Address(a))),
)
_INVITES = st.builds(
    Invite,
    host=_HOSTS,
    port=st.integers(1, 65535),
    room=st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True),
    pin=st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h),
    server_name=st.one_of(st.none(), _DNS),
)


@given(_INVITES)
def test_format_then_parse_gives_the_same_invite(invite: Invite) -> None:
    parsed = Invite.parse(invite.format())
    assert parsed.format() == invite.format()
    assert (parsed.host, parsed.port, parsed.room, parsed.pin) == (
        invite.host,
        invite.port,
        invite.room,
        invite.pin,
    )
    assert parsed.effective_server_name == invite.effective_server_name
    if invite.server_name != invite.host:
        assert parsed == invite


def _parses_or_is_a_config_error(text: str) -> None:
    try:
        invite = Invite.parse(text)
    except ConfigError:
        return
    assert Invite.parse(invite.format()) == invite


@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_config_error(text: str) -> None:
    _parses_or_is_a_config_error(text)


@given(_INVITES, st.integers(0, 300), st.characters())
def test_a_changed_invite_parses_or_is_a_config_error(
    invite: Invite, position: int, character: str
) -> None:
    text = invite.format()
    position %= len(text)
    mutated = text[:position] + character + text[position + 1 :]
    _parses_or_is_a_config_error(mutated)


@pytest.mark.parametrize(
    ("listen_host", "public_host", "shown"),
    [
        ("::", None, "HOST:4433"),
        ("0.0.0.0", None, "HOST:4433"),
        ("198.18.0.1", None, "198.18.0.1:4433"),
        ("2001:db8::1", None, "[2001:db8::1]:4433"),
        ("fe80::1%eth0", None, "HOST:4433"),
        ("::", "relay.example.net", "relay.example.net:4433"),
    ],
)
def test_the_relay_prints_an_invite_to_complete(
    listen_host: str, public_host: str | None, shown: str
) -> None:
    line = invite_line(listen_host, 4433, PIN, public_host)
    assert line == f"lanparty://{shown}/ROOM?pin={PIN}"
    assert Invite.parse(line).room == "ROOM"


def test_the_relays_public_host_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["--public-host", "r.example"]).public_host == "r.example"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--public-host", "a b"])
    assert "host name" in capsys.readouterr().err

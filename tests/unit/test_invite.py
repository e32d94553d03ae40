"""Invites (PROTOCOL.md 10): format, strict parsing, round trips, and a key that never shows."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.credentials import b64url
from lanparty.errors import ConfigError
from lanparty.invite import Invite, redact_invite
from lanparty.relay.cli import build_parser, gateway_command

PIN = "sha256:" + "ab" * 32
ROOM = "abcdefghijklmnopqrstuvwxyz"
KEY = bytes(range(32))
KEY_TEXT = b64url(KEY)
Q = f"pin={PIN}&key={KEY_TEXT}"


def test_a_plain_invite() -> None:
    invite = Invite.parse(f"lanparty://relay.example.net:443/{ROOM}?{Q}")
    assert invite == Invite("relay.example.net", 443, ROOM, KEY, pin=PIN)
    assert invite.effective_server_name == "relay.example.net"
    assert invite.format() == f"lanparty://relay.example.net:443/{ROOM}?{Q}"


def test_the_room_name_is_percent_encoded() -> None:
    invite = Invite("h", 1, ROOM, KEY, pin=PIN, name="Bob s LAN_2-b")
    assert invite.format().endswith("&name=Bob%20s%20LAN_2-b")
    assert Invite.parse(invite.format()).name == "Bob s LAN_2-b"


def test_an_invite_without_a_pin_is_for_a_relay_with_a_public_certificate() -> None:
    invite = Invite.parse(f"lanparty://relay.example.net/{ROOM}?key={KEY_TEXT}")
    assert invite.pin is None
    assert "pin=" not in invite.format()


def test_the_key_never_shows_in_repr_or_errors() -> None:
    invite = Invite("h", 1, ROOM, KEY, pin=PIN)
    assert KEY_TEXT not in repr(invite)
    assert repr(KEY) not in repr(invite)
    with pytest.raises(ConfigError) as caught:
        Invite.parse(invite.format() + "&colour=red")
    assert KEY_TEXT not in str(caught.value)
    assert "key=<hidden>" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Invite.parse(f"lanparty://h/{ROOM}?pin={PIN}&key={KEY_TEXT}x")
    assert KEY_TEXT not in str(caught.value)
    assert redact_invite(invite.format()) == f"lanparty://h:1/{ROOM}?pin={PIN}&key=<hidden>"


def test_the_port_defaults_to_4433_and_is_always_written() -> None:
    invite = Invite.parse(f"  lanparty://198.18.0.1/{ROOM}?{Q}\n")
    assert (invite.host, invite.port) == ("198.18.0.1", 4433)
    assert invite.format() == f"lanparty://198.18.0.1:4433/{ROOM}?{Q}"


def test_ipv6_hosts_are_in_brackets() -> None:
    invite = Invite.parse(f"lanparty://[2001:db8::1]:5000/{ROOM}?{Q}")
    assert (invite.host, invite.port) == ("2001:db8::1", 5000)
    assert invite.format() == f"lanparty://[2001:db8::1]:5000/{ROOM}?{Q}"
    assert Invite.parse(f"lanparty://[::1]/{ROOM}?{Q}").port == 4433


def test_sni_is_written_only_when_it_differs_from_the_host() -> None:
    invite = Invite.parse(f"lanparty://198.18.0.1:443/{ROOM}?{Q}&sni=relay.example.net")
    assert invite.server_name == "relay.example.net"
    assert invite.effective_server_name == "relay.example.net"
    assert invite.format().endswith("&sni=relay.example.net")
    same = Invite("relay.example.net", 443, ROOM, KEY, pin=PIN, server_name="relay.example.net")
    assert "sni" not in same.format()
    assert Invite.parse(same.format()).server_name is None


def test_upper_case_pins_and_schemes_are_read() -> None:
    upper = PIN.upper().replace("SHA256", "sha256")
    invite = Invite.parse(f"LANPARTY://h/{ROOM}?pin={upper}&key={KEY_TEXT}")
    assert invite.pin == PIN


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"https://h/{ROOM}?{Q}", "starts with lanparty://"),
        (f"h:443/{ROOM}?{Q}", "starts with lanparty://"),
        ("lanparty://h:443", "room is missing"),
        (f"lanparty://h:443/{ROOM}", "key is missing"),
        (f"lanparty://h:443/{ROOM}?pin={PIN}", "key is missing"),
        (f"lanparty://h:443/{ROOM}?pin={PIN}&key=abc", "43 characters"),
        (f"lanparty://h:443/{ROOM}?pin={PIN}&key={KEY_TEXT}=", "43 characters"),
        (f"lanparty://h:443/?{Q}", "room id"),
        (f"lanparty://h:443/party?{Q}", "room id"),
        (f"lanparty://h:443/{ROOM.upper()}?{Q}", "room id"),
        (f"lanparty://h:443/a b?{Q}", "spaces"),
        (f"lanparty://h:443/{ROOM}/x?{Q}", "no '/'"),
        (f"lanparty://h:443/{ROOM}%20?{Q}", "'%'"),
        (f"lanparty://h:443/{ROOM}?pin=sha256%3A{'ab' * 32}&key={KEY_TEXT}", "'%'"),
        (f"lanparty://h:443/{ROOM}?{Q}#frag", "'#'"),
        (f"lanparty://h:443/{ROOM}?{Q}&name=%FF", "UTF-8"),
        (f"lanparty://h:443/{ROOM}?{Q}&name=a%0Ab", "room name"),
        (f"lanparty://h:443/{ROOM}?{Q}&name={'x' * 33}", "room name"),
        (f"lanparty://h:0/{ROOM}?{Q}", "port"),
        (f"lanparty://h:65536/{ROOM}?{Q}", "port"),
        (f"lanparty://h:/{ROOM}?{Q}", "port"),
        (f"lanparty://h:x/{ROOM}?{Q}", "port"),
        (f"lanparty:///{ROOM}?{Q}", "host is missing"),
        (f"lanparty://user@h/{ROOM}?{Q}", "user"),
        (f"lanparty://2001:db8::1/{ROOM}?{Q}", "brackets"),
        (f"lanparty://[relay]/{ROOM}?{Q}", "IPv6"),
        (f"lanparty://[2001:db8::1/{ROOM}?{Q}", "IPv6"),
        (f"lanparty://[::1]x/{ROOM}?{Q}", "after ']'"),
        (f"lanparty://[::g]/{ROOM}?{Q}", "not an IPv6 address"),
        (f"lanparty://bad!host/{ROOM}?{Q}", "host name"),
        (f"lanparty://-h/{ROOM}?{Q}", "host name"),
        (f"lanparty://h/{ROOM}?pin=sha256:abc&key={KEY_TEXT}", "not a pin"),
        (f"lanparty://h/{ROOM}?pin={'ab' * 32}&key={KEY_TEXT}", "not a pin"),
        (f"lanparty://h/{ROOM}?{Q}&pin={PIN}", "twice"),
        (f"lanparty://h/{ROOM}?{Q}&colour=red", "unknown invite field"),
        (f"lanparty://h/{ROOM}?{Q}&", "not a field"),
        (f"lanparty://h/{ROOM}?{Q}&sni=", "not a field"),
        (f"lanparty://h/{ROOM}?{Q}&sni=198.18.0.1:1", "not a DNS name"),
        (f"lanparty://h/{ROOM}?{Q}&sni=a..b", "not a DNS name"),
    ],
)
def test_bad_invites_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        Invite.parse(text)
    assert str(caught.value).startswith("invite ")
    assert KEY_TEXT not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"host": "a b"}, "host name"),
        ({"host": "fe80::1%eth0"}, "zone"),
        ({"port": 0}, "port"),
        ({"port": True}, "port"),
        ({"room": "a/b"}, "room id"),
        ({"client_key": b"short"}, "32 bytes"),
        ({"pin": PIN.upper()}, "pin"),
        ({"name": "a\tb"}, "room name"),
        ({"server_name": "::1"}, "DNS name"),
    ],
)
def test_invites_are_checked_when_made(fields: dict[str, object], reason: str) -> None:
    values: dict[str, object] = {
        "host": "h",
        "port": 1,
        "room": ROOM,
        "client_key": KEY,
        "pin": PIN,
        **fields,
    }
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
    room=st.from_regex(r"[a-z2-7]{26}", fullmatch=True),
    client_key=st.binary(min_size=32, max_size=32),
    pin=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64).map("sha256:".__add__),
    name=st.none() | st.from_regex(r"[A-Za-z0-9_ -]{1,32}", fullmatch=True),
    server_name=st.one_of(st.none(), _DNS),
)


@given(_INVITES)
def test_format_then_parse_gives_the_same_invite(invite: Invite) -> None:
    parsed = Invite.parse(invite.format())
    assert parsed.format() == invite.format()
    assert (parsed.host, parsed.port, parsed.room, parsed.client_key, parsed.pin, parsed.name) == (
        invite.host,
        invite.port,
        invite.room,
        invite.client_key,
        invite.pin,
        invite.name,
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
def test_the_relay_prints_the_gateway_command_line(
    listen_host: str, public_host: str | None, shown: str
) -> None:
    line = gateway_command(listen_host, 4433, PIN, public_host)
    assert line == f"lanparty-gateway eth0 --relay {shown} --relay-pin {PIN}"


def test_the_relays_public_host_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_parser().parse_args(["--public-host", "r.example"]).public_host == "r.example"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--public-host", "a b"])
    assert "host name" in capsys.readouterr().err

"""Invites (PROTOCOL.md 10): where the relay is, how to trust it, which room, the room's key.

    lanparty://relay.example.net:4433/ROOMID?pin=sha256:<64 hex>&key=<43 base64url>&name=Bob%27s
    lanparty://[2001:db8::1]:443/ROOMID?pin=sha256:<64 hex>&key=...&sni=relay.example.net

The party's gateway mints it: only the gateway knows the room id (derived
from its key) and the client key. An invite is a secret: whoever holds it
can join the room, so its ``repr`` hides the key and error messages never
quote it.

- The host is a DNS name, an IPv4 address, or an IPv6 address in brackets;
  the port defaults to 4433 when absent (``format`` always writes it).
- The path is the room id (26 characters of ``a-z 2-7``).
- ``key`` (required) is the room's client key, base64url without padding.
- ``pin`` is the relay's SPKI pin, as the relay prints it; absent when the
  relay has a certificate from a public CA (then the system trust store
  and the host name are checked).
- ``name`` (optional) is the room's label, percent-encoded (a space is
  ``%20``), shown to the player.
- ``sni`` (optional, not in the contract) is the TLS server name when it
  is not the host: a relay reached by IP address whose certificate names
  it. ``format`` writes it only when it differs from the host.

Parsing is strict (no other fields, percent-encoding only in ``name``, no
user or fragment): an invite is pasted between people, and a typo should
say what is wrong rather than connect somewhere else. Every fault is a
``ConfigError`` that says which part is wrong.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

import attrs

from lanparty.credentials import b64url, is_room_id, is_room_name, parse_key
from lanparty.errors import ConfigError

__all__ = ["DEFAULT_INVITE_PORT", "INVITE_SCHEME", "Invite", "check_invite_host", "redact_invite"]

INVITE_SCHEME = "lanparty"
DEFAULT_INVITE_PORT = 4433

_PIN = re.compile(r"sha256:[0-9a-f]{64}")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MAX_DNS_NAME = 253
_EXAMPLE = "lanparty://relay.example.net:4433/ROOMID?pin=sha256:<64 hex digits>&key=..."
_KEY_IN_TEXT = re.compile(r"(key=)[^&]*")


def check_invite_host(host: str) -> str:
    """A DNS name, IPv4 address or (bare, unbracketed) IPv6 address; returns it, else raises."""
    if ":" in host:
        if "%" in host:
            raise ConfigError(f"{host!r}: an invite's IPv6 address has no zone ('%')")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{host!r} is not an IPv6 address") from None
        return host
    if len(host) > _MAX_DNS_NAME or _DNS_NAME.fullmatch(host) is None:
        raise ConfigError(
            f"{host!r} is not a host name or address (letters, digits, '-', '_' and dots)"
        )
    return host


def _check_host(_: object, __: object, host: str) -> None:
    check_invite_host(host)


def _check_port(_: object, __: object, port: int) -> None:
    if isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError(f"the port {port!r} is not one from 1 to 65535")


def _check_room(_: object, __: object, room: str) -> None:
    if not is_room_id(room):
        raise ConfigError(
            f"{room!r} is not a room id (26 characters of a-z and 2-7, as the party's "
            "gateway prints it)"
        )


def _check_pin(_: object, __: object, pin: str | None) -> None:
    if pin is not None and _PIN.fullmatch(pin) is None:
        raise ConfigError(f"{pin!r} is not a pin like sha256:<64 lower-case hex digits>")


def _check_key(_: object, __: object, key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != 32:
        raise ConfigError("the invite's key is not 32 bytes")


def _check_name(_: object, __: object, name: str | None) -> None:
    if name is not None and not is_room_name(name):
        raise ConfigError(
            f"the room name {name!r} is not allowed: use 1 to 32 letters, digits, "
            "spaces, '_' or '-'"
        )


def redact_invite(text: str) -> str:
    """An invite's text with its key hidden, for messages and logs."""
    return _KEY_IN_TEXT.sub(r"\1<hidden>", text)


def _check_server_name(_: object, __: object, name: str | None) -> None:
    if name is not None and (
        ":" in name or len(name) > _MAX_DNS_NAME or _DNS_NAME.fullmatch(name) is None
    ):
        raise ConfigError(f"the server name {name!r} is not a DNS name")


@attrs.frozen
class Invite:
    """A relay, how to trust it, a room and its key; ``server_name`` None means the host."""

    host: str = attrs.field(validator=_check_host)
    port: int = attrs.field(validator=_check_port)
    room: str = attrs.field(validator=_check_room)
    client_key: bytes = attrs.field(validator=_check_key, repr=False)
    pin: str | None = attrs.field(default=None, validator=_check_pin)
    name: str | None = attrs.field(default=None, validator=_check_name)
    server_name: str | None = attrs.field(default=None, validator=_check_server_name)

    @property
    def effective_server_name(self) -> str:
        """The TLS server name the endpoint sends: ``server_name`` or else the host."""
        return self.server_name if self.server_name is not None else self.host

    def format(self) -> str:
        """The invite's text: a secret (it holds the room's key)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        fields = []
        if self.pin is not None:
            fields.append(f"pin={self.pin}")
        fields.append(f"key={b64url(self.client_key)}")
        if self.name is not None:
            fields.append("name=" + urllib.parse.quote(self.name, safe=""))
        if self.server_name is not None and self.server_name != self.host:
            fields.append(f"sni={self.server_name}")
        return f"{INVITE_SCHEME}://{host}:{self.port}/{self.room}?{'&'.join(fields)}"

    @classmethod
    def parse(cls, text: str) -> Invite:
        """Read an invite; raise ``ConfigError`` saying what is wrong with it (never its key)."""
        if not isinstance(text, str):
            raise ConfigError("an invite is text")
        stripped = text.strip()
        try:
            return cls._parse(stripped)
        except ConfigError as exc:
            shown = redact_invite(stripped)
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            raise ConfigError(f"invite {shown!r}: {exc}") from None

    @classmethod
    def _parse(cls, text: str) -> Invite:
        scheme, separator, rest = text.partition("://")
        if not separator or scheme.lower() != INVITE_SCHEME:
            raise ConfigError(f"an invite starts with {INVITE_SCHEME}://, like {_EXAMPLE}")
        if "#" in rest or any(c.isspace() for c in rest):
            raise ConfigError("an invite has no '#' or spaces")
        authority, slash, after = rest.partition("/")
        if not slash:
            raise ConfigError(f"the room is missing: {_EXAMPLE}")
        path, question, query = after.partition("?")
        if "%" in authority or "%" in path:
            raise ConfigError("an invite's host and room have no '%'")
        if not question:
            raise ConfigError("the room's key is missing: add ?key=... (the gateway prints it)")
        host, port = _parse_authority(authority)
        if "/" in path:
            raise ConfigError(f"{path!r} is not a room id (no '/')")
        fields = _parse_query(query)
        for field_name, value in fields.items():
            if field_name != "name" and "%" in value:
                raise ConfigError(f"the field {field_name!r} has no '%'")
        key_text = fields.pop("key", None)
        if key_text is None:
            raise ConfigError("the room's key is missing: add key=... (the gateway prints it)")
        client_key = parse_key(key_text)
        if client_key is None:
            raise ConfigError("the room's key is not 43 characters of base64url")
        pin = fields.pop("pin", None)
        name_text = fields.pop("name", None)
        name: str | None = None
        if name_text is not None:
            try:
                name = urllib.parse.unquote(name_text, errors="strict")
            except UnicodeDecodeError:
                raise ConfigError("the room name is not percent-encoded UTF-8") from None
        server_name = fields.pop("sni", None)
        if fields:
            raise ConfigError(f"unknown invite field(s): {', '.join(sorted(fields))}")
        if server_name == host:
            server_name = None
        return cls(
            host=host,
            port=port,
            room=path,
            client_key=client_key,
            pin=None if pin is None else pin.lower(),
            name=name,
            server_name=server_name,
        )


def _parse_authority(authority: str) -> tuple[str, int]:
    if "@" in authority:
        raise ConfigError("an invite has no user name ('@')")
    if authority.startswith("["):
        host, bracket, port_text = authority[1:].partition("]")
        if not bracket or ":" not in host:
            raise ConfigError(
                f"{authority!r} is not an IPv6 address in brackets like [2001:db8::1]"
            )
        if port_text and not port_text.startswith(":"):
            raise ConfigError(f"{authority!r}: after ']' comes ':PORT' or nothing")
        port_text = port_text[1:] if port_text else ""
        had_port = bool(port_text) or authority.endswith(":")
    else:
        host, colon, port_text = authority.partition(":")
        had_port = bool(colon)
        if ":" in port_text:
            raise ConfigError(
                f"write an IPv6 address in brackets, like [2001:db8::1], not {authority!r}"
            )
    if not host:
        raise ConfigError(f"the relay's host is missing: {_EXAMPLE}")
    check_invite_host(host)
    if not had_port:
        return host, DEFAULT_INVITE_PORT
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{port_text!r} is not a port from 1 to 65535")
    return host, int(port_text)


def _parse_query(query: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in query.split("&"):
        key, equals, value = item.partition("=")
        if not equals or not key or not value:
            raise ConfigError(f"{redact_invite(item)!r} is not a field like pin=sha256:...")
        if key in fields:
            raise ConfigError(f"the field {key!r} is given twice")
        fields[key] = value
    return fields

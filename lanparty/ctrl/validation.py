"""The rules a received control message must follow (PROTOCOL.md sections 2, 4 and 10).

``validate_hello`` is where the shape rules of a hello live, in the order
the protocol fixes; credentials and room state (not_authorized,
room_not_open, duplicate_mac, room_full, relay_full, mtu_too_small) need
the relay's rooms and are the switch's. ``validate_relay_message``
checks what an endpoint receives, so that a broken or hostile relay yields a
typed error rather than nonsense further down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from lanparty import PROTOCOL_VERSION
from lanparty.credentials import is_room_id, is_room_name, is_sha256_hex, parse_key
from lanparty.ctrl.errors import HelloRejectedError, InvalidMessageError
from lanparty.ctrl.messages import (
    Disconnect,
    Hello,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Reject,
    RejectCode,
    Role,
    Stats,
    Welcome,
)
from lanparty.proto.mac import InvalidMacError, check_endpoint_mac, format_mac, parse_mac
from lanparty.proto.mtu import MIN_ROOM_MTU, max_frame

_T = TypeVar("_T", int, str)

_SHOWN_CHARS = 40


def is_unicode_text(text: str) -> bool:
    """False for strings with lone surrogates (JSON ``"\\ud800"``): UTF-8 cannot carry them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(text: str) -> str:
    """A peer's value quoted for a message, cut short so that an answer never grows with it."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return repr(text[:_SHOWN_CHARS]) + "..."


def _shown_int(number: int) -> str:
    text = str(number)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def json_kind(value: object) -> str:
    """How a decoded JSON value is named in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a number"


def _hello_field(fields: Mapping[str, object], name: str, kind: type[_T]) -> _T:
    if name not in fields:
        raise HelloRejectedError(RejectCode.MALFORMED, f"the hello message has no {name!r} field")
    value = fields[name]
    # type() rather than isinstance() alone: JSON true/false must not pass as integers
    if isinstance(value, kind) and type(value) is kind:
        if isinstance(value, str) and not is_unicode_text(value):
            raise HelloRejectedError(
                RejectCode.MALFORMED, f"the hello field {name!r} is not valid Unicode text"
            )
        return value
    expected = "an integer" if kind is int else "a string"
    raise HelloRejectedError(
        RejectCode.MALFORMED,
        f"the hello field {name!r} must be {expected}, not {json_kind(value)}",
    )


_MAX_SOFTWARE_CHARS = 64
_MAX_OPERATOR_TOKEN_CHARS = 256


def _optional_field(fields: Mapping[str, object], name: str) -> str | None:
    return _hello_field(fields, name, str) if name in fields else None


def _key_field(fields: Mapping[str, object], name: str) -> bytes:
    """A 32-byte key or id; the message never quotes the value (it may be a secret)."""
    key = parse_key(_hello_field(fields, name, str))
    if key is None:
        raise HelloRejectedError(
            RejectCode.MALFORMED,
            f"the hello field {name!r} must be 32 bytes in base64url without padding "
            "(43 characters)",
        )
    return key


def validate_hello(fields: Mapping[str, object]) -> Hello:
    """Apply the shape rules of a hello in protocol order (PROTOCOL.md 10, step 1).

    Raises ``HelloRejectedError`` on the first failure: field shapes shared
    by both protocol versions, ``protocol`` (so that a version 1 endpoint
    hears ``unsupported_protocol``, not ``malformed``), ``role``, the role's
    credential fields, ``room``, ``mac``. Credentials and room state
    (``max_datagram`` included: it says something about the room) are the
    switch's. ``fields`` is the decoded JSON object; unknown fields are
    ignored. ``software`` is cut to 64 characters.
    """
    protocol = _hello_field(fields, "protocol", int)
    role_text = _hello_field(fields, "role", str)
    room = _hello_field(fields, "room", str)
    mac_text = _hello_field(fields, "mac", str)
    max_datagram = _hello_field(fields, "max_datagram", int)
    software = _optional_field(fields, "software")

    if protocol != PROTOCOL_VERSION:
        raise HelloRejectedError(
            RejectCode.UNSUPPORTED_PROTOCOL,
            f"this relay speaks lanparty protocol {PROTOCOL_VERSION} (invite-only rooms), "
            f"not {_shown_int(protocol)}; update lanparty on this machine",
        )
    try:
        role = Role(role_text)
    except ValueError:
        raise HelloRejectedError(
            RejectCode.INVALID_ROLE,
            f"the role must be 'client' or 'gateway', not {_shown(role_text)}",
        ) from None
    gateway_key = client_key_sha256 = room_name = operator_token = None
    client_key = client_id = None
    if role is Role.GATEWAY:
        gateway_key = _key_field(fields, "gateway_key")
        client_key_sha256 = _hello_field(fields, "client_key_sha256", str)
        if not is_sha256_hex(client_key_sha256):
            raise HelloRejectedError(
                RejectCode.MALFORMED,
                "the hello field 'client_key_sha256' must be 64 lower-case hex digits",
            )
        room_name = _optional_field(fields, "room_name")
        if room_name is not None and not is_room_name(room_name):
            raise HelloRejectedError(
                RejectCode.MALFORMED,
                f"the room name {_shown(room_name)} is not allowed: use 1 to 32 letters, "
                "digits, spaces, '_' or '-'",
            )
        operator_token = _optional_field(fields, "operator_token")
        if operator_token is not None and len(operator_token) > _MAX_OPERATOR_TOKEN_CHARS:
            raise HelloRejectedError(
                RejectCode.MALFORMED,
                f"the operator token is longer than {_MAX_OPERATOR_TOKEN_CHARS} characters",
            )
    else:
        client_key = _key_field(fields, "client_key")
        client_id = _key_field(fields, "client_id")
    if not is_room_id(room):
        raise HelloRejectedError(
            RejectCode.INVALID_ROOM,
            f"{_shown(room)} is not a room id (26 characters of a-z and 2-7): "
            "use the invite the party's gateway printed",
        )
    try:
        mac = parse_mac(mac_text)
        check_endpoint_mac(mac, must_be_local=role is Role.CLIENT)
    except InvalidMacError as exc:
        problem = str(exc)
        if len(mac_text) > _SHOWN_CHARS:
            problem = f"{_shown(mac_text)} is not a MAC address like 02:00:00:aa:bb:cc"
        raise HelloRejectedError(RejectCode.INVALID_MAC, problem) from None
    return Hello(
        protocol=protocol,
        role=role,
        room=room,
        mac=format_mac(mac),
        max_datagram=max_datagram,
        software=None if software is None else software[:_MAX_SOFTWARE_CHARS],
        gateway_key=gateway_key,
        client_key_sha256=client_key_sha256,
        room_name=room_name,
        operator_token=operator_token,
        client_key=client_key,
        client_id=client_id,
    )


def _invalid(message_type: str, problem: str) -> InvalidMessageError:
    return InvalidMessageError(f"the relay sent an invalid {message_type} message: {problem}")


def _check_peer(message_type: str, peer_id: int, role: Role, mac_text: str) -> None:
    if peer_id < 0:
        raise _invalid(message_type, f"peer_id {peer_id} is negative")
    try:
        check_endpoint_mac(parse_mac(mac_text), must_be_local=role is Role.CLIENT)
    except InvalidMacError as exc:
        raise _invalid(message_type, str(exc)) from None


def _check_welcome(welcome: Welcome) -> None:
    if welcome.protocol != PROTOCOL_VERSION:
        raise _invalid("welcome", f"protocol {welcome.protocol} is not protocol {PROTOCOL_VERSION}")
    if welcome.peer_id < 0:
        raise _invalid("welcome", f"peer_id {welcome.peer_id} is negative")
    if not is_room_id(welcome.room):
        raise _invalid("welcome", f"{_shown(welcome.room)} is not a room id")
    if welcome.room_name is not None and not is_room_name(welcome.room_name):
        raise _invalid("welcome", f"the room name {_shown(welcome.room_name)} is not allowed")
    if welcome.mtu < MIN_ROOM_MTU:
        raise _invalid("welcome", f"mtu {welcome.mtu} is below {MIN_ROOM_MTU}")
    if welcome.max_frame != max_frame(welcome.mtu):
        raise _invalid(
            "welcome",
            f"max_frame {welcome.max_frame} does not match mtu {welcome.mtu} "
            f"(expected {max_frame(welcome.mtu)})",
        )
    _check_peer_list(welcome.peer_id, welcome.peers)


def _check_peer_list(own_peer_id: int, peers: tuple[PeerInfo, ...]) -> None:
    seen_ids = {own_peer_id}
    seen_macs: set[str] = set()
    gateways = 0
    for peer in peers:
        _check_peer("welcome", peer.peer_id, peer.role, peer.mac)
        if peer.peer_id in seen_ids:
            raise _invalid("welcome", f"peer_id {peer.peer_id} appears twice")
        if peer.mac in seen_macs:
            raise _invalid("welcome", f"the MAC {peer.mac} appears twice")
        seen_ids.add(peer.peer_id)
        seen_macs.add(peer.mac)
        gateways += peer.role is Role.GATEWAY
    if gateways > 1:
        raise _invalid("welcome", f"the room lists {gateways} gateways; at most one is allowed")


def _check_stats(stats: Stats) -> None:
    counters = {
        "rx_frames": stats.rx_frames,
        "rx_bytes": stats.rx_bytes,
        "tx_frames": stats.tx_frames,
        "tx_bytes": stats.tx_bytes,
    }
    counters.update((f"drops.{reason}", count) for reason, count in stats.drops)
    for name, count in counters.items():
        if count < 0:
            raise _invalid("stats", f"{name} is negative ({count})")


def validate_relay_message(
    message: Welcome | Reject | PeerJoined | PeerLeft | Stats | Disconnect,
) -> None:
    """Raise ``InvalidMessageError`` if a message from the relay breaks PROTOCOL.md.

    Field types are already checked by the codec; this checks values. Whether
    the message is allowed at this point of the session is the session's call.
    """
    match message:
        case Welcome():
            _check_welcome(message)
        case PeerJoined():
            _check_peer("peer_joined", message.peer_id, message.role, message.mac)
        case PeerLeft():
            if message.peer_id < 0:
                raise _invalid("peer_left", f"peer_id {message.peer_id} is negative")
        case Stats():
            _check_stats(message)
        case Reject() | Disconnect():
            pass

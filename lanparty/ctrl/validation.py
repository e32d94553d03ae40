"""The rules a received control message must follow (PROTOCOL.md sections 2 and 4).

``validate_hello`` is where the relay's hello rules live, in the order the
protocol fixes; room-state rules (gateway_present, duplicate_mac, room_full,
relay_full) need the relay's rooms and are the relay's. ``validate_relay_message``
checks what an endpoint receives, so that a broken or hostile relay yields a
typed error rather than nonsense further down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from lanparty import PROTOCOL_VERSION
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
from lanparty.proto.mtu import MIN_ROOM_MTU, endpoint_capacity, max_frame, required_max_datagram

_T = TypeVar("_T", int, str)

_SHOWN_CHARS = 40
_ROOM = re.compile(r"[A-Za-z0-9_-]{1,32}")


def is_valid_room(room: str) -> bool:
    """1 to 32 characters of ``A-Z a-z 0-9 _ -``."""
    return _ROOM.fullmatch(room) is not None


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


def validate_hello(fields: Mapping[str, object]) -> Hello:
    """Apply the hello rules in protocol order; raise ``HelloRejectedError`` on the first failure.

    ``fields`` is the decoded JSON object; unknown fields (``type`` included) are ignored.
    """
    protocol = _hello_field(fields, "protocol", int)
    role_text = _hello_field(fields, "role", str)
    room = _hello_field(fields, "room", str)
    mac_text = _hello_field(fields, "mac", str)
    max_datagram = _hello_field(fields, "max_datagram", int)
    software = _hello_field(fields, "software", str) if "software" in fields else None

    if protocol != PROTOCOL_VERSION:
        raise HelloRejectedError(
            RejectCode.UNSUPPORTED_PROTOCOL,
            f"this relay speaks lanparty protocol {PROTOCOL_VERSION}, not {_shown_int(protocol)}; "
            "use a lanparty version that matches the relay",
        )
    try:
        role = Role(role_text)
    except ValueError:
        raise HelloRejectedError(
            RejectCode.INVALID_ROLE,
            f"the role must be 'client' or 'gateway', not {_shown(role_text)}",
        ) from None
    if not is_valid_room(room):
        raise HelloRejectedError(
            RejectCode.INVALID_ROOM,
            f"the room name {_shown(room)} is not allowed: use 1 to 32 letters, digits, '_' or '-'",
        )
    try:
        mac = parse_mac(mac_text)
        check_endpoint_mac(mac, must_be_local=role is Role.CLIENT)
    except InvalidMacError as exc:
        problem = str(exc)
        if len(mac_text) > _SHOWN_CHARS:
            problem = f"{_shown(mac_text)} is not a MAC address like 02:00:00:aa:bb:cc"
        raise HelloRejectedError(RejectCode.INVALID_MAC, problem) from None
    if endpoint_capacity(max_datagram) < MIN_ROOM_MTU:
        raise HelloRejectedError(
            RejectCode.MTU_TOO_SMALL,
            f"a max_datagram of {_shown_int(max_datagram)} bytes carries an IP MTU of only "
            f"{_shown_int(endpoint_capacity(max_datagram))}; the smallest room MTU, "
            f"{MIN_ROOM_MTU}, needs a max_datagram of at least "
            f"{required_max_datagram(MIN_ROOM_MTU)} "
            "(check the path MTU to the relay)",
        )
    return Hello(
        protocol=protocol,
        role=role,
        room=room,
        mac=format_mac(mac),
        max_datagram=max_datagram,
        software=software,
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
    if not is_valid_room(welcome.room):
        raise _invalid("welcome", f"the room name {_shown(welcome.room)} is not allowed")
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

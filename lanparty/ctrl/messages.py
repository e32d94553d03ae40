"""Control-stream messages (PROTOCOL.md sections 2 and 10) as frozen values.

Every message is keyword-only and immutable. MAC fields are normalised to
lower-case ``aa:bb:cc:dd:ee:ff`` on construction, so a message never holds
two spellings of one address. Semantic checks of received messages live in
``lanparty.ctrl.validation``; these classes only fix the shapes. Secret
fields (keys, the operator token) are left out of ``repr``, so a message
in a log line or a traceback shows no key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

import attrs

from lanparty import PROTOCOL_VERSION
from lanparty.proto.mac import normalize_mac


class MessageType(StrEnum):
    HELLO = "hello"
    WELCOME = "welcome"
    REJECT = "reject"
    PEER_JOINED = "peer_joined"
    PEER_LEFT = "peer_left"
    STATS = "stats"
    DISCONNECT = "disconnect"


class Role(StrEnum):
    CLIENT = "client"
    GATEWAY = "gateway"


class RejectCode(StrEnum):
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    MALFORMED = "malformed"
    INVALID_ROLE = "invalid_role"
    INVALID_ROOM = "invalid_room"
    INVALID_MAC = "invalid_mac"
    ROOM_FULL = "room_full"
    RELAY_FULL = "relay_full"
    DUPLICATE_MAC = "duplicate_mac"
    MTU_TOO_SMALL = "mtu_too_small"
    HELLO_TIMEOUT = "hello_timeout"
    NOT_AUTHORIZED = "not_authorized"
    ROOM_NOT_OPEN = "room_not_open"


class DisconnectReason(StrEnum):
    """The ``reason`` of a ``disconnect`` the relay sends (the field itself is free text)."""

    LEAVING = "leaving"
    RELAY_SHUTDOWN = "relay shutting down"
    MALFORMED = "malformed datagrams"
    REPLACED = "replaced"
    KEY_ROTATED = "key_rotated"
    ROOM_CLOSED = "room_closed"


class PeerLeftReason(StrEnum):
    DISCONNECT = "disconnect"
    CLOSED = "closed"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    RELAY_SHUTDOWN = "relay_shutdown"


DropCounts: TypeAlias = tuple[tuple[str, int], ...]


def to_drop_counts(drops: Mapping[Any, int] | Iterable[tuple[str, int]]) -> DropCounts:
    """Normalise drop counters to ``(reason, count)`` pairs sorted by reason.

    Reasons may be ``str`` or ``StrEnum`` keys (``Mapping`` is invariant in its
    key type, hence ``Any``). Sorting makes two equal mappings compare and hash
    equal whatever their order.
    """
    pairs = drops.items() if isinstance(drops, Mapping) else drops
    counts = dict(pairs)
    for reason in counts:
        if not isinstance(reason, str):
            raise TypeError(f"a drop reason is a string, not {reason!r}")
    return tuple(sorted((str(reason), count) for reason, count in counts.items()))


@attrs.frozen(kw_only=True)
class Hello:
    """``room`` is the room id; the credentials a role brings are None for the other role."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO

    protocol: int = PROTOCOL_VERSION
    role: Role
    room: str
    mac: str = attrs.field(converter=normalize_mac)
    max_datagram: int
    software: str | None = None
    # gateway
    gateway_key: bytes | None = attrs.field(default=None, repr=False)
    client_key_sha256: str | None = None
    room_name: str | None = None
    operator_token: str | None = attrs.field(default=None, repr=False)
    # client
    client_key: bytes | None = attrs.field(default=None, repr=False)
    client_id: bytes | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class PeerInfo:
    """A member already in the room, as listed in ``welcome``."""

    peer_id: int
    role: Role
    mac: str = attrs.field(converter=normalize_mac)


@attrs.frozen(kw_only=True)
class Welcome:
    TYPE: ClassVar[MessageType] = MessageType.WELCOME

    protocol: int = PROTOCOL_VERSION
    peer_id: int
    room: str
    mtu: int
    max_frame: int
    peers: tuple[PeerInfo, ...] = ()
    software: str
    room_name: str | None = None


@attrs.frozen(kw_only=True)
class Reject:
    TYPE: ClassVar[MessageType] = MessageType.REJECT

    code: RejectCode
    message: str


@attrs.frozen(kw_only=True)
class PeerJoined:
    TYPE: ClassVar[MessageType] = MessageType.PEER_JOINED

    peer_id: int
    role: Role
    mac: str = attrs.field(converter=normalize_mac)


@attrs.frozen(kw_only=True)
class PeerLeft:
    TYPE: ClassVar[MessageType] = MessageType.PEER_LEFT

    peer_id: int
    reason: PeerLeftReason


@attrs.frozen(kw_only=True)
class Stats:
    """The relay's counters for the receiving peer; ``drops`` is a JSON object on the wire."""

    TYPE: ClassVar[MessageType] = MessageType.STATS

    rx_frames: int
    rx_bytes: int
    tx_frames: int
    tx_bytes: int
    drops: DropCounts = attrs.field(default=(), converter=to_drop_counts)

    def drops_by_reason(self) -> dict[str, int]:
        return dict(self.drops)


@attrs.frozen(kw_only=True)
class Disconnect:
    TYPE: ClassVar[MessageType] = MessageType.DISCONNECT

    reason: str


Message: TypeAlias = Hello | Welcome | Reject | PeerJoined | PeerLeft | Stats | Disconnect
# what the relay sends an endpoint; ``disconnect`` travels both ways
RelayMessage: TypeAlias = Welcome | Reject | PeerJoined | PeerLeft | Stats | Disconnect

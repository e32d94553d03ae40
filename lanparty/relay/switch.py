"""The relay's switch: rooms, admission and the forwarding decision (PROTOCOL.md 4-9).

Sans-I/O in the style of h11: no sockets, no clock, no logging. The shell
(``service.py``) hands in a validated ``hello`` and gets a member or a
``HelloRejectedError``; it hands in each received datagram with the time and
gets back the members to send the same bytes to, or the ``DropReason``.

- ``Switch.admit``: the room-state rules of a ``hello`` (section 2) and the
  room MTU (section 4);
- ``Switch.forward``: one datagram through section 5 in order, with the
  safety filters (``filters.py``, section 6), the rate limits (section 7)
  and the malformed threshold (section 8);
- ``Switch.leave``: section 9.

Where the contract is silent:

- A gateway is not counted in ``max_clients_per_room``; ``max_peers`` counts
  every member, gateways included.
- The gateway's own MAC (from its ``hello``) never ages. Learned LAN MACs age
  out ``lan_mac_ageing_s`` after the last frame from them. A room learns at
  most ``max_learned_macs_per_room`` of them; when full (after expiring the
  aged ones) a new source is not learned, like a switch with a full MAC
  table: its frames still pass and frames to it are flooded as unknown
  unicast.
- A gateway frame that passes the source check teaches its source MAC even
  if a later step (a filter, a rate limit) drops it: section 5 learns at
  step 2. A client may take a learned MAC once it has aged out.
- The malformed threshold trips when ``malformed_limit + 1`` malformed
  datagrams arrive less than ``malformed_window_s`` apart (first to last).
- Section 5's order is kept strictly: a frame dropped as ``reflection`` has
  already passed (and been charged to) the rate limits. When a frame fails
  both of its buckets the frames/s reason is reported.
- A gateway limited by ``gateway_bps`` has only the total bits/s bucket; the
  frames/s limits are for clients.
- Datagrams of a member that has already left are ignored: ``forward``
  returns an empty tuple and counts nothing.
- A member keeps being served after ``should_disconnect`` turns true; closing
  it is the shell's job.
- Byte counts (``rx_bytes``, ``forwarded_bytes``) are datagram bytes, as the
  transport counts them; the bits/s limit counts Ethernet frame bytes.
"""

from __future__ import annotations

import itertools
import math
import types
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import attrs

from lanparty.ctrl.errors import HelloRejectedError
from lanparty.ctrl.messages import Hello, PeerInfo, RejectCode, Role, Welcome
from lanparty.errors import ConfigError
from lanparty.obs.counters import DropReason, TrafficCounters
from lanparty.proto.mac import parse_mac
from lanparty.proto.mtu import (
    DEFAULT_RELAY_MTU,
    MIN_ROOM_MTU,
    admit_mtu,
    check_relay_mtu,
    endpoint_capacity,
    max_frame,
)
from lanparty.proto.overlay import MIN_DATAGRAM_BYTES, OVERLAY_ETHERNET
from lanparty.relay.filters import safety_drop_at
from lanparty.relay.ratelimit import TokenBucket

# Enum member lookup costs about 0.1 us on Python 3.11; these run per frame.
_MALFORMED = DropReason.MALFORMED
_SPOOFED_SOURCE = DropReason.SPOOFED_SOURCE
_SOURCE_CONFLICT = DropReason.SOURCE_CONFLICT
_RATE_LIMITED_BROADCAST = DropReason.RATE_LIMITED_BROADCAST
_RATE_LIMITED_UNKNOWN_UNICAST = DropReason.RATE_LIMITED_UNKNOWN_UNICAST
_RATE_LIMITED_TOTAL = DropReason.RATE_LIMITED_TOTAL
_REFLECTION = DropReason.REFLECTION

_BITS_PER_BYTE = 8


def _option(field_name: str) -> str:
    """The relay option a ``RelayLimits`` field comes from, for error messages."""
    return "--mtu" if field_name == "relay_mtu" else "--" + field_name.replace("_", "-")


def _check_positive(name: str, value: float, unit: str, *, minimum: float = 0.0) -> None:
    if not (math.isfinite(value) and value > minimum):
        bound = "a positive" if minimum == 0 else f"a number above {minimum:g} of"
        raise ConfigError(f"{_option(name)} must be {bound} {unit}, not {value!r}")


@attrs.frozen
class RelayLimits:
    """The relay's limits, from its command line; defaults are the contract's.

    Raises ``ConfigError`` for values the relay cannot work with.
    """

    relay_mtu: int = DEFAULT_RELAY_MTU
    max_rooms: int = 1000
    # Clients per room; the room's one gateway is not counted.
    max_clients_per_room: int = 64
    max_peers: int = 4096
    malformed_limit: int = 100
    malformed_window_s: float = 10.0
    lan_mac_ageing_s: float = 300.0
    client_broadcast_pps: float = 200
    client_broadcast_burst: float = 400
    client_unknown_unicast_pps: float = 200
    client_unknown_unicast_burst: float = 400
    client_bps: float = 100e6
    client_burst_bytes: float = 256 * 1024
    gateway_bps: float | None = None
    gateway_burst_bytes: float = 1024 * 1024
    # Not in the contract: bounds the memory a gateway can make a room use.
    max_learned_macs_per_room: int = 4096

    def __attrs_post_init__(self) -> None:
        check_relay_mtu(self.relay_mtu)
        for name in ("max_rooms", "max_clients_per_room", "max_peers", "max_learned_macs_per_room"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{_option(name)} must be at least 1, not {value!r}")
        if self.malformed_limit < 0:
            raise ConfigError(
                f"--malformed-limit must be 0 or more, not {self.malformed_limit!r} "
                "(0 disconnects a peer at its first malformed datagram)"
            )
        _check_positive("malformed_window_s", self.malformed_window_s, "number of seconds")
        _check_positive("lan_mac_ageing_s", self.lan_mac_ageing_s, "number of seconds")
        for name in ("client_broadcast_pps", "client_unknown_unicast_pps"):
            _check_positive(name, getattr(self, name), "number of frames per second")
        for name in ("client_broadcast_burst", "client_unknown_unicast_burst"):
            _check_positive(name, getattr(self, name), "number of frames", minimum=1.0 - 1e-9)
        _check_positive("client_bps", self.client_bps, "number of bits per second")
        if self.gateway_bps is not None:
            _check_positive("gateway_bps", self.gateway_bps, "number of bits per second")
        # A burst smaller than a full-size frame would drop every such frame.
        largest_frame = max_frame(self.relay_mtu)
        for name in ("client_burst_bytes", "gateway_burst_bytes"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= largest_frame):
                raise ConfigError(
                    f"{_option(name)} must be at least {largest_frame} bytes (the largest "
                    f"frame with --mtu {self.relay_mtu}), not {value!r}"
                )


class Member:
    """A gateway or client admitted to a room; the shell keeps its connection in ``handle``.

    ``counters``: rx is what the relay received from it, drops are its frames
    the relay dropped, by reason; tx is the shell's to count.
    """

    __slots__ = (
        "_malformed_times",
        "active",
        "as_target",
        "broadcast_bucket",
        "byte_bucket",
        "counters",
        "handle",
        "is_client",
        "mac",
        "mac_text",
        "max_datagram",
        "others",
        "peer_id",
        "role",
        "room",
        "should_disconnect",
        "unknown_unicast_bucket",
    )

    def __init__(
        self,
        *,
        peer_id: int,
        role: Role,
        mac: bytes,
        room: Room,
        max_datagram: int,
        handle: Any,
        limits: RelayLimits,
    ) -> None:
        self.peer_id = peer_id
        self.role = role
        self.is_client = role is Role.CLIENT
        self.mac = mac
        self.mac_text = mac.hex(":")
        self.room = room
        self.max_datagram = max_datagram
        self.handle = handle
        self.counters = TrafficCounters()
        # False once it has left its room (``Switch.leave``).
        self.active = True
        # True once it sent more than ``malformed_limit`` malformed datagrams
        # within ``malformed_window_s``; the shell then disconnects it.
        self.should_disconnect = False
        # Times of its latest malformed datagrams, one more than the limit.
        self._malformed_times: deque[float] = deque(maxlen=limits.malformed_limit + 1)
        # Forwarding results, shared rather than built per frame: every other
        # member of the room (kept up to date by the switch), and itself alone.
        self.others: tuple[Member, ...] = ()
        self.as_target: tuple[Member, ...] = (self,)
        self.broadcast_bucket: TokenBucket | None = None
        self.unknown_unicast_bucket: TokenBucket | None = None
        self.byte_bucket: TokenBucket | None = None
        if self.is_client:
            self.broadcast_bucket = TokenBucket(
                limits.client_broadcast_pps, limits.client_broadcast_burst
            )
            self.unknown_unicast_bucket = TokenBucket(
                limits.client_unknown_unicast_pps, limits.client_unknown_unicast_burst
            )
            self.byte_bucket = TokenBucket(
                limits.client_bps / _BITS_PER_BYTE, limits.client_burst_bytes
            )
        elif limits.gateway_bps is not None:
            self.byte_bucket = TokenBucket(
                limits.gateway_bps / _BITS_PER_BYTE, limits.gateway_burst_bytes
            )

    @property
    def is_gateway(self) -> bool:
        return not self.is_client

    def peer_info(self) -> PeerInfo:
        return PeerInfo(peer_id=self.peer_id, role=self.role, mac=self.mac_text)

    def count_malformed(self, now: float, window_s: float) -> None:
        """Record a malformed datagram; trip ``should_disconnect`` past the limit."""
        times = self._malformed_times
        times.append(now)
        # Full means limit + 1 datagrams; all within the window if the oldest is.
        if len(times) == times.maxlen and now - times[0] < window_s:
            self.should_disconnect = True

    def __repr__(self) -> str:
        return f"<Member {self.peer_id} {self.role} {self.mac_text} in {self.room.name!r}>"


class Room:
    """The members of one room and its MAC tables; it exists while it has members."""

    __slots__ = (
        "_max_learned_macs",
        "clients",
        "gateway",
        "lan_mac_ageing_s",
        "learned_macs",
        "max_frame",
        "members",
        "mtu",
        "name",
    )

    def __init__(self, name: str, mtu: int, *, limits: RelayLimits) -> None:
        self.name = name
        # Fixed by the first member for the room's whole life (section 4).
        self.mtu = mtu
        self.max_frame = max_frame(mtu)
        # In joining order (peer ids increase).
        self.members: dict[int, Member] = {}
        self.gateway: Member | None = None
        # Client MAC -> client.
        self.clients: dict[bytes, Member] = {}
        # MAC learned behind the gateway -> when a frame last came from it.
        # Ordered by that time (a refresh moves the MAC to the end), so that
        # expiring stops at the first fresh entry.
        self.learned_macs: dict[bytes, float] = {}
        self.lan_mac_ageing_s = limits.lan_mac_ageing_s
        self._max_learned_macs = limits.max_learned_macs_per_room

    @property
    def client_count(self) -> int:
        return len(self.clients)

    def is_lan_mac(self, mac: bytes, now: float) -> bool:
        """The gateway's own MAC, or a MAC learned behind it and not aged out."""
        gateway = self.gateway
        if gateway is None:
            return False
        if mac == gateway.mac:
            return True
        seen = self.learned_macs.get(mac)
        if seen is None:
            return False
        if now - seen < self.lan_mac_ageing_s:
            return True
        del self.learned_macs[mac]
        return False

    def mac_in_use(self, mac: bytes, now: float) -> bool:
        """Whether a new member may not take ``mac`` here (section 2's ``duplicate_mac``)."""
        return mac in self.clients or self.is_lan_mac(mac, now)

    def learn(self, mac: bytes, now: float) -> None:
        """Note that a gateway frame came from ``mac`` (a unicast address, not a client's)."""
        learned = self.learned_macs
        if learned.pop(mac, None) is None and len(learned) >= self._max_learned_macs:
            self.expire_learned_macs(now)
            if len(learned) >= self._max_learned_macs:
                return
        learned[mac] = now

    def expire_learned_macs(self, now: float) -> int:
        """Forget the learned MACs that have aged out; return how many."""
        learned = self.learned_macs
        expired: list[bytes] = []
        for mac, seen in learned.items():
            if now - seen < self.lan_mac_ageing_s:
                break
            expired.append(mac)
        for mac in expired:
            del learned[mac]
        return len(expired)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} mtu={self.mtu} members={len(self.members)}>"


class Switch:
    """Every room of one relay, and the decisions about hellos and frames."""

    def __init__(self, limits: RelayLimits, *, software: str = "lanparty-relay") -> None:
        self.limits = limits
        self.software = software
        self._rooms: dict[str, Room] = {}
        self._peer_ids = itertools.count(1)
        self._peer_count = 0
        # Relay-wide totals for metrics: each forwarded frame counts once per target.
        self.forwarded_frames = 0
        self.forwarded_bytes = 0
        self.drops: Counter[DropReason] = Counter()

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    @property
    def peer_count(self) -> int:
        return self._peer_count

    @property
    def rooms(self) -> Mapping[str, Room]:
        """Room name -> room, read-only and live."""
        return types.MappingProxyType(self._rooms)

    def get_room(self, name: str) -> Room | None:
        return self._rooms.get(name)

    # ------------------------------------------------------------ joining

    def admit(self, hello: Hello, handle: Any, now: float) -> tuple[Member, Welcome, list[Member]]:
        """Admit a validated ``hello``; return the member, its welcome, and who to tell.

        Applies the room-state rules in protocol order (``mtu_too_small``,
        ``gateway_present``, ``duplicate_mac``, ``room_full``, ``relay_full``)
        and raises ``HelloRejectedError`` for the first that fails. The
        members returned are to be sent ``peer_joined``.
        """
        mtu = self._check_admission(hello, now)
        room = self._rooms.get(hello.room)
        if room is None:
            room = self._rooms[hello.room] = Room(hello.room, mtu, limits=self.limits)
        existing = list(room.members.values())
        member = Member(
            peer_id=next(self._peer_ids),
            role=hello.role,
            mac=parse_mac(hello.mac),
            room=room,
            max_datagram=hello.max_datagram,
            handle=handle,
            limits=self.limits,
        )
        room.members[member.peer_id] = member
        if member.is_client:
            room.clients[member.mac] = member
            # An aged-out learned entry would otherwise linger under a client's MAC.
            room.learned_macs.pop(member.mac, None)
        else:
            room.gateway = member
        self._peer_count += 1
        _share_others(room)
        welcome = Welcome(
            peer_id=member.peer_id,
            room=room.name,
            mtu=room.mtu,
            max_frame=room.max_frame,
            peers=tuple(other.peer_info() for other in existing),
            software=self.software,
        )
        return member, welcome, existing

    def _check_admission(self, hello: Hello, now: float) -> int:
        """Raise ``HelloRejectedError`` for the first rule ``hello`` breaks; return the room MTU."""
        limits = self.limits
        room = self._rooms.get(hello.room)
        name = hello.room
        admission = admit_mtu(
            hello.max_datagram,
            relay_mtu=limits.relay_mtu,
            current_room_mtu=None if room is None else room.mtu,
        )
        if not admission.admitted:
            capacity = endpoint_capacity(hello.max_datagram)
            if room is None:
                situation = f"the smallest room MTU is {MIN_ROOM_MTU} bytes"
            else:
                situation = (
                    f"room {name!r} has an MTU of {room.mtu} bytes, fixed by its first member"
                )
            raise HelloRejectedError(
                RejectCode.MTU_TOO_SMALL,
                f"{situation}, but datagrams of {hello.max_datagram} bytes carry an MTU of "
                f"only {capacity}; joining needs a max_datagram of at least "
                f"{admission.required_max_datagram} bytes (check the path MTU to the relay)",
            )
        if room is not None:
            if hello.role is Role.GATEWAY and room.gateway is not None:
                raise HelloRejectedError(
                    RejectCode.GATEWAY_PRESENT,
                    f"room {name!r} already has a gateway and a room has only one; "
                    "stop the other gateway or use another room name",
                )
            if room.mac_in_use(parse_mac(hello.mac), now):
                raise HelloRejectedError(
                    RejectCode.DUPLICATE_MAC,
                    f"the MAC address {hello.mac} is already in use in room {name!r}; "
                    "every device in a room needs its own, so use another MAC address",
                )
            if hello.role is Role.CLIENT and room.client_count >= limits.max_clients_per_room:
                raise HelloRejectedError(
                    RejectCode.ROOM_FULL,
                    f"room {name!r} is full ({limits.max_clients_per_room} players); "
                    "try again when someone leaves, or use another room",
                )
        if self._peer_count >= limits.max_peers:
            raise HelloRejectedError(
                RejectCode.RELAY_FULL,
                f"this relay is full ({limits.max_peers} connections); "
                "try again later or use another relay",
            )
        if room is None and len(self._rooms) >= limits.max_rooms:
            raise HelloRejectedError(
                RejectCode.RELAY_FULL,
                f"this relay already hosts its limit of {limits.max_rooms} rooms; join an "
                "existing room, try again later, or use another relay",
            )
        return admission.room_mtu

    # ------------------------------------------------------------ leaving

    def leave(self, member: Member, now: float) -> list[Member]:
        """Remove ``member`` from its room (section 9); return who to send ``peer_left``.

        A gateway takes every learned LAN MAC with it. The room ends with its
        last member. Calling it again for the same member returns ``[]``.
        """
        if not member.active:
            return []
        member.active = False
        room = member.room
        del room.members[member.peer_id]
        if member.is_client:
            del room.clients[member.mac]
        else:
            room.gateway = None
            room.learned_macs.clear()
        self._peer_count -= 1
        member.others = ()
        member.as_target = ()
        if not room.members:
            del self._rooms[room.name]
            return []
        _share_others(room)
        return list(room.members.values())

    # ---------------------------------------------------------- forwarding

    def forward(
        self, member: Member, datagram: bytes, now: float
    ) -> tuple[Member, ...] | DropReason:
        """Decide where one datagram from ``member`` goes (sections 5 to 8, in order).

        ``datagram`` is the QUIC DATAGRAM payload: the overlay byte and the
        Ethernet frame. Returns the members to send the same bytes to (empty
        when the sender is alone in its room), or why it was dropped.
        """
        if not member.active:
            return ()
        counters = member.counters
        size_bytes = len(datagram)
        counters.rx_frames += 1
        counters.rx_bytes += size_bytes

        # 1. malformed
        if size_bytes < MIN_DATAGRAM_BYTES or datagram[0] != OVERLAY_ETHERNET:
            member.count_malformed(now, self.limits.malformed_window_s)
            return self._drop(member, _MALFORMED)

        # 2. source
        room = member.room
        source = datagram[7:13]
        if member.is_client:
            if source != member.mac:
                return self._drop(member, _SPOOFED_SOURCE)
        elif source[0] & 1 or source in room.clients:
            return self._drop(member, _SOURCE_CONFLICT)
        elif source != member.mac:
            room.learn(source, now)

        # 3. safety filters
        reason = safety_drop_at(datagram, 1, member.is_client, room.max_frame)
        if reason is not None:
            return self._drop(member, reason)

        # 5. destination, resolved before 4 because it decides which buckets apply
        destination = datagram[1:7]
        frame_bucket: TokenBucket | None = None
        if destination[0] & 1:
            targets = member.others
            frame_bucket = member.broadcast_bucket
            frame_limited = _RATE_LIMITED_BROADCAST
        else:
            client = room.clients.get(destination)
            if client is not None:
                targets = client.as_target
            elif (gateway := room.gateway) is not None and room.is_lan_mac(destination, now):
                targets = gateway.as_target
            else:
                targets = member.others
                frame_bucket = member.unknown_unicast_bucket
                frame_limited = _RATE_LIMITED_UNKNOWN_UNICAST

        # 4. rate limits
        byte_bucket = member.byte_bucket
        if byte_bucket is not None:
            frame_bytes = size_bytes - 1
            if frame_bucket is not None and frame_bucket.refill(now) < 1.0:
                return self._drop(member, frame_limited)
            if byte_bucket.refill(now) < frame_bytes:
                return self._drop(member, _RATE_LIMITED_TOTAL)
            # Charged only once the frame has passed all its buckets.
            if frame_bucket is not None:
                frame_bucket.tokens -= 1.0
            byte_bucket.tokens -= frame_bytes

        # 6. never back to the sender
        if targets is member.as_target:
            return self._drop(member, _REFLECTION)
        count = len(targets)
        self.forwarded_frames += count
        self.forwarded_bytes += count * size_bytes
        return targets

    def _drop(self, member: Member, reason: DropReason) -> DropReason:
        member.counters.drops[reason] += 1
        self.drops[reason] += 1
        return reason

    def expire_learned_macs(self, now: float) -> int:
        """Forget aged-out learned MACs in every room (for a periodic reaper); return how many.

        Not required for correctness: aged-out MACs are ignored when met.
        """
        return sum(room.expire_learned_macs(now) for room in self._rooms.values())


def _share_others(room: Room) -> None:
    """Give each member of ``room`` the tuple of every other member (after a join or leave)."""
    members = tuple(room.members.values())
    for member in members:
        member.others = tuple(other for other in members if other is not member)

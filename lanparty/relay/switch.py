"""The relay's switch: rooms, admission and the forwarding decision (PROTOCOL.md 4-10).

Sans-I/O in the style of h11: no sockets, no clock, no logging. The shell
(``service.py``) hands in a validated ``hello`` with the connection's real
DATAGRAM budget and gets an ``Admission`` or a ``HelloRejectedError``; it
hands in each received datagram with the time and gets back the members to
send the same bytes to, or the ``DropReason``.

- ``Switch.admit``: a hello's credentials and room state (section 10), the
  room MTU (section 4), and the sessions it replaces or evicts;
- ``Switch.end_expired_rooms``: rooms whose gateway left ``room_grace_s`` ago;
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
  step 2. No client may take a MAC learned in the room's life (PROTOCOL.md
  10); the room remembers at most four times ``max_learned_macs_per_room``
  of them, and binds at most eight client MACs per client seat: when full,
  a new client id is refused (``room_full``) rather than an absent
  player's binding forgotten, which would let a newcomer take its MAC.
- While a room has no gateway (grace period), a client's unicast frame to
  a MAC that is not a client's is dropped as ``no_gateway``.
- A session evicted (replaced, rotated key) leaves like any member:
  ``peer_left`` to the others with the reason the shell gives.
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

import hmac
import itertools
import math
import types
from collections import Counter, deque
from collections.abc import Hashable, Mapping
from typing import Any

import attrs

from lanparty.credentials import keys_match, room_id_for, sha256_hex
from lanparty.ctrl.errors import HelloRejectedError
from lanparty.ctrl.messages import DisconnectReason, Hello, PeerInfo, RejectCode, Role, Welcome
from lanparty.errors import ConfigError
from lanparty.obs.counters import TrafficCounters
from lanparty.proto.drops import DropReason
from lanparty.proto.ethernet import VLAN_TAG_ETHERTYPES
from lanparty.proto.fragments import OVERLAY_FRAGMENT, FragmentError, Reassembler, fragment_frame
from lanparty.proto.mac import MULTICAST_BIT, parse_mac
from lanparty.proto.mtu import DEFAULT_RELAY_MTU, admit_mtu, check_relay_mtu, max_frame
from lanparty.proto.overlay import (
    DATAGRAM_DESTINATION,
    DATAGRAM_SOURCE,
    FRAME,
    OVERLAY_ETHERNET,
    OVERLAY_HEADER,
    OVERLAY_HEADER_BYTES,
)
from lanparty.proto.overlay import MIN_DATAGRAM_BYTES as _MIN_DATAGRAM_BYTES
from lanparty.proto.tcp import clamp_mss, mss_for
from lanparty.relay.filters import client_frame_class, client_verdict, member_drop
from lanparty.relay.guard import ClientBindings, RoomGuard
from lanparty.relay.ratelimit import TokenBucket

# Enum member lookup costs about 0.1 us on Python 3.11; these run per frame.
_MALFORMED = DropReason.MALFORMED
_SPOOFED_SOURCE = DropReason.SPOOFED_SOURCE
_SOURCE_CONFLICT = DropReason.SOURCE_CONFLICT
_RATE_LIMITED_BROADCAST = DropReason.RATE_LIMITED_BROADCAST
_RATE_LIMITED_UNKNOWN_UNICAST = DropReason.RATE_LIMITED_UNKNOWN_UNICAST
_RATE_LIMITED_TOTAL = DropReason.RATE_LIMITED_TOTAL
_REFLECTION = DropReason.REFLECTION
_NO_GATEWAY = DropReason.NO_GATEWAY
_RATE_LIMITED_FRAMES = DropReason.RATE_LIMITED_FRAMES
_ETHERTYPE_ARP = 0x0806
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_IPPROTO_TCP = 6
# Overlay byte, Ethernet header and an IPv4 header up to its protocol field.
_MIN_TCP_DATAGRAM = 25
_FRAGMENT_INVALID = DropReason.FRAGMENT_INVALID
_FRAGMENT_TIMEOUT = DropReason.FRAGMENT_TIMEOUT
_OVERSIZE = DropReason.OVERSIZE
# Before any member: no budget limits the MSS.
_NO_BUDGET = 65535
# Gateway frames the guard learns the LAN from: ARP, DHCP replies, IPv6 ND and DHCPv6.
_LAN_FACTS_IPV6 = frozenset({58, 17})

# What a frame costs in the bits/s buckets on top of its own bytes: about what
# carrying it costs on the wire (UDP/IP headers, QUIC packet and frame overhead).
FRAME_COST_BYTES = 64

# Bounds on what a room remembers for its whole life (PROTOCOL.md 10): client
# MAC bindings per client seat, LAN MACs per learned-MAC slot.
_MAC_BINDINGS_PER_SEAT = 8
_LIFELONG_MACS_PER_LEARNED = 4
_GATEWAY_NOT_AUTHORIZED = (
    "this gateway may not open this room here: its key does not match the room id, or "
    "this relay opens rooms only for gateways with an operator token it lists "
    "(ask the relay's operator for one: --operator-token-file)"
)
_CLIENT_NOT_AUTHORIZED = (
    "this invite's key does not open the room: the party's host may have made a new "
    "invite; ask them for the current one"
)
_ROOM_NOT_OPEN = (
    "the party's gateway has not opened this room on the relay (yet, or any more); waiting for it"
)

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
    # Not in the contract (PROTOCOL.md 7 departs): every datagram of a member
    # costs a token of its frames/s allowance, and the bits/s buckets charge
    # FRAME_COST_BYTES on top of each frame, so that small frames cannot buy
    # more relay CPU than full-size ones. Gateways are limited by default in
    # frames/s (which bounds their bits/s too); --gateway-bps adds a bits/s limit.
    client_pps: float = 12_000
    client_pps_burst: float = 24_000
    gateway_bps: float | None = None
    gateway_burst_bytes: float = 1024 * 1024
    gateway_pps: float = 100_000
    gateway_pps_burst: float = 200_000
    # Rooms whose gateway connected from one address (an IPv6 /64): a LAN party has one.
    max_rooms_per_source: int = 16
    # VLAN-tagged frames (a VID other than 0) from clients: dropped unless allowed.
    allow_client_vlan_tags: bool = False
    # Not in the contract: bounds the memory a gateway can make a room use.
    max_learned_macs_per_room: int = 4096
    # How long a room outlives its gateway (its clients stay; PROTOCOL.md 10).
    room_grace_s: float = 300.0

    def __attrs_post_init__(self) -> None:
        check_relay_mtu(self.relay_mtu)
        for name in (
            "max_rooms",
            "max_clients_per_room",
            "max_peers",
            "max_learned_macs_per_room",
            "max_rooms_per_source",
        ):
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
        if not (math.isfinite(self.room_grace_s) and self.room_grace_s >= 0):
            raise ConfigError(
                f"--room-grace-s must be 0 or more seconds, not {self.room_grace_s!r}"
            )
        for name in (
            "client_broadcast_pps",
            "client_unknown_unicast_pps",
            "client_pps",
            "gateway_pps",
        ):
            _check_positive(name, getattr(self, name), "number of frames per second")
        for name in (
            "client_broadcast_burst",
            "client_unknown_unicast_burst",
            "client_pps_burst",
            "gateway_pps_burst",
        ):
            _check_positive(name, getattr(self, name), "number of frames", minimum=1.0 - 1e-9)
        _check_positive("client_bps", self.client_bps, "number of bits per second")
        if self.gateway_bps is not None:
            _check_positive("gateway_bps", self.gateway_bps, "number of bits per second")
        # A burst smaller than a full-size frame would drop every such frame.
        # What the largest frame costs in a bits/s bucket, its per-frame cost included.
        largest_frame = max_frame(self.relay_mtu) + FRAME_COST_BYTES
        for name in ("client_burst_bytes", "gateway_burst_bytes"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= largest_frame):
                raise ConfigError(
                    f"{_option(name)} must be at least {largest_frame} bytes (what the largest "
                    f"frame with --mtu {self.relay_mtu} costs), not {value!r}"
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
        "client_id",
        "counters",
        "datagram_bucket",
        "guard",
        "handle",
        "is_client",
        "mac",
        "mac_text",
        "max_datagram",
        "next_frame_id",
        "others",
        "peer_id",
        "reassembler",
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
        # A client's id in its room (set on admission); empty for a gateway.
        self.client_id = b""
        # Its addresses, as the room's L2 guard knows them.
        self.guard = ClientBindings()
        # Its fragments being put together, and the id of the next frame we fragment to it.
        self.reassembler = Reassembler(room.max_frame)
        self.next_frame_id = 0
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
            self.datagram_bucket = TokenBucket(limits.client_pps, limits.client_pps_burst)
            self.broadcast_bucket = TokenBucket(
                limits.client_broadcast_pps, limits.client_broadcast_burst
            )
            self.unknown_unicast_bucket = TokenBucket(
                limits.client_unknown_unicast_pps, limits.client_unknown_unicast_burst
            )
            self.byte_bucket = TokenBucket(
                limits.client_bps / _BITS_PER_BYTE, limits.client_burst_bytes
            )
        else:
            self.datagram_bucket = TokenBucket(limits.gateway_pps, limits.gateway_pps_burst)
            if limits.gateway_bps is not None:
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
        return f"<Member {self.peer_id} {self.role} {self.mac_text} in {self.room.id}>"


class Room:
    """One room: its gateway, clients, MAC tables and the bindings kept for its whole life.

    A room is opened by its gateway and exists while it has one, and for
    ``room_grace_s`` after the gateway left (``gateway_left_at``).
    """

    __slots__ = (
        "_max_learned_macs",
        "_max_lifelong_macs",
        "client_key_sha256",
        "client_macs",
        "clients",
        "gateway",
        "gateway_left_at",
        "guard",
        "id",
        "lan_mac_ageing_s",
        "learned_macs",
        "lifelong_lan_macs",
        "mac_owners",
        "max_frame",
        "members",
        "mss_ipv4",
        "mss_ipv6",
        "mtu",
        "name",
        "sessions",
        "source",
    )

    def __init__(
        self,
        room_id: str,
        mtu: int,
        *,
        client_key_sha256: str,
        name: str | None,
        limits: RelayLimits,
    ) -> None:
        self.id = room_id
        # The gateway's label, shown to players; not an identifier.
        self.name = name
        # Fixed when the gateway opens the room, for the room's whole life (section 4).
        self.mtu = mtu
        self.max_frame = max_frame(mtu)
        # What TCP SYNs are clamped to: one datagram of the smallest budget in the room.
        self.mss_ipv4 = mss_for(_NO_BUDGET, ipv6=False)
        self.mss_ipv6 = mss_for(_NO_BUDGET, ipv6=True)
        self.client_key_sha256 = client_key_sha256
        # In joining order (peer ids increase).
        self.members: dict[int, Member] = {}
        self.gateway: Member | None = None
        self.gateway_left_at: float | None = None
        # Client MAC -> client.
        self.clients: dict[bytes, Member] = {}
        # Client id -> its current session.
        self.sessions: dict[bytes, Member] = {}
        # For the room's whole life: client MAC -> the client id that holds it,
        # and client id -> its MAC (one at a time). Oldest first.
        self.mac_owners: dict[bytes, bytes] = {}
        self.client_macs: dict[bytes, bytes] = {}
        # MAC learned behind the gateway -> when a frame last came from it.
        # Ordered by that time (a refresh moves the MAC to the end), so that
        # expiring stops at the first fresh entry.
        self.learned_macs: dict[bytes, float] = {}
        # Every LAN MAC seen in the room's life (the gateway's own included),
        # which no client may ever claim; bounded.
        self.lifelong_lan_macs: set[bytes] = set()
        self.lan_mac_ageing_s = limits.lan_mac_ageing_s
        self.guard = RoomGuard(allow_vlan_tags=limits.allow_client_vlan_tags)
        # Where the gateway that opened the room connected from (per-source room cap).
        self.source: Hashable | None = None
        self._max_learned_macs = limits.max_learned_macs_per_room
        self._max_lifelong_macs = _LIFELONG_MACS_PER_LEARNED * limits.max_learned_macs_per_room

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

    def remember_lan_mac(self, mac: bytes) -> None:
        lifelong = self.lifelong_lan_macs
        if len(lifelong) < self._max_lifelong_macs:
            lifelong.add(mac)

    def learn(self, mac: bytes, now: float) -> None:
        """Note that a gateway frame came from ``mac`` (a unicast address, not a client's)."""
        learned = self.learned_macs
        if learned.pop(mac, None) is None:
            if len(learned) >= self._max_learned_macs:
                self.expire_learned_macs(now)
                if len(learned) >= self._max_learned_macs:
                    return
            self.remember_lan_mac(mac)
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

    def bind_client_mac(self, client_id: bytes, mac: bytes) -> None:
        """Bind ``mac`` to ``client_id`` for the room's life; a client id holds one MAC."""
        previous = self.client_macs.pop(client_id, None)
        if previous is not None and previous != mac:
            del self.mac_owners[previous]
        self.mac_owners.pop(mac, None)
        self.mac_owners[mac] = client_id
        self.client_macs[client_id] = mac

    def __repr__(self) -> str:
        return f"<Room {self.id} mtu={self.mtu} members={len(self.members)}>"


@attrs.frozen
class Eviction:
    """A member the switch removed from its room; the shell sends it ``disconnect``.

    ``tell`` are the members to send ``peer_left`` (empty when the room ended).
    """

    member: Member
    reason: DisconnectReason
    tell: tuple[Member, ...]


@attrs.frozen
class Admission:
    """An admitted hello: the member, its welcome, who hears ``peer_joined``, who was evicted."""

    member: Member
    welcome: Welcome
    joined: tuple[Member, ...]
    evicted: tuple[Eviction, ...] = ()


class Switch:
    """Every room of one relay, and the decisions about hellos and frames.

    ``operator_token_hashes``: the SHA-256 hex of the tokens a gateway must
    present to open a room (``--gateway-tokens``), or None for any gateway.
    """

    def __init__(
        self,
        limits: RelayLimits,
        *,
        software: str = "lanparty-relay",
        operator_token_hashes: frozenset[str] | None = None,
    ) -> None:
        self.limits = limits
        self.software = software
        self._operator_token_hashes = (
            None if operator_token_hashes is None else tuple(sorted(operator_token_hashes))
        )
        self._rooms: dict[str, Room] = {}
        self._rooms_by_source: Counter[Hashable] = Counter()
        self._peer_ids = itertools.count(1)
        self._peer_count = 0
        # Relay-wide totals for metrics: each forwarded frame counts once per target.
        self.forwarded_frames = 0
        self.forwarded_bytes = 0
        self.drops: Counter[DropReason] = Counter()
        # Fragments received and frames reassembled from them, frames fragmented
        # and fragments sent, TCP SYNs whose MSS was clamped.
        self.fragments: Counter[str] = Counter()

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    @property
    def peer_count(self) -> int:
        return self._peer_count

    @property
    def rooms(self) -> Mapping[str, Room]:
        """Room id -> room, read-only and live."""
        return types.MappingProxyType(self._rooms)

    def get_room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    # ------------------------------------------------------------ joining

    def admit(
        self,
        hello: Hello,
        handle: Any,
        now: float,
        *,
        datagram_budget: int,
        source: Hashable | None = None,
    ) -> Admission:
        """Admit a validated ``hello`` (PROTOCOL.md 10: steps 2 and 3, then the sessions).

        ``datagram_budget`` is the DATAGRAM payload the member's QUIC
        connection can really carry; its capacity is computed from the
        smaller of that and its declared ``max_datagram``. ``source`` names
        where the connection comes from (an address, an IPv6 /64): a source
        opens at most ``max_rooms_per_source`` rooms. Raises
        ``HelloRejectedError`` for the first rule that fails; nothing about
        the room is said before the credentials pass.
        """
        room = self._authorize(hello, now)
        mac = parse_mac(hello.mac)
        if hello.role is Role.GATEWAY:
            replaced = None if room is None else room.gateway
        else:
            assert room is not None
            assert hello.client_id is not None
            replaced = room.sessions.get(hello.client_id)
        max_datagram = min(hello.max_datagram, datagram_budget)
        mtu = self._check_room_state(
            hello, room=room, mac=mac, replaced=replaced, max_datagram=max_datagram, now=now
        )
        if room is None and source is not None:
            opened = self._rooms_by_source[source]
            if opened >= self.limits.max_rooms_per_source:
                raise HelloRejectedError(
                    RejectCode.RELAY_FULL,
                    f"this address has opened its limit of {self.limits.max_rooms_per_source} "
                    "rooms on this relay; close one first, or use another relay",
                )

        evicted: list[Eviction] = []
        if replaced is not None:
            evicted.append(self._evict(replaced, DisconnectReason.REPLACED, now))
        if room is None:
            assert hello.client_key_sha256 is not None
            room = self._rooms[hello.room] = Room(
                hello.room,
                mtu,
                client_key_sha256=hello.client_key_sha256,
                name=hello.room_name,
                limits=self.limits,
            )
            if source is not None:
                room.source = source
                self._rooms_by_source[source] += 1
        elif hello.role is Role.GATEWAY:
            assert hello.client_key_sha256 is not None
            room.name = hello.room_name
            if not keys_match(hello.client_key_sha256, room.client_key_sha256):
                room.client_key_sha256 = hello.client_key_sha256
                for client in list(room.clients.values()):
                    evicted.append(self._evict(client, DisconnectReason.KEY_ROTATED, now))

        existing = tuple(room.members.values())
        member = Member(
            peer_id=next(self._peer_ids),
            role=hello.role,
            mac=mac,
            room=room,
            max_datagram=max_datagram,
            handle=handle,
            limits=self.limits,
        )
        room.members[member.peer_id] = member
        if member.is_client:
            assert hello.client_id is not None
            room.clients[mac] = member
            room.sessions[hello.client_id] = member
            member.client_id = hello.client_id
            member.guard = room.guard.bindings_for(hello.client_id)
            room.bind_client_mac(hello.client_id, mac)
        else:
            room.gateway = member
            room.gateway_left_at = None
            room.remember_lan_mac(mac)
        self._peer_count += 1
        _share_others(room)
        welcome = Welcome(
            peer_id=member.peer_id,
            room=room.id,
            mtu=room.mtu,
            max_frame=room.max_frame,
            peers=tuple(other.peer_info() for other in existing),
            software=self.software,
            room_name=room.name,
        )
        return Admission(member=member, welcome=welcome, joined=existing, evicted=tuple(evicted))

    @property
    def _max_mac_bindings(self) -> int:
        return _MAC_BINDINGS_PER_SEAT * self.limits.max_clients_per_room

    def _authorize(self, hello: Hello, now: float) -> Room | None:
        """Step 2: the credentials; return the room (None: a gateway opens a new one)."""
        if hello.role is Role.GATEWAY:
            assert hello.gateway_key is not None
            derived = room_id_for(hello.gateway_key)
            authorized = hmac.compare_digest(derived.encode(), hello.room.encode())
            if self._operator_token_hashes is not None:
                token = hello.operator_token
                token_hash = sha256_hex(token.encode()) if token is not None else ""
                # Every listed hash compared, in constant time each: no early exit.
                listed = False
                for allowed in self._operator_token_hashes:
                    listed |= keys_match(token_hash, allowed)
                authorized &= listed
            if not authorized:
                raise HelloRejectedError(RejectCode.NOT_AUTHORIZED, _GATEWAY_NOT_AUTHORIZED)
            return self._rooms.get(hello.room)
        room = self._rooms.get(hello.room)
        if room is None or self._has_expired(room, now):
            raise HelloRejectedError(RejectCode.ROOM_NOT_OPEN, _ROOM_NOT_OPEN)
        assert hello.client_key is not None
        if not keys_match(sha256_hex(hello.client_key), room.client_key_sha256):
            raise HelloRejectedError(RejectCode.NOT_AUTHORIZED, _CLIENT_NOT_AUTHORIZED)
        return room

    def _check_room_state(
        self,
        hello: Hello,
        *,
        room: Room | None,
        mac: bytes,
        replaced: Member | None,
        max_datagram: int,
        now: float,
    ) -> int:
        """Step 3 (``replaced`` counts as gone); return the room's MTU."""
        limits = self.limits
        label = "this room" if room is None or room.name is None else f"room {room.name!r}"
        if room is not None:
            if hello.role is Role.CLIENT:
                owner = room.mac_owners.get(mac)
                taken = (owner is not None and owner != hello.client_id) or (
                    mac in room.lifelong_lan_macs
                )
            else:
                client = room.clients.get(mac)
                taken = client is not None and client is not replaced
            if (
                hello.role is Role.CLIENT
                and hello.client_id not in room.client_macs
                and len(room.mac_owners) >= self._max_mac_bindings
            ):
                # Evicting someone's binding would let a newcomer take their MAC.
                raise HelloRejectedError(
                    RejectCode.ROOM_FULL,
                    f"{label} has seen as many players as it can remember; "
                    "it takes new ones when its gateway opens it anew",
                )
            if taken:
                raise HelloRejectedError(
                    RejectCode.DUPLICATE_MAC,
                    f"the MAC address {hello.mac} belongs to another device in {label}; "
                    "every device in a room needs its own, so use another MAC address",
                )
            seats_taken = room.client_count - (replaced is not None)
            if hello.role is Role.CLIENT and seats_taken >= limits.max_clients_per_room:
                raise HelloRejectedError(
                    RejectCode.ROOM_FULL,
                    f"{label} is full ({limits.max_clients_per_room} players); "
                    "try again when someone leaves",
                )
        if self._peer_count - (replaced is not None) >= limits.max_peers:
            raise HelloRejectedError(
                RejectCode.RELAY_FULL,
                f"this relay is full ({limits.max_peers} connections); "
                "try again later or use another relay",
            )
        if room is None and len(self._rooms) >= limits.max_rooms:
            raise HelloRejectedError(
                RejectCode.RELAY_FULL,
                f"this relay already hosts its limit of {limits.max_rooms} rooms; "
                "try again later, or use another relay",
            )
        admission = admit_mtu(max_datagram, relay_mtu=limits.relay_mtu)
        if not admission.admitted:
            raise HelloRejectedError(
                RejectCode.MTU_TOO_SMALL,
                f"{label} carries frames of up to {max_frame(admission.room_mtu)} bytes, but "
                f"this connection carries datagrams of only {max_datagram} bytes; joining "
                f"needs at least {admission.required_max_datagram} (check the path MTU to "
                "the relay)",
            )
        return admission.room_mtu

    # ------------------------------------------------------------ leaving

    def leave(self, member: Member, now: float) -> list[Member]:
        """Remove ``member`` from its room (section 9); return who to send ``peer_left``.

        A gateway takes every learned LAN MAC with it and starts the room's
        grace period. Calling it again for the same member returns ``[]``.
        """
        if not member.active:
            return []
        member.active = False
        room = member.room
        del room.members[member.peer_id]
        if member.is_client:
            del room.clients[member.mac]
            if room.sessions.get(member.client_id) is member:
                del room.sessions[member.client_id]
        else:
            room.gateway = None
            room.gateway_left_at = now
            room.learned_macs.clear()
        self._peer_count -= 1
        member.others = ()
        member.as_target = ()
        _share_others(room)
        return list(room.members.values())

    def _evict(self, member: Member, reason: DisconnectReason, now: float) -> Eviction:
        return Eviction(member=member, reason=reason, tell=tuple(self.leave(member, now)))

    def _has_expired(self, room: Room, now: float) -> bool:
        left_at = room.gateway_left_at
        return left_at is not None and now - left_at >= self.limits.room_grace_s

    def next_room_expiry(self) -> float | None:
        """When the next room without a gateway ends (None: no room is waiting)."""
        grace_s = self.limits.room_grace_s
        times = [r.gateway_left_at for r in self._rooms.values() if r.gateway_left_at is not None]
        return min(times) + grace_s if times else None

    def end_expired_rooms(self, now: float) -> list[Eviction]:
        """End every room whose gateway left ``room_grace_s`` ago; its clients are evicted."""
        evicted: list[Eviction] = []
        for room in [r for r in self._rooms.values() if self._has_expired(r, now)]:
            for client in list(room.clients.values()):
                self.leave(client, now)
                evicted.append(
                    Eviction(member=client, reason=DisconnectReason.ROOM_CLOSED, tell=())
                )
            del self._rooms[room.id]
            if room.source is not None:
                self._rooms_by_source[room.source] -= 1
                if not self._rooms_by_source[room.source]:
                    del self._rooms_by_source[room.source]
        return evicted

    # ---------------------------------------------------------- forwarding

    def ingress(self, member: Member, datagram: bytes, now: float) -> bytes | None:
        """What a received datagram amounts to before ``forward``: None while it is not a frame.

        A fragment goes to the sender's reassembler (PROTOCOL.md 11): None
        until its frame is whole, then the whole frame's datagram, which the
        filters judge as one. A TCP SYN or SYN-ACK comes back with its MSS
        clamped to the room's smallest budget. Anything else comes back as
        it is (``forward`` judges malformed datagrams).
        """
        if not member.active or not datagram:
            return None
        if datagram[0] == OVERLAY_FRAGMENT:
            if not member.datagram_bucket.take(now):
                self._drop(member, _RATE_LIMITED_FRAMES)
                return None
            fragments = self.fragments
            fragments["received"] += 1
            reassembler = member.reassembler
            timeouts = reassembler.timeouts
            try:
                frame = reassembler.add(datagram, now)
            except FragmentError:
                member.count_malformed(now, self.limits.malformed_window_s)
                self._drop(member, _FRAGMENT_INVALID)
                return None
            finally:
                for _ in range(reassembler.timeouts - timeouts):
                    self._drop(member, _FRAGMENT_TIMEOUT)
            if frame is None:
                return None
            fragments["reassembled"] += 1
            # Not encode_datagram: a short frame must reach forward, which counts it malformed.
            datagram = OVERLAY_HEADER + frame
        elif datagram[0] != OVERLAY_ETHERNET:
            return datagram
        # Reassembled frames too: a 14-byte frame in two fragments is short as well.
        if len(datagram) < _MIN_TCP_DATAGRAM:
            return datagram
        type_field = datagram[13] << 8 | datagram[14]
        if (
            (type_field == _ETHERTYPE_IPV4 and datagram[24] == _IPPROTO_TCP)
            or (type_field == _ETHERTYPE_IPV6 and datagram[21] == _IPPROTO_TCP)
            or type_field in VLAN_TAG_ETHERTYPES
        ):
            room = member.room
            clamped = clamp_mss(datagram, OVERLAY_HEADER_BYTES, room.mss_ipv4, room.mss_ipv6)
            if clamped is not None:
                self.fragments["mss_clamped"] += 1
                return clamped
        return datagram

    def egress(self, target: Member, datagram: bytes) -> list[bytes]:
        """The fragments that carry ``datagram`` (a whole frame) to ``target``.

        Called only for a datagram above the target's budget; [] (counted as
        ``oversize``) when even 8 fragments cannot carry it.
        """
        frame_id = target.next_frame_id
        target.next_frame_id = (frame_id + 1) & 0xFFFF
        parts = fragment_frame(datagram[FRAME], frame_id, target.max_datagram)
        if parts is None:
            self.drops[_OVERSIZE] += 1
            return []
        self.fragments["fragmented"] += 1
        self.fragments["sent"] += len(parts)
        return parts

    def forward(  # noqa: PLR0915 - the hot path: one frame, one call, no helpers
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

        # 0. every datagram costs one token of the frames/s allowance, before any
        # parsing: a flood of tiny or junk datagrams stops here, cheaply.
        if not member.datagram_bucket.take(now):
            return self._drop(member, _RATE_LIMITED_FRAMES)

        # 1. malformed: what decode_datagram refuses (tests hold the two together)
        if size_bytes < _MIN_DATAGRAM_BYTES or datagram[0] != OVERLAY_ETHERNET:
            member.count_malformed(now, self.limits.malformed_window_s)
            return self._drop(member, _MALFORMED)

        # 2. source
        room = member.room
        source = datagram[DATAGRAM_SOURCE]
        if member.is_client:
            if source != member.mac:
                return self._drop(member, _SPOOFED_SOURCE)
        elif source[0] & MULTICAST_BIT or source in room.clients:
            return self._drop(member, _SOURCE_CONFLICT)
        elif source != member.mac:
            room.learn(source, now)

        # 3. safety filters, then the L2 guard on the same classification
        destination = datagram[DATAGRAM_DESTINATION]
        reason = member_drop(destination, size_bytes - OVERLAY_HEADER_BYTES, room.max_frame)
        if reason is not None:
            return self._drop(member, reason)
        type_field = datagram[13] << 8 | datagram[14]
        if member.is_client:
            frame_class = client_frame_class(datagram, OVERLAY_HEADER_BYTES)
            if frame_class is None:
                if type_field == _ETHERTYPE_ARP:
                    reason = room.guard.client_drop(
                        member, datagram, OVERLAY_HEADER_BYTES, None, now
                    )
            elif (reason := client_verdict(frame_class)) is None and frame_class.guarded:
                reason = room.guard.client_drop(
                    member, datagram, OVERLAY_HEADER_BYTES, frame_class, now
                )
            if reason is not None:
                return self._drop(member, reason)
        elif (
            type_field == _ETHERTYPE_ARP
            # IPv4 UDP from port 67 (a 20-byte header: DHCP replies carry no options)
            or (
                type_field == _ETHERTYPE_IPV4
                and len(datagram) > 36
                and datagram[24] == 17
                and datagram[36] == 67
            )
            or (
                type_field == _ETHERTYPE_IPV6
                and len(datagram) > 21
                and datagram[21] in _LAN_FACTS_IPV6
            )
        ):
            room.guard.learn_from_gateway(datagram, OVERLAY_HEADER_BYTES, room.clients)

        # 5. destination, resolved before 4 because it decides which buckets apply
        frame_bucket: TokenBucket | None = None
        if destination[0] & MULTICAST_BIT:
            targets = member.others
            frame_bucket = member.broadcast_bucket
            frame_limited = _RATE_LIMITED_BROADCAST
        else:
            client = room.clients.get(destination)
            if client is not None:
                targets = client.as_target
            elif (gateway := room.gateway) is None:
                return self._drop(member, _NO_GATEWAY)
            elif room.is_lan_mac(destination, now):
                targets = gateway.as_target
            else:
                targets = member.others
                frame_bucket = member.unknown_unicast_bucket
                frame_limited = _RATE_LIMITED_UNKNOWN_UNICAST

        # 4. rate limits
        byte_bucket = member.byte_bucket
        if byte_bucket is not None:
            frame_bytes = size_bytes - OVERLAY_HEADER_BYTES + FRAME_COST_BYTES
            if frame_bucket is None:
                if not byte_bucket.take(now, frame_bytes):
                    return self._drop(member, _RATE_LIMITED_TOTAL)
            elif (refused := frame_bucket.take_both(byte_bucket, now, frame_bytes)) is not None:
                return self._drop(
                    member, frame_limited if refused is frame_bucket else _RATE_LIMITED_TOTAL
                )

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
    """After a join or leave: each member's tuple of the others, and the room's MSS limits."""
    members = tuple(room.members.values())
    for member in members:
        member.others = tuple(other for other in members if other is not member)
    smallest = min((member.max_datagram for member in members), default=_NO_BUDGET)
    room.mss_ipv4 = mss_for(smallest, ipv6=False)
    room.mss_ipv6 = mss_for(smallest, ipv6=True)

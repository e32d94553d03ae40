"""The client's DHCP client for the TAP (RFC 2131, 2132): a state machine with no I/O.

    client = DhcpClient(mac)
    client.start(now)
    for datagram in client.datagrams_to_send(): ...   # UDP from port 68 to datagram.destination:67
    client.receive(reply_bytes, now)                  # every datagram that came to port 68
    client.handle_timer(now)                          # when now >= client.next_timer()
    for event in client.events(): ...                 # LeaseBound, LeaseLost, OfferRefused
    client.release(now)                               # on exit: a DHCPRELEASE to send

Bytes go in, datagrams and events come out, and every method that
depends on time takes ``now`` (seconds, any monotonic clock), as
aioquic's connection does: the tests pump bytes on a fake clock. The Trio
shell that owns the socket and puts the address on the TAP is
``lanparty.client.linux.dhcp``.

What it takes from a lease: the address and its prefix, and the DNS
servers (only reported: whether they are used is the shell's business).
It asks for no routes and takes none: the router option, classless static
routes (121) and everything else a server adds are ignored.

Where the RFC leaves a choice, or is silent:

- States and what moves them are the table ``_TRANSITIONS`` (h11's way):
  INIT -> SELECTING (DISCOVER broadcast) -> REQUESTING (REQUEST broadcast)
  -> BOUND -> at T1 RENEWING (REQUEST unicast to the server) -> at T2
  REBINDING (REQUEST broadcast) -> at expiry the lease is lost and it
  starts over. A NAK in any of them also starts over, after
  ``RESTART_DELAY_S`` (a server that NAKs every request is not flooded).
- Retransmissions (RFC 2131 4.1): 4 s, doubled up to 64 s, each +-1 s at
  random; in RENEWING and REBINDING half the time left until T2 (or the
  expiry), at least ``MIN_RENEW_RETRY_S``. A REQUEST goes ``MAX_REQUESTS``
  times before the client starts over with a DISCOVER.
- Replies are checked before they count: a BOOTREPLY with our transaction
  id and our MAC, a server identifier, and for an OFFER or ACK an address a
  LAN may hand out. That address's network must be private-use (RFC 1918,
  the benchmarking 198.18.0.0/15 and the like: ``ipaddress``'s
  ``is_private``) and no wider than ``MIN_PREFIX_LENGTH``: the TAP gets
  a connected route to it, and a party LAN that offered 8.8.8.0/24, or a
  mask of 128.0.0.0, would take that part of the player's internet. Such
  an offer is refused (``OfferRefused``), and the client waits for another.
- A reply that cannot be parsed is ignored; ``receive`` never raises.
- No mask in the reply: the address's classful mask (RFC 2132 3.3 lets a
  client choose). No lease time: an hour. T1 and T2 from options 58 and 59
  when they are in order (T1 < T2 < lease), else 1/2 and 7/8 of the lease.
  A lease's times count from when its REQUEST was sent (RFC 2131 4.4.1).
"""

from __future__ import annotations

import enum
import ipaddress
import random as random_module
import struct

import attrs

__all__ = [
    "BROADCAST",
    "CLIENT_PORT",
    "SERVER_PORT",
    "Datagram",
    "DhcpClient",
    "Event",
    "Lease",
    "LeaseBound",
    "LeaseLost",
    "OfferRefused",
    "State",
    "build_message",
    "parse_reply",
]

CLIENT_PORT = 68
SERVER_PORT = 67
BROADCAST = ipaddress.IPv4Address("255.255.255.255")

FIRST_RETRY_S = 4.0
MAX_RETRY_S = 64.0
RETRY_JITTER_S = 1.0
MIN_RENEW_RETRY_S = 60.0
MAX_REQUESTS = 4
RESTART_DELAY_S = 4.0
DEFAULT_LEASE_S = 3600.0
MIN_LEASE_S = 10.0
MAX_LEASE_S = 365 * 24 * 3600.0
MIN_PREFIX_LENGTH = 8

MAGIC_COOKIE = b"\x63\x82\x53\x63"
_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_FIXED_BYTES = _FIXED.size  # 236
_OPTIONS_AT = _FIXED_BYTES + len(MAGIC_COOKIE)  # 240
_BOOTREQUEST, _BOOTREPLY = 1, 2
_HTYPE_ETHERNET, _HLEN_ETHERNET = 1, 6
_BROADCAST_FLAG = 0x8000
_ZERO = bytes(4)


class MessageType(enum.IntEnum):
    """Option 53's values (RFC 2132 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7


class Option(enum.IntEnum):
    PAD = 0
    SUBNET_MASK = 1
    DNS_SERVERS = 6
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETERS = 55
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    END = 255


PARAMETERS = bytes(
    [
        Option.SUBNET_MASK,
        Option.DNS_SERVERS,
        Option.LEASE_TIME,
        Option.SERVER_ID,
        Option.RENEWAL_TIME,
        Option.REBINDING_TIME,
    ]
)
"""What the client asks for: no router, no static routes."""


class State(enum.Enum):
    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    RELEASED = "released"


# messages


@attrs.frozen
class Reply:
    """A BOOTREPLY, parsed: what the state machine looks at."""

    xid: int
    your_address: ipaddress.IPv4Address
    client_mac: bytes
    kind: MessageType | None
    options: dict[int, bytes]


def build_message(
    kind: MessageType,
    xid: int,
    mac: bytes,
    options: dict[int, bytes],
    *,
    client_address: ipaddress.IPv4Address | None = None,
    broadcast: bool = False,
) -> bytes:
    """A BOOTREQUEST of ``kind`` (option 53 first, ``options`` in order, then END)."""
    fixed = _FIXED.pack(
        _BOOTREQUEST, _HTYPE_ETHERNET, _HLEN_ETHERNET, 0, xid, 0,
        _BROADCAST_FLAG if broadcast else 0,
        client_address.packed if client_address is not None else _ZERO, _ZERO, _ZERO, _ZERO,
        mac.ljust(16, b"\0"), b"", b"",
    )  # fmt: skip
    body = bytearray([Option.MESSAGE_TYPE, 1, kind])
    for code, value in options.items():
        body += bytes([code, len(value)]) + value
    return fixed + MAGIC_COOKIE + bytes(body) + bytes([Option.END])


def parse_reply(packet: bytes) -> Reply | None:
    """A BOOTREPLY's fields and options; None for anything else (never raises).

    Options: the first occurrence of each code counts (RFC 3396's
    concatenation is not needed for what the client reads); overloaded
    ``file``/``sname`` fields are not read.
    """
    if len(packet) < _OPTIONS_AT or packet[0] != _BOOTREPLY:
        return None
    if packet[_FIXED_BYTES:_OPTIONS_AT] != MAGIC_COOKIE:
        return None
    if packet[1] != _HTYPE_ETHERNET or packet[2] != _HLEN_ETHERNET:
        return None
    options: dict[int, bytes] = {}
    at = _OPTIONS_AT
    while at < len(packet):
        code = packet[at]
        if code == Option.END:
            break
        if code == Option.PAD:
            at += 1
            continue
        if at + 2 > len(packet) or at + 2 + packet[at + 1] > len(packet):
            return None  # an option running past the end
        length = packet[at + 1]
        options.setdefault(code, packet[at + 2 : at + 2 + length])
        at += 2 + length
    kind_bytes = options.get(Option.MESSAGE_TYPE, b"")
    kind = None
    if len(kind_bytes) == 1 and kind_bytes[0] in MessageType._value2member_map_:
        kind = MessageType(kind_bytes[0])
    return Reply(
        xid=struct.unpack_from("!I", packet, 4)[0],
        your_address=ipaddress.IPv4Address(packet[16:20]),
        client_mac=packet[28:34],
        kind=kind,
        options=options,
    )


# what comes out


@attrs.frozen
class Datagram:
    """A UDP payload to send from port 68 to ``destination`` port 67."""

    payload: bytes
    destination: ipaddress.IPv4Address


@attrs.frozen
class Lease:
    address: ipaddress.IPv4Interface
    server: ipaddress.IPv4Address
    dns_servers: tuple[ipaddress.IPv4Address, ...]
    lease_s: float
    renew_s: float
    rebind_s: float
    start: float
    """When its REQUEST was sent: the times count from there."""

    @property
    def renew_at(self) -> float:
        return self.start + self.renew_s

    @property
    def rebind_at(self) -> float:
        return self.start + self.rebind_s

    @property
    def expires_at(self) -> float:
        return self.start + self.lease_s


@attrs.frozen
class LeaseBound:
    """The address is ours until ``lease.expires_at``: put it on the interface.

    ``renewed``: the same address as before, with new times.
    """

    lease: Lease
    renewed: bool


@attrs.frozen
class LeaseLost:
    """The address is no longer ours (expired, refused by a NAK): take it off."""

    address: ipaddress.IPv4Interface
    reason: str


@attrs.frozen
class OfferRefused:
    """An offer the client will not take, and why (it goes on waiting for another)."""

    server: ipaddress.IPv4Address | None
    address: ipaddress.IPv4Address
    reason: str


Event = LeaseBound | LeaseLost | OfferRefused


# the rules


class _Input(enum.Enum):
    OFFER = "offer"
    ACK = "ack"
    NAK = "nak"
    TIMER = "timer"


_TRANSITIONS: dict[State, dict[_Input, str]] = {
    State.INIT: {_Input.TIMER: "_discover"},
    State.SELECTING: {_Input.OFFER: "_request", _Input.TIMER: "_discover_again"},
    State.REQUESTING: {
        _Input.ACK: "_bind",
        _Input.NAK: "_restart_after_nak",
        _Input.TIMER: "_request_again",
    },
    State.BOUND: {_Input.TIMER: "_renew"},
    State.RENEWING: {
        _Input.ACK: "_bind",
        _Input.NAK: "_restart_after_nak",
        _Input.TIMER: "_renew_again",
    },
    State.REBINDING: {
        _Input.ACK: "_bind",
        _Input.NAK: "_restart_after_nak",
        _Input.TIMER: "_rebind_again",
    },
    State.RELEASED: {},
}
"""Which input is taken in which state, and the method that takes it; the rest are ignored."""

_INPUTS = {
    MessageType.OFFER: _Input.OFFER,
    MessageType.ACK: _Input.ACK,
    MessageType.NAK: _Input.NAK,
}


class DhcpClient:
    """One interface's DHCP client (see the module docstring)."""

    def __init__(self, mac: bytes, *, rng: random_module.Random | None = None) -> None:
        if len(mac) != 6:
            raise ValueError("a DHCP client needs a 6-byte Ethernet MAC")
        self.mac = mac
        self._random = rng or random_module.SystemRandom()
        self.state = State.INIT
        self.lease: Lease | None = None
        self._xid = 0
        self._timer: float | None = None
        self._attempts = 0
        self._sent_at = 0.0
        self._offer: Reply | None = None
        self._outgoing: list[Datagram] = []
        self._events: list[Event] = []

    # the interface the shell uses

    def start(self, now: float) -> None:
        """Begin from INIT: a DISCOVER is ready to send."""
        if self.state is State.INIT:
            self._discover(now)

    def next_timer(self) -> float | None:
        """When ``handle_timer`` wants to be called; None: never."""
        return self._timer

    def handle_timer(self, now: float) -> None:
        if self._timer is not None and now >= self._timer:
            self._dispatch(_Input.TIMER, now, None)

    def receive(self, data: bytes, now: float) -> None:
        """A datagram that came to port 68; anything not for us is ignored."""
        reply = parse_reply(data)
        if reply is None or reply.xid != self._xid or reply.client_mac != self.mac:
            return
        kind = None if reply.kind is None else _INPUTS.get(reply.kind)
        if kind is None or _server_of(reply) is None:
            return
        self._dispatch(kind, now, reply)

    def release(self, now: float) -> None:
        """Give the address back (a DHCPRELEASE to the server) and stop; nothing if none."""
        del now
        lease = self.lease
        if lease is not None:
            self._new_xid()
            self._send(
                MessageType.RELEASE,
                {Option.SERVER_ID: lease.server.packed},
                lease.server,
                client_address=lease.address.ip,
            )
        self.lease = None
        self.state = State.RELEASED
        self._timer = None

    def datagrams_to_send(self) -> list[Datagram]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # the table's methods

    def _dispatch(self, kind: _Input, now: float, reply: Reply | None) -> None:
        method = _TRANSITIONS[self.state].get(kind)
        if method is None:
            return
        getattr(self, method)(now, reply)

    def _discover(self, now: float, reply: Reply | None = None) -> None:
        del reply
        self._new_xid()
        self._attempts = 0
        self._offer = None
        self.state = State.SELECTING
        self._send_discover(now)

    def _discover_again(self, now: float, reply: Reply | None) -> None:
        del reply
        self._send_discover(now)

    def _send_discover(self, now: float) -> None:
        self._send(MessageType.DISCOVER, {Option.PARAMETERS: PARAMETERS}, BROADCAST, broadcast=True)
        self._retry_later(now)

    def _request(self, now: float, reply: Reply | None) -> None:
        assert reply is not None
        refusal = _refusal(reply)
        if refusal is not None:
            self._events.append(OfferRefused(_server_of(reply), reply.your_address, refusal))
            return
        self._offer = reply
        self.state = State.REQUESTING
        self._attempts = 0
        self._sent_at = now
        self._send_request_for_offer(now)

    def _request_again(self, now: float, reply: Reply | None) -> None:
        del reply
        if self._attempts >= MAX_REQUESTS:
            self._discover(now)
            return
        self._send_request_for_offer(now)

    def _send_request_for_offer(self, now: float) -> None:
        offer = self._offer
        assert offer is not None
        server = _server_of(offer)
        assert server is not None
        options = {
            Option.REQUESTED_ADDRESS: offer.your_address.packed,
            Option.SERVER_ID: server.packed,
            Option.PARAMETERS: PARAMETERS,
        }
        self._send(MessageType.REQUEST, options, BROADCAST, broadcast=True)
        self._retry_later(now)

    def _bind(self, now: float, reply: Reply | None) -> None:
        assert reply is not None
        previous = self.lease
        if self.state is State.REQUESTING:
            assert self._offer is not None
            if reply.your_address != self._offer.your_address:
                return  # an ACK for another address than we asked for: not ours to take
        refusal = _refusal(reply)
        if refusal is not None:
            self._events.append(OfferRefused(_server_of(reply), reply.your_address, refusal))
            if previous is not None:
                self._lose(now, f"the server's renewal is one lanparty refuses: {refusal}")
            else:
                self._restart(now)
            return
        lease = _lease_from(reply, self._sent_at, previous)
        renewed = previous is not None and previous.address == lease.address
        if previous is not None and not renewed:
            self._events.append(LeaseLost(previous.address, "the server gave another address"))
        self.lease = lease
        self.state = State.BOUND
        self._timer = lease.renew_at
        self._events.append(LeaseBound(lease, renewed))

    def _restart_after_nak(self, now: float, reply: Reply | None) -> None:
        del reply
        if self.lease is not None:
            self._lose(now, "the DHCP server refused the address (NAK)")
        else:
            self._restart(now)

    def _renew(self, now: float, reply: Reply | None) -> None:
        del reply
        self.state = State.RENEWING
        self._new_xid()
        self._renew_again(now, None)

    def _renew_again(self, now: float, reply: Reply | None) -> None:
        del reply
        lease = self.lease
        assert lease is not None
        if now >= lease.rebind_at:
            self.state = State.REBINDING
            self._rebind_again(now, None)
            return
        self._sent_at = now
        self._send(
            MessageType.REQUEST, {Option.PARAMETERS: PARAMETERS}, lease.server,
            client_address=lease.address.ip,
        )  # fmt: skip
        self._timer = now + max(MIN_RENEW_RETRY_S, (lease.rebind_at - now) / 2)
        self._timer = min(self._timer, lease.rebind_at)

    def _rebind_again(self, now: float, reply: Reply | None) -> None:
        del reply
        lease = self.lease
        assert lease is not None
        if now >= lease.expires_at:
            self._lose(now, "the lease expired: no DHCP server renewed it")
            return
        self._sent_at = now
        self._send(
            MessageType.REQUEST, {Option.PARAMETERS: PARAMETERS}, BROADCAST,
            client_address=lease.address.ip,
        )  # fmt: skip
        self._timer = now + max(MIN_RENEW_RETRY_S, (lease.expires_at - now) / 2)
        self._timer = min(self._timer, lease.expires_at)

    # helpers

    def _lose(self, now: float, reason: str) -> None:
        lease = self.lease
        assert lease is not None
        self.lease = None
        self._events.append(LeaseLost(lease.address, reason))
        self._restart(now)

    def _restart(self, now: float) -> None:
        self.state = State.INIT
        self._offer = None
        self._timer = now + RESTART_DELAY_S

    def _new_xid(self) -> None:
        self._xid = self._random.getrandbits(32)

    def _retry_later(self, now: float) -> None:
        delay = min(MAX_RETRY_S, FIRST_RETRY_S * 2**self._attempts)
        self._attempts += 1
        self._timer = now + delay + self._random.uniform(-RETRY_JITTER_S, RETRY_JITTER_S)

    def _send(
        self,
        kind: MessageType,
        options: dict[Option, bytes],
        destination: ipaddress.IPv4Address,
        *,
        client_address: ipaddress.IPv4Address | None = None,
        broadcast: bool = False,
    ) -> None:
        payload = build_message(
            kind,
            self._xid,
            self.mac,
            {int(code): value for code, value in options.items()},
            client_address=client_address,
            broadcast=broadcast,
        )
        self._outgoing.append(Datagram(payload, destination))


def _server_of(reply: Reply) -> ipaddress.IPv4Address | None:
    server = reply.options.get(Option.SERVER_ID, b"")
    return ipaddress.IPv4Address(server) if len(server) == 4 else None


def _mask_of(reply: Reply) -> int | None:
    """The prefix length of option 1, or the classful one; None for a mask with holes."""
    mask = reply.options.get(Option.SUBNET_MASK)
    if mask is None or len(mask) != 4:
        first = reply.your_address.packed[0]
        return 8 if first < 128 else 16 if first < 192 else 24
    value = int.from_bytes(mask, "big")
    length = bin(value).count("1")
    if value != (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF:
        return None
    return length


def _refusal(reply: Reply) -> str | None:
    """Why the address of an OFFER or ACK is not one to take; None when it is."""
    address = reply.your_address
    prefix_length = _mask_of(reply)
    if prefix_length is None:
        return "its subnet mask is not a prefix"
    if prefix_length < MIN_PREFIX_LENGTH:
        return f"its subnet /{prefix_length} is wider than /{MIN_PREFIX_LENGTH}"
    interface = ipaddress.IPv4Interface((address, prefix_length))
    if (
        address.is_unspecified
        or address.is_loopback
        or address.is_multicast
        or address.is_link_local
        or address == BROADCAST
    ):
        return f"{address} is not an address a LAN hands out"
    if not interface.network.is_private:
        return (
            f"its subnet {interface.network} is not private-use: a route to it through the "
            "TAP would take that part of this PC's internet"
        )
    if prefix_length <= 30 and address in (
        interface.network.network_address,
        interface.network.broadcast_address,
    ):
        return f"{address} is the network or broadcast address of {interface.network}"
    return None


def _seconds(reply: Reply, option: Option) -> float | None:
    value = reply.options.get(option, b"")
    return float(struct.unpack("!I", value)[0]) if len(value) == 4 else None


def _lease_from(reply: Reply, start: float, previous: Lease | None) -> Lease:
    prefix_length = _mask_of(reply)
    assert prefix_length is not None  # _refusal checked it
    lease_s = _seconds(reply, Option.LEASE_TIME) or DEFAULT_LEASE_S
    lease_s = min(max(lease_s, MIN_LEASE_S), MAX_LEASE_S)
    renew_s = _seconds(reply, Option.RENEWAL_TIME)
    rebind_s = _seconds(reply, Option.REBINDING_TIME)
    if renew_s is None or rebind_s is None or not 0 < renew_s < rebind_s < lease_s:
        renew_s, rebind_s = lease_s / 2, lease_s * 7 / 8
    server = _server_of(reply) or (previous.server if previous else None)
    assert server is not None  # receive() checked it
    dns = reply.options.get(Option.DNS_SERVERS, b"")
    return Lease(
        address=ipaddress.IPv4Interface((reply.your_address, prefix_length)),
        server=server,
        dns_servers=tuple(
            ipaddress.IPv4Address(dns[at : at + 4]) for at in range(0, len(dns) - 3, 4)
        ),
        lease_s=lease_s,
        renew_s=renew_s,
        rebind_s=rebind_s,
        start=start,
    )

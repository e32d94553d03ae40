"""The client's DHCP state machine, pumped with bytes on a fake clock (no socket)."""

from __future__ import annotations

import ipaddress
import random
import struct

from hypothesis import given
from hypothesis import strategies as st

from lanparty.client.dhcp import (
    BROADCAST,
    MAGIC_COOKIE,
    Datagram,
    DhcpClient,
    LeaseBound,
    LeaseLost,
    MessageType,
    OfferRefused,
    Option,
    State,
    build_message,
    parse_reply,
)

MAC = bytes.fromhex("02aabbccddee")
SERVER = ipaddress.IPv4Address("198.19.0.10")
OFFERED = ipaddress.IPv4Address("198.19.0.123")
MASK_16 = bytes([255, 255, 0, 0])


def reply(
    kind: MessageType,
    xid: int,
    *,
    address: ipaddress.IPv4Address = OFFERED,
    mac: bytes = MAC,
    options: dict[int, bytes] | None = None,
) -> bytes:
    fixed = bytearray(236)
    fixed[0:3] = bytes([2, 1, 6])
    struct.pack_into("!I", fixed, 4, xid)
    fixed[16:20] = address.packed
    fixed[28:34] = mac
    chosen = {
        Option.SERVER_ID: SERVER.packed,
        Option.SUBNET_MASK: MASK_16,
        Option.LEASE_TIME: struct.pack("!I", 600),
        Option.DNS_SERVERS: SERVER.packed,
        3: bytes([198, 19, 0, 1]),  # a router: ignored
        121: bytes([1, 0, 198, 19, 0, 1]),  # 0.0.0.0/1 via the router: ignored
        **(options or {}),
    }
    body = bytes([Option.MESSAGE_TYPE, 1, kind])
    for code, value in chosen.items():
        body += bytes([code, len(value)]) + value
    return bytes(fixed) + MAGIC_COOKIE + body + b"\xff"


def state(client: DhcpClient) -> State:
    """The client's state, read afresh (mypy would narrow ``client.state`` across calls)."""
    return client.state


def xid_of(datagram: Datagram) -> int:
    return int(struct.unpack_from("!I", datagram.payload, 4)[0])


def kind_of(datagram: Datagram) -> MessageType:
    return MessageType(datagram.payload[242])


def bound(now: float = 0.0) -> tuple[DhcpClient, int]:
    """A client that took OFFERED at ``now``; and the xid of its REQUEST."""
    client = DhcpClient(MAC, rng=random.Random(1))
    client.start(now)
    (discover,) = client.datagrams_to_send()
    client.receive(reply(MessageType.OFFER, xid_of(discover)), now)
    (request,) = client.datagrams_to_send()
    client.receive(reply(MessageType.ACK, xid_of(request)), now)
    assert [type(event) for event in client.events()] == [LeaseBound]
    return client, xid_of(request)


def test_discover_offer_request_ack_binds_the_address_and_prefix_only() -> None:
    client = DhcpClient(MAC, rng=random.Random(1))
    client.start(0.0)
    (discover,) = client.datagrams_to_send()
    assert discover.destination == BROADCAST
    assert kind_of(discover) == MessageType.DISCOVER
    assert discover.payload[10:12] == b"\x80\x00"  # replies broadcast: no address yet
    assert discover.payload[28:34] == MAC
    client.receive(reply(MessageType.OFFER, xid_of(discover)), 1.0)
    (request,) = client.datagrams_to_send()
    assert kind_of(request) == MessageType.REQUEST
    assert bytes([Option.REQUESTED_ADDRESS, 4, *OFFERED.packed]) in request.payload
    assert state(client) is State.REQUESTING
    client.receive(reply(MessageType.ACK, xid_of(request)), 1.5)
    (event,) = client.events()
    assert isinstance(event, LeaseBound)
    assert event.lease.address == ipaddress.IPv4Interface("198.19.0.123/16")
    assert event.lease.dns_servers == (SERVER,)
    assert (event.lease.renew_at, event.lease.rebind_at) == (301.0, 526.0)  # from the REQUEST
    assert client.next_timer() == 301.0
    assert state(client) is State.BOUND
    assert not event.renewed


def test_the_client_asks_for_no_routes() -> None:
    client = DhcpClient(MAC)
    client.start(0.0)
    (discover,) = client.datagrams_to_send()
    parameters = parse_reply(b"\x02" + discover.payload[1:])
    assert parameters is not None
    asked = parameters.options[Option.PARAMETERS]
    assert 3 not in asked  # router
    assert 121 not in asked  # classless static routes
    assert 6 in asked  # DNS servers: reported, not installed


def test_renewal_at_t1_is_unicast_then_rebinding_broadcast_then_expiry() -> None:
    client, _ = bound()
    client.handle_timer(299.0)
    assert client.datagrams_to_send() == []  # not yet
    client.handle_timer(300.0)
    (renew,) = client.datagrams_to_send()
    assert state(client) is State.RENEWING
    assert renew.destination == SERVER
    assert renew.payload[12:16] == OFFERED.packed  # ciaddr
    client.receive(reply(MessageType.ACK, xid_of(renew)), 302.0)
    (event,) = client.events()
    assert isinstance(event, LeaseBound)
    assert event.renewed
    assert client.lease is not None
    assert client.lease.expires_at == 900.0  # from when the renewal was sent
    # nobody answers this time
    client.handle_timer(client.next_timer() or 0)
    client.datagrams_to_send()
    for _ in range(20):  # bounded: at most a few retries before the lease ends
        if state(client) is State.INIT:
            break
        timer = client.next_timer()
        assert timer is not None
        client.handle_timer(timer)
        for datagram in client.datagrams_to_send():
            expected = BROADCAST if state(client) is State.REBINDING else SERVER
            assert datagram.destination == expected
    assert state(client) is State.INIT
    lost = [event for event in client.events() if isinstance(event, LeaseLost)]
    assert lost[0].reason.startswith("the lease expired")


def test_a_nak_while_renewing_loses_the_address_and_starts_over_later() -> None:
    client, _ = bound()
    client.handle_timer(300.0)
    (renew,) = client.datagrams_to_send()
    client.receive(reply(MessageType.NAK, xid_of(renew)), 302.0)
    (event,) = client.events()
    assert isinstance(event, LeaseLost)
    assert state(client) is State.INIT
    assert client.datagrams_to_send() == []  # not at once: a NAKing server is not flooded
    client.handle_timer(client.next_timer() or 0)
    (discover,) = client.datagrams_to_send()
    assert kind_of(discover) == MessageType.DISCOVER


def test_replies_for_others_are_ignored() -> None:
    client = DhcpClient(MAC, rng=random.Random(1))
    client.start(0.0)
    (discover,) = client.datagrams_to_send()
    xid = xid_of(discover)
    client.receive(reply(MessageType.OFFER, xid + 1), 0.1)
    client.receive(reply(MessageType.OFFER, xid, mac=bytes(6)), 0.1)
    client.receive(reply(MessageType.OFFER, xid, options={Option.SERVER_ID: b""}), 0.1)
    client.receive(reply(MessageType.ACK, xid), 0.1)  # not in SELECTING
    client.receive(discover.payload, 0.1)  # our own broadcast
    assert state(client) is State.SELECTING
    assert client.datagrams_to_send() == []


def test_retransmissions_back_off_to_64_s() -> None:
    client = DhcpClient(MAC, rng=random.Random(3))
    client.start(0.0)
    client.datagrams_to_send()
    delays = []
    now = 0.0
    for _ in range(8):
        timer = client.next_timer()
        assert timer is not None
        delays.append(timer - now)
        now = timer
        client.handle_timer(now)
        assert len(client.datagrams_to_send()) == 1
    assert 3 <= delays[0] <= 5
    assert all(63 <= delay <= 65 for delay in delays[5:])


def test_offers_that_would_take_the_players_internet_are_refused() -> None:
    for options, address, why in (
        ({int(Option.SUBNET_MASK): bytes([128, 0, 0, 0])}, OFFERED, "wider than /8"),
        ({int(Option.SUBNET_MASK): bytes([255, 0, 255, 0])}, OFFERED, "not a prefix"),
        ({}, ipaddress.IPv4Address("8.8.8.9"), "not private-use"),
        ({}, ipaddress.IPv4Address("198.19.255.255"), "broadcast address"),
    ):
        client = DhcpClient(MAC, rng=random.Random(1))
        client.start(0.0)
        (discover,) = client.datagrams_to_send()
        client.receive(reply(MessageType.OFFER, xid_of(discover), address=address,
                             options=options), 0.1)  # fmt: skip
        (event,) = client.events()
        assert isinstance(event, OfferRefused)
        assert why in event.reason
        assert state(client) is State.SELECTING
        assert client.datagrams_to_send() == []


def test_release_is_unicast_to_the_server_and_ends_the_client() -> None:
    client, _ = bound()
    client.release(10.0)
    (release,) = client.datagrams_to_send()
    assert release.destination == SERVER
    assert kind_of(release) == MessageType.RELEASE
    assert release.payload[12:16] == OFFERED.packed
    assert bytes([Option.SERVER_ID, 4, *SERVER.packed]) in release.payload
    assert state(client) is State.RELEASED
    assert client.next_timer() is None
    released = DhcpClient(MAC)
    released.release(0.0)  # nothing held: nothing sent
    assert released.datagrams_to_send() == []


def test_a_message_round_trips_through_the_parser() -> None:
    message = build_message(MessageType.ACK, 7, MAC, {Option.LEASE_TIME: b"\0\0\0\x3c"})
    parsed = parse_reply(b"\x02" + message[1:])
    assert parsed is not None
    assert (parsed.xid, parsed.kind, parsed.client_mac) == (7, MessageType.ACK, MAC)
    assert parsed.options[Option.LEASE_TIME] == b"\0\0\0\x3c"


@given(st.binary(max_size=700), st.sampled_from(list(State)))
def test_arbitrary_reply_bytes_never_raise(data: bytes, state: State) -> None:
    client, xid = bound()
    client.state = state
    client.receive(data, 5.0)
    # the same bytes as a reply to our transaction, from our server, to our MAC
    if len(data) >= 240:
        patched = bytearray(data)
        patched[0:3] = bytes([2, 1, 6])
        struct.pack_into("!I", patched, 4, xid)
        patched[28:34] = MAC
        patched[236:240] = MAGIC_COOKIE
        client.receive(bytes(patched), 5.0)
    parse_reply(data)


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)), max_size=20))
def test_arbitrary_options_of_an_offer_never_raise(options: list[tuple[int, bytes]]) -> None:
    client = DhcpClient(MAC, rng=random.Random(1))
    client.start(0.0)
    (discover,) = client.datagrams_to_send()
    chosen = {code: value for code, value in options if code not in (0, 53, 255)}
    client.receive(reply(MessageType.OFFER, xid_of(discover), options=chosen), 0.1)
    client.receive(reply(MessageType.ACK, xid_of(discover), options=chosen), 0.2)
    for event in client.events():
        assert isinstance(event, LeaseBound | OfferRefused)

"""The relay's switch on a fake clock: admission, leaving, forwarding, limits.

Sections 2 (room-state rules of hello), 4 (room MTU), 5 (forwarding), 6
(filters, as the switch applies them), 7 (rate limits), 8 (malformed
threshold) and 9 (leaving) of PROTOCOL.md.
"""

from __future__ import annotations

import hashlib
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanparty.credentials import client_id_for, room_id_for, sha256_hex
from lanparty.ctrl import DisconnectReason, Hello, HelloRejectedError, PeerInfo, RejectCode, Role
from lanparty.errors import ConfigError
from lanparty.proto import DropReason, MalformedDatagramError, decode_datagram
from lanparty.proto.fragments import Reassembler, fragment_frame
from lanparty.relay.switch import FRAME_COST_BYTES, Admission, Member, RelayLimits, Switch

CLIENT_KEY = bytes(range(32))
GATEWAY_MAC = "02:00:00:00:00:aa"  # locally administered so that a client could claim it
LAN_HOST = bytes.fromhex("001122334455")
OTHER_LAN_HOST = bytes.fromhex("001122334466")
BROADCAST = b"\xff" * 6
IPV4_MULTICAST = bytes.fromhex("01005e000001")
IPV6_MULTICAST = bytes.fromhex("333300000001")
ARP = 0x0806
# The max_datagram that carries an IP MTU of exactly 1400 (1400 + 19).
MAX_DATAGRAM_1400 = 1419


def client_mac(number: int) -> str:
    return f"02:00:00:00:01:{number:02x}"


def raw(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def gateway_key(room: str) -> bytes:
    """One gateway key per room label in these tests."""
    return hashlib.sha256(b"gateway key of " + room.encode()).digest()


def room_id(room: str = "party") -> str:
    return room_id_for(gateway_key(room))


def identity(mac: str) -> bytes:
    """One identity secret per MAC in these tests: another MAC is another client."""
    return hashlib.sha256(b"identity of " + mac.encode()).digest()


ROOM = room_id()


def gateway_hello(
    mac: str = GATEWAY_MAC,
    room: str = "party",
    *,
    max_datagram: int = MAX_DATAGRAM_1400,
    client_key: bytes = CLIENT_KEY,
    key: bytes | None = None,
    token: str | None = None,
) -> Hello:
    key = gateway_key(room) if key is None else key
    return Hello(
        role=Role.GATEWAY,
        room=room_id_for(gateway_key(room)),
        mac=mac,
        max_datagram=max_datagram,
        gateway_key=key,
        client_key_sha256=sha256_hex(client_key),
        room_name=room,
        operator_token=token,
    )


def client_hello(
    mac: str,
    room: str = "party",
    *,
    max_datagram: int = MAX_DATAGRAM_1400,
    client_key: bytes = CLIENT_KEY,
    secret: bytes | None = None,
) -> Hello:
    room_id_text = room_id_for(gateway_key(room))
    secret = identity(mac) if secret is None else secret
    return Hello(
        role=Role.CLIENT,
        room=room_id_text,
        mac=mac,
        max_datagram=max_datagram,
        client_key=client_key,
        client_id=client_id_for(secret, room_id_text),
    )


def hello(
    mac: str, role: Role = Role.CLIENT, room: str = "party", max_datagram: int = MAX_DATAGRAM_1400
) -> Hello:
    if role is Role.GATEWAY:
        return gateway_hello(mac, room, max_datagram=max_datagram)
    return client_hello(mac, room, max_datagram=max_datagram)


def admit(
    switch: Switch, request: Hello, now: float = 0.0, budget: int = 65527, handle: object = None
) -> Admission:
    return switch.admit(request, handle, now, datagram_budget=budget)


def open_room(switch: Switch, room: str = "party", now: float = 0.0) -> Member:
    """A gateway opens ``room`` (its MAC differs per room)."""
    suffix = hashlib.sha256(room.encode()).hexdigest()[:2]
    mac = GATEWAY_MAC if room == "party" else f"00:11:22:33:44:{suffix}"
    return admit(switch, gateway_hello(mac, room), now).member


def datagram(
    destination: bytes, source: bytes, ethertype: int = ARP, payload: bytes = bytes(28)
) -> bytes:
    return b"\x10" + destination + source + struct.pack("!H", ethertype) + payload


def dhcp_reply() -> bytes:
    udp = struct.pack("!HHHH", 67, 68, 12, 0) + b"DHCP"
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(4), bytes(4))
        + udp
    )


def router_advertisement() -> bytes:
    icmpv6 = bytes([134, 0, 0, 0]) + bytes(12)
    return struct.pack("!IHBB16s16s", 6 << 28, len(icmpv6), 58, 255, bytes(16), bytes(16)) + icmpv6


class Party:
    """A switch with one room: a gateway and three clients (peer ids 1 to 4)."""

    def __init__(self, limits: RelayLimits | None = None) -> None:
        self.switch = Switch(limits or RelayLimits())
        self.gateway = self.join(GATEWAY_MAC, Role.GATEWAY)
        self.alice = self.join(client_mac(1))
        self.bob = self.join(client_mac(2))
        self.carol = self.join(client_mac(3))

    def join(
        self, mac: str, role: Role = Role.CLIENT, room: str = "party", now: float = 0.0
    ) -> Member:
        if role is Role.CLIENT and self.switch.get_room(room_id(room)) is None:
            open_room(self.switch, room, now)
        return admit(self.switch, hello(mac, role, room), now, handle=object()).member

    def forward(
        self, sender: Member, data: bytes, now: float = 0.0
    ) -> tuple[Member, ...] | DropReason:
        return self.switch.forward(sender, data, now)

    def learn(self, mac: bytes, now: float = 0.0) -> None:
        """Let the gateway send a broadcast from a LAN host, which teaches the room its MAC."""
        assert self.forward(self.gateway, datagram(BROADCAST, mac), now) == (
            self.alice,
            self.bob,
            self.carol,
        )


def rejection(
    switch: Switch, request: Hello, now: float = 0.0, budget: int = 65527
) -> HelloRejectedError:
    with pytest.raises(HelloRejectedError) as caught:
        admit(switch, request, now, budget)
    return caught.value


# ------------------------------------------------------------------ limits


def test_default_limits_are_the_contract_defaults() -> None:
    limits = RelayLimits()
    assert limits.relay_mtu == 1500
    assert (limits.max_rooms, limits.max_clients_per_room, limits.max_peers) == (1000, 64, 4096)
    assert (limits.malformed_limit, limits.malformed_window_s) == (100, 10.0)
    assert limits.lan_mac_ageing_s == 300.0
    assert (limits.client_broadcast_pps, limits.client_broadcast_burst) == (200, 400)
    assert (limits.client_unknown_unicast_pps, limits.client_unknown_unicast_burst) == (200, 400)
    assert (limits.client_bps, limits.client_burst_bytes) == (100e6, 256 * 1024)
    assert limits.room_grace_s == 300.0
    # not in the contract: every member's frames/s, gateways limited by default
    assert (limits.client_pps, limits.client_pps_burst) == (12_000, 24_000)
    assert (limits.gateway_pps, limits.gateway_bps) == (100_000, None)
    assert limits.max_rooms_per_source == 16


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"relay_mtu": 575}, "--mtu"),
        ({"relay_mtu": 70000}, "--mtu"),
        ({"max_rooms": 0}, "--max-rooms"),
        ({"max_clients_per_room": 0}, "--max-clients-per-room"),
        ({"max_peers": -1}, "--max-peers"),
        ({"max_learned_macs_per_room": 0}, "--max-learned-macs-per-room"),
        ({"malformed_limit": -1}, "--malformed-limit"),
        ({"malformed_window_s": 0}, "--malformed-window-s"),
        ({"lan_mac_ageing_s": -5}, "--lan-mac-ageing-s"),
        ({"lan_mac_ageing_s": math.nan}, "--lan-mac-ageing-s"),
        ({"room_grace_s": -1.0}, "--room-grace-s"),
        ({"room_grace_s": math.inf}, "--room-grace-s"),
        ({"client_broadcast_pps": 0}, "--client-broadcast-pps"),
        ({"client_unknown_unicast_pps": math.inf}, "--client-unknown-unicast-pps"),
        ({"client_broadcast_burst": 0.5}, "--client-broadcast-burst"),
        ({"client_unknown_unicast_burst": 0}, "--client-unknown-unicast-burst"),
        ({"client_bps": 0}, "--client-bps"),
        ({"gateway_bps": -1.0}, "--gateway-bps"),
        ({"client_burst_bytes": 1000}, "--client-burst-bytes"),
        ({"gateway_bps": 1e6, "gateway_burst_bytes": 1518 + 63}, "--gateway-burst-bytes"),
        ({"relay_mtu": 8982, "client_burst_bytes": 9000}, "--client-burst-bytes"),
    ],
)
def test_impossible_limits_are_config_errors(changes: dict[str, float], option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        RelayLimits(**changes)  # type: ignore[arg-type]


def test_limits_at_their_bounds_are_accepted() -> None:
    RelayLimits(
        relay_mtu=576,
        max_rooms=1,
        max_clients_per_room=1,
        max_peers=1,
        malformed_limit=0,
        client_broadcast_burst=1,
        client_burst_bytes=576 + 18 + 64,
        gateway_bps=1.0,
        gateway_burst_bytes=576 + 18 + 64,
    )


# --------------------------------------------------------------- admission


def test_a_gateway_opens_its_room_with_its_mtu() -> None:
    switch = Switch(RelayLimits())
    admission = admit(switch, gateway_hello(max_datagram=1408), 5.0, handle="conn")
    member, welcome = admission.member, admission.welcome
    assert admission.joined == ()
    assert admission.evicted == ()
    assert member.handle == "conn"
    assert member.peer_id == 1
    assert member.role is Role.GATEWAY
    assert member.is_gateway
    assert member.max_datagram == 1408
    assert welcome.peer_id == 1
    assert welcome.protocol == 2
    assert welcome.room == ROOM
    assert welcome.room_name == "party"
    assert welcome.mtu == 1500  # the relay's, whatever the budget (PROTOCOL.md 11)
    assert welcome.max_frame == 1518
    assert welcome.peers == ()
    assert welcome.software == "lanparty-relay"
    room = switch.get_room(ROOM)
    assert room is not None
    assert member.room is room
    assert (room.id, room.name, room.mtu, room.max_frame) == (ROOM, "party", 1500, 1518)
    assert room.client_key_sha256 == sha256_hex(CLIENT_KEY)
    assert room.members == {1: member}
    assert room.gateway is member
    assert (switch.room_count, switch.peer_count) == (1, 1)
    assert dict(switch.rooms) == {ROOM: room}


@pytest.mark.parametrize("budget", [1419, 1200, 65527])
def test_the_connection_s_real_budget_caps_a_declared_max_datagram(budget: int) -> None:
    switch = Switch(RelayLimits())
    admission = admit(switch, gateway_hello(max_datagram=65535), budget=budget)
    assert admission.welcome.mtu == 1500
    assert admission.member.max_datagram == min(65535, budget)


def test_a_client_whose_connection_carries_less_than_600_bytes_is_too_small() -> None:
    switch = Switch(RelayLimits())
    open_room(switch)
    # it declares plenty, but its QUIC connection carries only 599-byte datagrams
    error = rejection(switch, client_hello(client_mac(1), max_datagram=65535), budget=599)
    assert error.reject_code is RejectCode.MTU_TOO_SMALL
    assert "600" in str(error)
    admit(switch, client_hello(client_mac(1), max_datagram=65535), budget=600)


def test_room_mtu_is_capped_by_the_relay_mtu() -> None:
    switch = Switch(RelayLimits(relay_mtu=1280), software="relay 1.2")
    welcome = admit(switch, gateway_hello(max_datagram=9000)).welcome
    assert (welcome.mtu, welcome.max_frame, welcome.software) == (1280, 1298, "relay 1.2")


def test_welcome_lists_the_others_and_they_are_told() -> None:
    party = Party()
    admission = admit(party.switch, client_hello(client_mac(9)))
    assert admission.member.peer_id == 5
    assert admission.welcome.peers == (
        PeerInfo(peer_id=1, role=Role.GATEWAY, mac=GATEWAY_MAC),
        PeerInfo(peer_id=2, role=Role.CLIENT, mac=client_mac(1)),
        PeerInfo(peer_id=3, role=Role.CLIENT, mac=client_mac(2)),
        PeerInfo(peer_id=4, role=Role.CLIENT, mac=client_mac(3)),
    )
    assert admission.joined == (party.gateway, party.alice, party.bob, party.carol)
    assert party.gateway.peer_info() == PeerInfo(peer_id=1, role=Role.GATEWAY, mac=GATEWAY_MAC)
    assert party.switch.get_room(ROOM).gateway is party.gateway  # type: ignore[union-attr]


def test_peer_ids_are_unique_over_the_relay_life() -> None:
    switch = Switch(RelayLimits())
    seen = []
    for room in ("a", "b"):
        open_room(switch, room)
    for round_number in range(3):
        for room in ("a", "b"):
            member = admit(switch, client_hello(client_mac(1), room)).member
            seen.append(member.peer_id)
            if round_number < 2:
                switch.leave(member, 0.0)
    assert seen == [3, 4, 5, 6, 7, 8]


# ------------------------------------------------------- credentials first


def test_a_client_of_a_room_no_gateway_opened_hears_room_not_open() -> None:
    switch = Switch(RelayLimits())
    error = rejection(switch, client_hello(client_mac(1)))
    assert error.reject_code is RejectCode.ROOM_NOT_OPEN
    assert switch.room_count == 0


def _not_authorized_text(switch: Switch, request: Hello) -> str:
    error = rejection(switch, request)
    assert error.reject_code is RejectCode.NOT_AUTHORIZED
    return str(error)


def test_a_wrong_client_key_is_refused_with_one_message_that_names_nothing() -> None:
    wrong = bytes(32)
    empty = Switch(RelayLimits(relay_mtu=1280))
    open_room(empty)
    party = Party()
    texts = {
        _not_authorized_text(empty, client_hello(client_mac(7), client_key=wrong)),
        _not_authorized_text(party.switch, client_hello(client_mac(7), client_key=wrong)),
        # a MAC in use, a too-small datagram: still not_authorized, nothing about the room
        _not_authorized_text(party.switch, client_hello(client_mac(1), client_key=wrong)),
        _not_authorized_text(
            party.switch, client_hello(client_mac(7), client_key=wrong, max_datagram=100)
        ),
    }
    assert len(texts) == 1
    (text,) = texts
    for secret_or_state in ("'party'", ROOM, "1400", "1280", client_mac(1), GATEWAY_MAC, "4 "):
        assert secret_or_state not in text
    assert party.switch.peer_count == 4


def test_a_gateway_key_that_does_not_derive_the_room_id_is_not_authorized() -> None:
    switch = Switch(RelayLimits())
    real = open_room(switch)
    # a stranger knows the room id, label, relay and pin, but not the gateway key
    squatter = gateway_hello("00:de:ad:be:ef:01", key=gateway_key("stranger"))
    assert squatter.room == ROOM
    assert rejection(switch, squatter).reject_code is RejectCode.NOT_AUTHORIZED
    assert switch.get_room(ROOM).gateway is real  # type: ignore[union-attr]
    # nor can they open it first on an empty relay
    empty = Switch(RelayLimits())
    assert rejection(empty, squatter).reject_code is RejectCode.NOT_AUTHORIZED
    assert empty.room_count == 0


def test_a_stranger_with_the_same_label_opens_another_room() -> None:
    switch = Switch(RelayLimits())
    stranger_key = gateway_key("stranger")
    stranger = admit(
        switch,
        Hello(
            role=Role.GATEWAY,
            room=room_id_for(stranger_key),
            mac="00:de:ad:be:ef:01",
            max_datagram=MAX_DATAGRAM_1400,
            gateway_key=stranger_key,
            client_key_sha256=sha256_hex(bytes(32)),
            room_name="party",
        ),
    ).member
    real = open_room(switch)
    assert stranger.room is not real.room
    alice = admit(switch, client_hello(client_mac(1))).member
    assert alice.room is real.room
    assert alice.room.gateway is real


def test_operator_tokens_decide_which_gateways_open_rooms() -> None:
    switch = Switch(RelayLimits(), operator_token_hashes=frozenset({sha256_hex(b"let-me-in")}))
    for token in (None, "", "let-me-in ", "LET-ME-IN"):
        error = rejection(switch, gateway_hello(token=token))
        assert error.reject_code is RejectCode.NOT_AUTHORIZED
        assert "let-me-in" not in str(error)
    assert switch.room_count == 0
    admit(switch, gateway_hello(token="let-me-in"))
    # clients bring no token
    admit(switch, client_hello(client_mac(1)))


# ------------------------------------------------------- sessions replaced


def test_a_gateway_with_the_room_s_key_replaces_the_old_session() -> None:
    party = Party()
    admission = admit(party.switch, gateway_hello(), 1.0, handle="new")
    (eviction,) = admission.evicted
    assert eviction.member is party.gateway
    assert eviction.reason is DisconnectReason.REPLACED
    assert eviction.tell == (party.alice, party.bob, party.carol)
    assert not party.gateway.active
    room = party.switch.get_room(ROOM)
    assert room is not None
    assert room.gateway is admission.member
    assert admission.joined == (party.alice, party.bob, party.carol)
    assert party.switch.peer_count == 4
    # the players stayed and reach the new gateway
    assert party.forward(party.alice, datagram(raw(GATEWAY_MAC), party.alice.mac), 1.0) == (
        admission.member,
    )


def test_a_new_client_key_rotates_the_invite() -> None:
    party = Party()
    new_key = bytes(range(100, 132))
    admission = admit(party.switch, gateway_hello(client_key=new_key), 1.0)
    reasons = {(e.member, e.reason) for e in admission.evicted}
    assert reasons == {
        (party.gateway, DisconnectReason.REPLACED),
        (party.alice, DisconnectReason.KEY_ROTATED),
        (party.bob, DisconnectReason.KEY_ROTATED),
        (party.carol, DisconnectReason.KEY_ROTATED),
    }
    assert party.switch.peer_count == 1
    old = rejection(party.switch, client_hello(client_mac(1)))
    assert old.reject_code is RejectCode.NOT_AUTHORIZED
    # the new invite opens it, and alice keeps her MAC
    admit(party.switch, client_hello(client_mac(1), client_key=new_key), 2.0)


def test_a_client_that_comes_back_replaces_its_old_session_with_its_mac() -> None:
    party = Party()
    admission = admit(party.switch, client_hello(client_mac(1)), 1.0, handle="again")
    (eviction,) = admission.evicted
    assert (eviction.member, eviction.reason) == (party.alice, DisconnectReason.REPLACED)
    assert eviction.tell == (party.gateway, party.bob, party.carol)
    assert admission.member.mac == party.alice.mac
    assert party.switch.get_room(ROOM).clients[party.alice.mac] is admission.member  # type: ignore[union-attr]
    assert party.switch.peer_count == 4


def test_a_mac_is_bound_to_its_client_id_for_the_room_s_life() -> None:
    party = Party()
    impostor = client_hello(client_mac(1), secret=b"another identity".ljust(32, b"."))
    assert rejection(party.switch, impostor).reject_code is RejectCode.DUPLICATE_MAC
    # still bound after alice left, and across the gateway's grace period
    party.switch.leave(party.alice, 1.0)
    assert rejection(party.switch, impostor, 2.0).reject_code is RejectCode.DUPLICATE_MAC
    party.switch.leave(party.gateway, 3.0)
    assert rejection(party.switch, impostor, 4.0).reject_code is RejectCode.DUPLICATE_MAC
    admit(party.switch, gateway_hello(), 5.0)
    assert rejection(party.switch, impostor, 6.0).reject_code is RejectCode.DUPLICATE_MAC
    # alice herself is welcome
    admit(party.switch, client_hello(client_mac(1)), 7.0)


def test_one_client_id_holds_one_mac_at_a_time() -> None:
    party = Party()
    admission = admit(
        party.switch, client_hello(client_mac(8), secret=identity(client_mac(1))), 1.0
    )
    assert [e.member for e in admission.evicted] == [party.alice]
    room = party.switch.get_room(ROOM)
    assert room is not None
    assert party.alice.mac not in room.clients
    # her old MAC is free again (for someone else), her new one is hers
    admit(party.switch, client_hello(client_mac(1), secret=b"x" * 32), 2.0)
    assert rejection(party.switch, client_hello(client_mac(8))).reject_code is (
        RejectCode.DUPLICATE_MAC
    )


def test_a_client_may_never_take_a_lan_mac_seen_in_the_room_s_life() -> None:
    party = Party()
    lan_host = "02:00:00:00:77:01"
    party.learn(raw(lan_host), now=10.0)
    assert rejection(party.switch, client_hello(lan_host), 11.0).reject_code is (
        RejectCode.DUPLICATE_MAC
    )
    # aged out of the switch's table, and the gateway gone and back: still the LAN's
    party.switch.expire_learned_macs(1000.0)
    party.switch.leave(party.gateway, 1001.0)
    admit(party.switch, gateway_hello(), 1002.0)
    assert rejection(party.switch, client_hello(lan_host), 1003.0).reject_code is (
        RejectCode.DUPLICATE_MAC
    )
    # nor the gateway's own MAC
    assert rejection(party.switch, client_hello(GATEWAY_MAC)).reject_code is (
        RejectCode.DUPLICATE_MAC
    )


def test_a_gateway_may_not_take_a_connected_client_s_mac() -> None:
    party = Party()
    error = rejection(party.switch, gateway_hello(client_mac(1)))
    assert error.reject_code is RejectCode.DUPLICATE_MAC
    assert party.gateway.active


# -------------------------------------------------------------- room state


def test_room_full_counts_clients_not_the_gateway() -> None:
    switch = Switch(RelayLimits(max_clients_per_room=2))
    open_room(switch)
    for number in (1, 2):
        admit(switch, client_hello(client_mac(number)))
    error = rejection(switch, client_hello(client_mac(3)))
    assert error.reject_code is RejectCode.ROOM_FULL
    assert "party" in str(error)
    # a returning client takes its own seat back
    admit(switch, client_hello(client_mac(2)))
    open_room(switch, "other")
    admit(switch, client_hello(client_mac(3), "other"))


def test_relay_full_by_peers() -> None:
    switch = Switch(RelayLimits(max_peers=2))
    open_room(switch)
    admit(switch, client_hello(client_mac(1)))
    for request in (client_hello(client_mac(2)), gateway_hello("00:11:22:33:44:55", "third")):
        error = rejection(switch, request)
        assert error.reject_code is RejectCode.RELAY_FULL
        assert "2" in str(error)
    # a session replacing itself needs no new seat
    admit(switch, client_hello(client_mac(1)))
    assert (switch.peer_count, switch.room_count) == (2, 1)


def test_relay_full_by_rooms() -> None:
    switch = Switch(RelayLimits(max_rooms=1))
    open_room(switch)
    error = rejection(switch, gateway_hello("00:11:22:33:44:55", "other"))
    assert error.reject_code is RejectCode.RELAY_FULL
    assert "rooms" in str(error)
    admit(switch, client_hello(client_mac(2)))  # the existing room still takes members
    assert switch.room_count == 1


def test_below_600_is_mtu_too_small_even_for_a_new_room() -> None:
    switch = Switch(RelayLimits())
    error = rejection(switch, gateway_hello(max_datagram=594))
    assert error.reject_code is RejectCode.MTU_TOO_SMALL
    assert "600" in str(error)
    assert switch.room_count == 0


def test_the_first_broken_rule_is_reported() -> None:
    switch = Switch(RelayLimits(max_clients_per_room=1, max_peers=2))
    open_room(switch)
    admit(switch, client_hello(client_mac(1)))
    impostor_secret = b"i" * 32
    cases = [
        # a wrong key, a taken MAC, too small
        (
            client_hello(client_mac(1), client_key=bytes(32), max_datagram=10),
            RejectCode.NOT_AUTHORIZED,
        ),
        # a MAC of another client id, a full room, too small
        (
            client_hello(client_mac(1), secret=impostor_secret, max_datagram=10),
            RejectCode.DUPLICATE_MAC,
        ),
        # a full room of a full relay, too small
        (client_hello(client_mac(2), max_datagram=10), RejectCode.ROOM_FULL),
    ]
    for request, code in cases:
        assert rejection(switch, request).reject_code is code
    switch.leave(switch.get_room(ROOM).members[2], 1.0)  # type: ignore[union-attr]
    assert rejection(switch, client_hello(client_mac(2), max_datagram=10)).reject_code is (
        RejectCode.MTU_TOO_SMALL
    )


# ----------------------------------------------------------------- leaving


def test_leave_returns_who_to_tell() -> None:
    party = Party()
    others = party.switch.leave(party.bob, 1.0)
    assert others == [party.gateway, party.alice, party.carol]
    room = party.switch.get_room(ROOM)
    assert room is not None
    assert party.bob.peer_id not in room.members
    assert party.bob.mac not in room.clients
    assert party.switch.peer_count == 3
    # broadcast no longer reaches bob, and his MAC is unknown unicast
    assert party.forward(party.alice, datagram(BROADCAST, party.alice.mac)) == (
        party.gateway,
        party.carol,
    )
    assert party.forward(party.alice, datagram(party.bob.mac, party.alice.mac)) == (
        party.gateway,
        party.carol,
    )
    # bob comes back with his MAC
    newcomer = party.join(client_mac(2))
    assert party.forward(party.alice, datagram(party.bob.mac, party.alice.mac)) == (newcomer,)
    assert party.bob.room is room  # still names its room for the shell's log


def test_leave_is_idempotent() -> None:
    party = Party()
    party.switch.leave(party.bob, 1.0)
    assert party.switch.leave(party.bob, 2.0) == []
    assert party.switch.peer_count == 3


def test_a_room_outlives_its_gateway_for_the_grace_period() -> None:
    party = Party(RelayLimits(room_grace_s=300.0))
    party.learn(LAN_HOST)
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac)) == (party.gateway,)
    assert party.switch.leave(party.gateway, 10.0) == [party.alice, party.bob, party.carol]
    room = party.switch.get_room(ROOM)
    assert room is not None
    assert room.gateway is None
    assert room.learned_macs == {}
    assert party.switch.next_room_expiry() == 310.0
    # players stay; what they send to the LAN has nowhere to go
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac), 11.0) is (
        DropReason.NO_GATEWAY
    )
    assert party.forward(party.alice, datagram(BROADCAST, party.alice.mac), 11.0) == (
        party.bob,
        party.carol,
    )
    assert party.forward(party.alice, datagram(party.bob.mac, party.alice.mac), 11.0) == (
        party.bob,
    )
    # a player may still (re)join during the grace period
    dave = admit(party.switch, client_hello(client_mac(4)), 300.0).member
    assert party.switch.end_expired_rooms(309.9) == []
    # the gateway comes back in time: the room goes on
    gateway = admit(party.switch, gateway_hello(), 309.0).member
    assert party.switch.next_room_expiry() is None
    assert party.forward(dave, datagram(raw(GATEWAY_MAC), dave.mac), 309.5) == (gateway,)


def test_a_room_ends_when_the_grace_period_passes() -> None:
    party = Party(RelayLimits(room_grace_s=60.0))
    party.switch.leave(party.gateway, 10.0)
    assert party.switch.end_expired_rooms(69.9) == []
    evicted = party.switch.end_expired_rooms(70.0)
    assert [(e.member, e.reason, e.tell) for e in evicted] == [
        (party.alice, DisconnectReason.ROOM_CLOSED, ()),
        (party.bob, DisconnectReason.ROOM_CLOSED, ()),
        (party.carol, DisconnectReason.ROOM_CLOSED, ()),
    ]
    assert party.switch.get_room(ROOM) is None
    assert (party.switch.room_count, party.switch.peer_count) == (0, 0)
    assert party.switch.next_room_expiry() is None
    # the room is not open any more, and every binding is forgotten
    assert rejection(party.switch, client_hello(client_mac(1)), 71.0).reject_code is (
        RejectCode.ROOM_NOT_OPEN
    )
    admit(party.switch, gateway_hello(), 72.0)
    admit(party.switch, client_hello(client_mac(1), secret=b"s" * 32), 73.0)


def test_a_client_cannot_join_a_room_whose_grace_period_passed_before_the_reaper_ran() -> None:
    party = Party(RelayLimits(room_grace_s=60.0))
    party.switch.leave(party.gateway, 10.0)
    assert rejection(party.switch, client_hello(client_mac(9)), 70.0).reject_code is (
        RejectCode.ROOM_NOT_OPEN
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "real_gateway",
                "stranger_gateway",
                "stranger_client",
                "player",
                "player_leaves",
                "gateway_leaves",
                "squatter_client",
                "later",
            ]
        ),
        max_size=30,
    )
)
def test_strangers_never_get_into_the_real_room_in_any_order(actions: list[str]) -> None:
    """Whoever arrives first, only the key holders hold the room and players always get in."""
    switch = Switch(RelayLimits(room_grace_s=100.0))
    stranger_key = gateway_key("stranger")
    stranger_room = room_id_for(stranger_key)
    now = 0.0
    real_gateway_seen = False
    players: list[Member] = []
    for number, action in enumerate(actions):
        now += 1.0
        if action == "real_gateway":
            admit(switch, gateway_hello(), now)
            real_gateway_seen = True
        elif action == "stranger_gateway":
            # the same label, and it even claims the real room id
            for room in (stranger_room, ROOM):
                request = Hello(
                    role=Role.GATEWAY,
                    room=room,
                    mac="00:de:ad:be:ef:01",
                    max_datagram=MAX_DATAGRAM_1400,
                    gateway_key=stranger_key,
                    client_key_sha256=sha256_hex(bytes(32)),
                    room_name="party",
                )
                if room == ROOM:
                    assert rejection(switch, request, now).reject_code is RejectCode.NOT_AUTHORIZED
                else:
                    admit(switch, request, now)
        elif action in ("stranger_client", "squatter_client"):
            mac = client_mac(1) if action == "squatter_client" else client_mac(50 + number)
            code = rejection(
                switch, client_hello(mac, client_key=bytes(32), secret=b"z" * 32), now
            ).reject_code
            assert code in (RejectCode.NOT_AUTHORIZED, RejectCode.ROOM_NOT_OPEN)
        elif action == "player":
            room = switch.get_room(ROOM)
            request = client_hello(client_mac(1))
            if room is None:
                assert rejection(switch, request, now).reject_code is RejectCode.ROOM_NOT_OPEN
            else:
                players.append(admit(switch, request, now).member)
        elif action == "player_leaves" and players:
            switch.leave(players[-1], now)
        elif action == "gateway_leaves":
            room = switch.get_room(ROOM)
            if room is not None and room.gateway is not None:
                switch.leave(room.gateway, now)
        elif action == "later":
            now += 150.0
            switch.end_expired_rooms(now)
        room = switch.get_room(ROOM)
        if room is not None:
            assert real_gateway_seen
            assert room.gateway is None or room.gateway.mac == raw(GATEWAY_MAC)
            assert all(member.mac == raw(client_mac(1)) for member in room.clients.values())


def test_frames_of_a_member_that_left_are_ignored() -> None:
    party = Party()
    party.switch.leave(party.gateway, 1.0)
    assert party.forward(party.gateway, datagram(BROADCAST, LAN_HOST), 2.0) == ()
    assert party.forward(party.gateway, b"junk", 2.0) == ()
    assert party.gateway.counters.rx_frames == 0
    assert party.switch.get_room(ROOM).learned_macs == {}  # type: ignore[union-attr]
    assert not party.gateway.should_disconnect


# -------------------------------------------------------------- forwarding


@pytest.mark.parametrize("destination", [BROADCAST, IPV4_MULTICAST, IPV6_MULTICAST])
def test_broadcast_and_multicast_go_to_every_other_member(destination: bytes) -> None:
    party = Party()
    assert party.forward(party.alice, datagram(destination, party.alice.mac)) == (
        party.gateway,
        party.bob,
        party.carol,
    )
    assert party.forward(party.gateway, datagram(destination, LAN_HOST)) == (
        party.alice,
        party.bob,
        party.carol,
    )


def test_unicast_to_a_client_goes_to_that_client() -> None:
    party = Party()
    result = party.forward(party.alice, datagram(party.bob.mac, party.alice.mac))
    assert type(result) is tuple
    assert result == (party.bob,)
    assert party.forward(party.gateway, datagram(party.carol.mac, LAN_HOST)) == (party.carol,)


def test_unicast_to_the_lan_goes_to_the_gateway() -> None:
    party = Party()
    assert party.forward(party.alice, datagram(raw(GATEWAY_MAC), party.alice.mac)) == (
        party.gateway,
    )
    party.learn(LAN_HOST)
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac)) == (party.gateway,)


def test_unknown_unicast_goes_to_every_other_member() -> None:
    party = Party()
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac)) == (
        party.gateway,
        party.bob,
        party.carol,
    )
    assert party.forward(party.gateway, datagram(bytes.fromhex("020000000999"), LAN_HOST)) == (
        party.alice,
        party.bob,
        party.carol,
    )


def test_learned_lan_macs_age_out_after_300_s_without_traffic() -> None:
    party = Party()
    everyone_else = (party.gateway, party.bob, party.carol)
    party.learn(LAN_HOST, now=100.0)
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac), 399.9) == (
        party.gateway,
    )
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac), 400.0) == everyone_else
    # traffic from it refreshes it
    party.learn(LAN_HOST, now=500.0)
    party.learn(LAN_HOST, now=700.0)
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac), 999.0) == (
        party.gateway,
    )
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac), 1000.0) == everyone_else


def test_the_gateway_learns_even_from_frames_the_filters_drop() -> None:
    """Learning follows the source check (section 5 step 2), before the filters."""
    party = Party()
    stp = datagram(bytes.fromhex("0180c2000000"), LAN_HOST, 0x0027, bytes(40))
    assert party.forward(party.gateway, stp) is DropReason.SWITCH_CONTROL
    assert party.forward(party.alice, datagram(LAN_HOST, party.alice.mac)) == (party.gateway,)


def test_the_gateway_does_not_learn_its_own_mac_or_refused_sources() -> None:
    party = Party()
    party.forward(party.gateway, datagram(BROADCAST, raw(GATEWAY_MAC)))
    party.forward(party.gateway, datagram(BROADCAST, party.alice.mac))
    party.forward(party.gateway, datagram(BROADCAST, IPV4_MULTICAST))
    assert party.switch.get_room(ROOM).learned_macs == {}  # type: ignore[union-attr]


def test_learned_macs_are_bounded_per_room() -> None:
    party = Party(RelayLimits(max_learned_macs_per_room=2))
    hosts = [bytes.fromhex(f"00112233440{n}") for n in range(4)]
    party.learn(hosts[0], now=0.0)
    party.learn(hosts[1], now=1.0)
    party.learn(hosts[2], now=2.0)  # full: not learned, but forwarded
    room = party.switch.get_room(ROOM)
    assert room is not None
    assert list(room.learned_macs) == hosts[:2]
    assert party.forward(party.alice, datagram(hosts[2], party.alice.mac), 3.0) == (
        party.gateway,
        party.bob,
        party.carol,
    )
    # once the oldest has aged out there is room again
    party.learn(hosts[1], now=250.0)
    party.learn(hosts[3], now=300.0)
    assert list(room.learned_macs) == [hosts[1], hosts[3]]
    assert party.switch.expire_learned_macs(549.0) == 0
    assert party.switch.expire_learned_macs(550.0) == 1
    assert list(room.learned_macs) == [hosts[3]]


def test_alone_in_a_room_is_not_a_drop() -> None:
    switch = Switch(RelayLimits())
    member = open_room(switch)
    assert switch.forward(member, datagram(BROADCAST, member.mac), 0.0) == ()
    assert switch.forward(member, datagram(LAN_HOST, member.mac), 0.0) == ()
    assert member.counters.drops == {}
    assert switch.drops == {}


def test_never_back_to_the_sender() -> None:
    party = Party()
    party.learn(LAN_HOST)
    assert (
        party.forward(party.alice, datagram(party.alice.mac, party.alice.mac))
        is DropReason.REFLECTION
    )
    assert party.forward(party.gateway, datagram(LAN_HOST, OTHER_LAN_HOST)) is DropReason.REFLECTION
    assert (
        party.forward(party.gateway, datagram(raw(GATEWAY_MAC), LAN_HOST)) is DropReason.REFLECTION
    )
    assert party.alice.counters.drops == {DropReason.REFLECTION: 1}
    assert party.gateway.counters.drops == {DropReason.REFLECTION: 2}


@pytest.mark.parametrize(
    "source",
    [client_mac(2), GATEWAY_MAC, "00:11:22:33:44:55", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01"],
)
def test_a_client_must_send_from_its_own_mac(source: str) -> None:
    party = Party()
    assert party.forward(party.alice, datagram(BROADCAST, raw(source))) is DropReason.SPOOFED_SOURCE
    assert party.alice.counters.drops == {DropReason.SPOOFED_SOURCE: 1}


@pytest.mark.parametrize(
    "source", [client_mac(1), "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "33:33:00:00:00:01"]
)
def test_the_gateway_must_not_send_from_a_client_or_group_mac(source: str) -> None:
    party = Party()
    assert (
        party.forward(party.gateway, datagram(BROADCAST, raw(source))) is DropReason.SOURCE_CONFLICT
    )
    assert party.gateway.counters.drops == {DropReason.SOURCE_CONFLICT: 1}


def test_a_client_mac_in_another_room_is_no_conflict() -> None:
    party = Party()
    elsewhere = party.join(client_mac(9), room="other")
    assert party.forward(party.gateway, datagram(BROADCAST, elsewhere.mac)) == (
        party.alice,
        party.bob,
        party.carol,
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x10",
        b"\x10" + bytes(13),  # a 13-byte frame
        b"\x00" + bytes(14),
        b"\x11" + bytes(14),  # unknown kind
        b"\x20" + bytes(14),  # unknown version
        b"\x01" + bytes(60),
    ],
)
def test_malformed(data: bytes) -> None:
    party = Party()
    assert party.forward(party.alice, data) is DropReason.MALFORMED
    assert party.forward(party.gateway, data) is DropReason.MALFORMED
    assert party.alice.counters.drops == {DropReason.MALFORMED: 1}
    assert party.switch.drops == {DropReason.MALFORMED: 2}


@settings(max_examples=300)
@given(
    header=st.integers(0, 255),
    frame=st.binary(max_size=40),
)
def test_malformed_is_what_decode_datagram_refuses(header: int, frame: bytes) -> None:
    # The switch checks the overlay in place; it must agree with the codec.
    party = Party()
    data = bytes([header]) + frame[:6] + party.gateway.mac[: max(0, len(frame) - 6)] + frame[12:]
    try:
        decode_datagram(data)
    except MalformedDatagramError:
        assert party.forward(party.gateway, data) is DropReason.MALFORMED
    else:
        assert party.forward(party.gateway, data) is not DropReason.MALFORMED


def test_a_14_byte_frame_is_not_malformed() -> None:
    party = Party()
    assert party.forward(party.alice, b"\x10" + BROADCAST + party.alice.mac + b"\x88\xb5") == (
        party.gateway,
        party.bob,
        party.carol,
    )
    # an ARP that short would be padded into a whole one on the wire: not passed
    assert party.forward(party.alice, b"\x10" + BROADCAST + party.alice.mac + b"\x08\x06") is (
        DropReason.SUSPICIOUS
    )


# ---------------------------------------------------- filters in the switch


def test_filters_apply_to_client_frames() -> None:
    party = Party()
    alice = party.alice.mac
    cases = [
        (datagram(BROADCAST, alice, payload=bytes(1518 - 14 + 1)), DropReason.JUMBO),
        (datagram(bytes.fromhex("0180c200000e"), alice, 0x88CC), DropReason.SWITCH_CONTROL),
        (datagram(BROADCAST, alice, 0x0800, dhcp_reply()), DropReason.DHCP_SERVER),
        (datagram(IPV6_MULTICAST, alice, 0x86DD, router_advertisement()), DropReason.IPV6_RA),
        (datagram(BROADCAST, alice, 0x0800, dhcp_reply()[:-6]), DropReason.SUSPICIOUS),
    ]
    for data, reason in cases:
        assert party.forward(party.alice, data) is reason
        assert party.alice.counters.drops[reason] == 1
        assert party.switch.drops[reason] == 1
    assert party.forward(party.alice, datagram(BROADCAST, alice, payload=bytes(1518 - 14))) == (
        party.gateway,
        party.bob,
        party.carol,
    )


def test_the_lan_may_send_dhcp_and_router_advertisements() -> None:
    party = Party()
    everyone = (party.alice, party.bob, party.carol)
    assert (
        party.forward(party.gateway, datagram(BROADCAST, LAN_HOST, 0x0800, dhcp_reply()))
        == everyone
    )
    ra = datagram(IPV6_MULTICAST, LAN_HOST, 0x86DD, router_advertisement())
    assert party.forward(party.gateway, ra) == everyone
    truncated = datagram(BROADCAST, LAN_HOST, 0x0800, dhcp_reply()[:-6])
    assert party.forward(party.gateway, truncated) == everyone
    assert party.forward(party.gateway, datagram(BROADCAST, LAN_HOST, payload=bytes(1505))) is (
        DropReason.JUMBO
    )


def test_a_disguised_dhcp_reply_from_a_client_is_dropped() -> None:
    party = Party()
    tagged = b"\x81\x00\x00\x05\x88\xa8\x00\x07"  # not a valid order, but receivers accept it
    data = b"\x10" + BROADCAST + party.alice.mac + tagged + b"\x08\x00" + dhcp_reply()
    assert party.forward(party.alice, data) is DropReason.DHCP_SERVER


# ------------------------------------------------------------- rate limits


def test_broadcast_rate_limit() -> None:
    party = Party()
    frame = datagram(BROADCAST, party.alice.mac)
    results = [party.forward(party.alice, frame, 1.0) for _ in range(401)]
    assert all(isinstance(result, tuple) for result in results[:400])
    assert results[400] is DropReason.RATE_LIMITED_BROADCAST
    # 200 frames/s: 1/256 s earns 0.78 of a token, 1/128 s earns 1.56
    assert party.forward(party.alice, frame, 1 + 1 / 256) is DropReason.RATE_LIMITED_BROADCAST
    assert isinstance(party.forward(party.alice, frame, 1 + 1 / 128), tuple)
    assert party.forward(party.alice, frame, 1 + 1 / 128) is DropReason.RATE_LIMITED_BROADCAST
    # multicast shares the bucket; unicast to a known client is not counted in it
    assert party.forward(party.alice, datagram(IPV4_MULTICAST, party.alice.mac), 1 + 1 / 128) is (
        DropReason.RATE_LIMITED_BROADCAST
    )
    assert party.forward(party.alice, datagram(party.bob.mac, party.alice.mac), 1 + 1 / 128) == (
        party.bob,
    )
    # other clients have their own buckets
    assert isinstance(
        party.forward(party.bob, datagram(BROADCAST, party.bob.mac), 1 + 1 / 128), tuple
    )
    assert party.alice.counters.drops == {DropReason.RATE_LIMITED_BROADCAST: 4}


def test_unknown_unicast_rate_limit() -> None:
    party = Party(RelayLimits(client_unknown_unicast_pps=10, client_unknown_unicast_burst=3))
    frame = datagram(LAN_HOST, party.alice.mac)
    assert [isinstance(party.forward(party.alice, frame, 0.0), tuple) for _ in range(3)] == [
        True
    ] * 3
    assert party.forward(party.alice, frame, 0.0) is DropReason.RATE_LIMITED_UNKNOWN_UNICAST
    assert isinstance(party.forward(party.alice, frame, 0.1), tuple)
    # once the LAN host is known, frames to it are no longer unknown unicast
    party.learn(LAN_HOST, now=0.1)
    assert party.forward(party.alice, frame, 0.1) == (party.gateway,)
    # broadcast has its own bucket
    assert isinstance(party.forward(party.alice, datagram(BROADCAST, party.alice.mac), 0.1), tuple)


def test_total_rate_limit_counts_ethernet_frame_bytes_and_a_per_frame_cost() -> None:
    # 1064 bytes/s with a 2128-byte burst: two 1000-byte frames (each + 64)
    party = Party(RelayLimits(client_bps=8 * 1064, client_burst_bytes=2 * 1064))
    frame = datagram(party.bob.mac, party.alice.mac, payload=bytes(1000 - 14))
    assert len(frame) == 1001  # 1000 bytes of Ethernet frame after the overlay byte
    assert FRAME_COST_BYTES == 64
    assert party.forward(party.alice, frame, 0.0) == (party.bob,)
    assert party.forward(party.alice, frame, 0.0) == (party.bob,)
    assert party.forward(party.alice, frame, 0.0) is DropReason.RATE_LIMITED_TOTAL
    assert party.forward(party.alice, frame, 0.999) is DropReason.RATE_LIMITED_TOTAL
    assert party.forward(party.alice, frame, 1.0) == (party.bob,)
    assert party.alice.counters.drops == {DropReason.RATE_LIMITED_TOTAL: 2}


def test_small_frames_cannot_buy_more_than_the_frames_per_second_allowance() -> None:
    party = Party(RelayLimits(client_pps=100, client_pps_burst=10))
    tiny = datagram(party.bob.mac, party.alice.mac, 0x88B5, payload=b"")
    results = [party.forward(party.alice, tiny, 0.0) for _ in range(50)]
    assert results.count((party.bob,)) == 10
    assert results.count(DropReason.RATE_LIMITED_FRAMES) == 40
    # junk costs its token too, before it is even parsed (and is not malformed)
    assert party.forward(party.alice, b"\x99junk", 0.0) is DropReason.RATE_LIMITED_FRAMES
    assert not party.alice.should_disconnect
    assert party.forward(party.alice, tiny, 0.01) == (party.bob,)  # one token a 10 ms
    # every member has its own allowance
    assert party.forward(party.bob, datagram(party.alice.mac, party.bob.mac), 0.0) == (party.alice,)


def test_a_frame_takes_from_all_its_buckets_or_from_none() -> None:
    party = Party(
        RelayLimits(
            client_broadcast_pps=1,
            client_broadcast_burst=2,
            client_bps=8,
            client_burst_bytes=3000 + 2 * FRAME_COST_BYTES,
        )
    )
    alice = party.alice
    big = datagram(BROADCAST, alice.mac, payload=bytes(1400 - 14))  # 1400-byte frame
    small = datagram(BROADCAST, alice.mac, payload=bytes(100 - 14))  # 100-byte frame
    assert alice.broadcast_bucket is not None
    assert alice.byte_bucket is not None
    assert isinstance(party.forward(alice, big, 0.0), tuple)
    assert isinstance(party.forward(alice, big, 0.0), tuple)
    assert alice.byte_bucket.peek(0.0) == 200
    # refused by the broadcast bucket: the byte bucket keeps its tokens
    assert party.forward(alice, small, 0.0) is DropReason.RATE_LIMITED_BROADCAST
    assert alice.byte_bucket.peek(0.0) == 200
    # one broadcast token later: refused by the byte bucket, the broadcast token stays
    assert party.forward(alice, big, 1.0) is DropReason.RATE_LIMITED_TOTAL
    assert alice.broadcast_bucket.peek(1.0) == 1
    assert alice.byte_bucket.peek(1.0) == 201
    assert isinstance(party.forward(alice, small, 1.0), tuple)
    assert alice.broadcast_bucket.peek(1.0) == 0
    assert alice.byte_bucket.peek(1.0) == 101 - FRAME_COST_BYTES


def test_gateways_have_default_limits_a_lan_party_does_not_reach() -> None:
    party = Party(RelayLimits(client_bps=8000, client_burst_bytes=2000))
    assert party.gateway.byte_bucket is None  # its frames/s bound its bits/s too
    assert party.gateway.datagram_bucket.rate_per_s == 100_000
    frame = datagram(BROADCAST, LAN_HOST, payload=bytes(1400))
    for _ in range(500):
        assert party.forward(party.gateway, frame, 0.0) == (party.alice, party.bob, party.carol)
    unknown = datagram(bytes.fromhex("020000000999"), LAN_HOST)
    for _ in range(1000):
        assert isinstance(party.forward(party.gateway, unknown, 0.0), tuple)


def test_gateway_bps_limits_only_the_gateway_total() -> None:
    party = Party(RelayLimits(gateway_bps=8 * 1064, gateway_burst_bytes=3 * 1064))
    frame = datagram(BROADCAST, LAN_HOST, payload=bytes(1000 - 14))
    results = [party.forward(party.gateway, frame, 0.0) for _ in range(4)]
    assert [isinstance(result, tuple) for result in results] == [True, True, True, False]
    assert results[3] is DropReason.RATE_LIMITED_TOTAL
    assert isinstance(party.forward(party.gateway, frame, 1.0), tuple)
    # no broadcast limit for the gateway even now
    small = datagram(BROADCAST, LAN_HOST, payload=bytes(1))
    for step in range(100):  # 10 frames/s of 16 + 64 bytes: within 1064 bytes/s
        assert isinstance(party.forward(party.gateway, small, 2.0 + step * 0.1), tuple)


def test_malformed_threshold_within_the_window() -> None:
    party = Party(RelayLimits(malformed_limit=3))
    for now in (0.0, 1.0, 2.0):
        assert party.forward(party.alice, b"\x00junk", now) is DropReason.MALFORMED
    assert not party.alice.should_disconnect  # exactly the limit is fine
    assert party.forward(party.alice, b"\x00junk", 9.99) is DropReason.MALFORMED
    assert party.alice.should_disconnect
    assert not party.bob.should_disconnect


def test_old_malformed_datagrams_slide_out_of_the_window() -> None:
    party = Party(RelayLimits(malformed_limit=3))
    for now in (0.0, 5.0, 6.0, 10.0, 15.0, 16.0, 20.0, 25.0):
        party.forward(party.alice, b"", now)
        assert not party.alice.should_disconnect, now
    # 4 within 10 s: 20, 25, 28, 29.9
    party.forward(party.alice, b"", 28.0)
    assert not party.alice.should_disconnect
    party.forward(party.alice, b"", 29.9)
    assert party.alice.should_disconnect


def test_default_malformed_threshold() -> None:
    party = Party()
    for index in range(100):
        party.forward(party.gateway, b"\x10", index * 0.099)
    assert not party.gateway.should_disconnect
    party.forward(party.gateway, b"\x10", 9.95)
    assert party.gateway.should_disconnect


def test_other_drops_do_not_count_towards_the_threshold() -> None:
    party = Party(RelayLimits(malformed_limit=0))
    for _ in range(10):
        party.forward(party.alice, datagram(BROADCAST, party.bob.mac))
        party.forward(party.alice, datagram(BROADCAST, party.alice.mac, payload=bytes(2000)))
    assert not party.alice.should_disconnect
    party.forward(party.alice, b"\x10")
    assert party.alice.should_disconnect


# ---------------------------------------------------------------- counters


def test_counters() -> None:
    party = Party()
    to_bob = datagram(party.bob.mac, party.alice.mac)
    broadcast = datagram(BROADCAST, party.alice.mac, payload=bytes(50))
    spoofed = datagram(BROADCAST, party.bob.mac)
    party.forward(party.alice, to_bob)
    party.forward(party.alice, broadcast)
    party.forward(party.alice, spoofed)
    party.forward(party.alice, b"\x99")
    counters = party.alice.counters
    assert counters.rx_frames == 4
    assert counters.rx_bytes == len(to_bob) + len(broadcast) + len(spoofed) + 1
    assert counters.tx_frames == counters.tx_bytes == 0  # the shell's to count
    assert counters.drops == {DropReason.SPOOFED_SOURCE: 1, DropReason.MALFORMED: 1}
    assert party.switch.forwarded_frames == 1 + 3
    assert party.switch.forwarded_bytes == len(to_bob) + 3 * len(broadcast)
    assert party.switch.drops == {DropReason.SPOOFED_SOURCE: 1, DropReason.MALFORMED: 1}
    assert party.bob.counters.rx_frames == 0


# ---------------------------------------------------------------- property

_MACS = [
    BROADCAST,
    IPV4_MULTICAST,
    bytes.fromhex("0180c2000000"),
    raw(GATEWAY_MAC),
    raw(client_mac(1)),
    raw(client_mac(2)),
    raw(client_mac(3)),
    LAN_HOST,
    OTHER_LAN_HOST,
]
_structured = st.builds(
    lambda header, destination, source, type_field, body: (
        bytes([header]) + destination + source + struct.pack("!H", type_field) + body
    ),
    st.sampled_from([0x10, 0x10, 0x10, 0x11, 0x00]),
    st.sampled_from(_MACS),
    st.sampled_from(_MACS),
    st.sampled_from([0x0800, 0x86DD, 0x8100, 0x0806, 0x8137, 40]),
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from([dhcp_reply(), router_advertisement()]),
        st.integers(1380, 1420).map(bytes),
    ),
)
_datagrams = st.one_of(st.binary(max_size=1500), _structured)


@settings(max_examples=300)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 4), _datagrams, st.floats(0, 400), st.booleans()), max_size=40
    ),
    gateway_bps=st.none() | st.just(8e4),
)
def test_forward_never_raises_and_never_reflects_or_oversizes(
    steps: list[tuple[int, bytes, float, bool]], gateway_bps: float | None
) -> None:
    party = Party(RelayLimits(gateway_bps=gateway_bps, client_bps=8e4, client_burst_bytes=4000))
    members = [party.gateway, party.alice, party.bob, party.carol]
    room = party.switch.get_room(ROOM)
    assert room is not None
    now = 0.0
    for index, data, elapsed_s, leaves in steps:
        now += elapsed_s
        if index == 4:
            if leaves and len(members) > 1:
                party.switch.leave(members.pop(), now)
            continue
        sender = members[index % len(members)]
        result = party.forward(sender, data, now)
        if isinstance(result, DropReason):
            continue
        assert type(result) is tuple
        assert sender not in result
        assert all(target in room.members.values() for target in result)
        if result:
            assert len(data) - 1 <= room.max_frame
            assert data[0] == 0x10
            for target in result:  # whole when it fits the target's budget, else in fragments
                if len(data) > target.max_datagram:
                    parts = party.switch.egress(target, data)
                    assert parts
                    assert all(len(part) <= target.max_datagram for part in parts)


# ------------------------------------------------ fragments and MSS (section 11)


def through(party: Party, sender: Member, datagrams: list[bytes], now: float = 0.0) -> list[object]:
    """What the shell does: ingress, then forward whatever became a whole frame."""
    results: list[object] = []
    for received in datagrams:
        whole = party.switch.ingress(sender, received, now)
        if whole is not None:
            results.append((whole, party.forward(sender, whole, now)))
    return results


def test_a_fragmented_frame_is_reassembled_and_forwarded_whole() -> None:
    party = Party()
    alice = party.alice
    frame = datagram(party.bob.mac, alice.mac, 0x8137, bytes(range(256)) * 5)[1:]  # IPX, 1294 B
    parts = fragment_frame(frame, 9, 700)
    assert parts is not None
    assert len(parts) == 2
    results = through(party, alice, parts)
    assert results == [(b"\x10" + frame, (party.bob,))]
    assert party.switch.fragments == {"received": 2, "reassembled": 1}


def test_a_frame_above_a_target_s_budget_leaves_in_fragments() -> None:
    party = Party()
    big = datagram(BROADCAST, LAN_HOST, 0x8137, bytes(1500))
    bob = party.bob
    bob.max_datagram = 700
    parts = party.switch.egress(bob, big)
    assert len(parts) == 3
    assert all(len(part) <= 700 for part in parts)
    again = Reassembler(1518)
    assert [again.add(part, 0.0) for part in parts][-1] == big[1:]
    assert party.switch.egress(bob, big)[0][1:3] == b"\x00\x01"  # its own frame ids count up
    assert party.switch.fragments["fragmented"] == 2


def test_filters_judge_a_reassembled_frame_as_a_whole() -> None:
    party = Party()
    alice = party.alice
    # a DHCP reply from a client, cut so that no fragment alone shows the port
    reply = datagram(BROADCAST, alice.mac, 0x0800, dhcp_reply() + bytes(600))[1:]
    parts = fragment_frame(reply, 3, 330)
    assert parts is not None
    assert len(parts) >= 2
    results = through(party, alice, parts)
    assert [result for _, result in results] == [DropReason.DHCP_SERVER]


def test_fragments_that_disagree_count_towards_the_malformed_threshold() -> None:
    party = Party(RelayLimits(malformed_limit=3))
    alice = party.alice
    first = bytes([0x11, 0, 1, 0x02]) + bytes(100)
    liar = bytes([0x11, 0, 1, 0x13]) + bytes(50)  # the same frame, another count
    for _ in range(4):
        assert party.switch.ingress(alice, first, 0.0) is None
        assert party.switch.ingress(alice, liar, 0.0) is None
    assert alice.counters.drops[DropReason.FRAGMENT_INVALID] == 4
    assert alice.should_disconnect


def test_endless_first_fragments_cost_the_relay_a_fixed_amount() -> None:
    party = Party(RelayLimits(client_pps=1e9, client_pps_burst=1e9))
    alice = party.alice
    for frame_id in range(2000):
        first = bytes([0x11, frame_id >> 8, frame_id & 0xFF, 0x08]) + bytes(180)
        assert party.switch.ingress(alice, first, frame_id * 1e-4) is None
    assert alice.reassembler.pending <= 32
    assert alice.counters.drops[DropReason.FRAGMENT_TIMEOUT] == 2000 - alice.reassembler.pending


def test_syn_mss_is_clamped_to_the_smallest_budget_in_the_room() -> None:
    party = Party()
    room = party.switch.get_room(ROOM)
    assert room is not None
    assert room.mss_ipv4 == MAX_DATAGRAM_1400 - 1 - 14 - 40
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 6 << 4, 0x02, 64240, 0, 0)
    tcp += bytes([2, 4]) + (1460).to_bytes(2, "big")
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, bytes(4), bytes(4)
    )
    syn = datagram(party.bob.mac, party.alice.mac, 0x0800, ip + tcp)
    whole = party.switch.ingress(party.alice, syn, 0.0)
    assert whole is not None
    assert whole != syn
    assert int.from_bytes(whole[1 + 14 + 20 + 22 : 1 + 14 + 20 + 24], "big") == room.mss_ipv4
    assert party.switch.fragments["mss_clamped"] == 1
    # a smaller member lowers the limit for the SYNs that follow
    admit(party.switch, client_hello(client_mac(9), max_datagram=800), 1.0, budget=800)
    assert room.mss_ipv4 == 800 - 1 - 14 - 40
    # anything else goes through untouched, the same object
    plain = datagram(party.bob.mac, party.alice.mac, 0x0800, ip[:9] + b"\x11" + ip[10:] + tcp)
    assert party.switch.ingress(party.alice, plain, 1.0) is plain


@pytest.mark.parametrize("ethertype", [b"\x08\x00", b"\x86\xdd", b"\x81\x00"])
@pytest.mark.parametrize("sender", ["gateway", "alice"])
def test_a_short_frame_in_fragments_is_judged_not_a_crash(ethertype: bytes, sender: str) -> None:
    """Found by an attacker's review: it used to raise IndexError and end the relay."""
    party = Party()
    member = getattr(party, sender)
    frame = BROADCAST + member.mac + ethertype  # 14 bytes: the shortest frame there is
    parts = fragment_frame(frame, 0, 11)
    assert parts is not None
    results = through(party, member, parts)
    assert len(results) == 1


def test_a_full_binding_table_refuses_newcomers_instead_of_freeing_a_mac() -> None:
    """Found by an attacker's review: throw-away ids used to evict an absent player's MAC."""
    switch = Switch(RelayLimits(max_clients_per_room=1))
    open_room(switch)
    bob = admit(switch, client_hello(client_mac(2))).member
    switch.leave(bob, 1.0)
    for number in range(7):  # eight bindings per seat: bob's and seven throw-aways
        throwaway = admit(switch, client_hello(f"02:00:00:00:09:{number:02x}"), 2.0).member
        switch.leave(throwaway, 2.0)
    error = rejection(switch, client_hello("02:00:00:00:09:ff"), 3.0)
    assert error.reject_code is RejectCode.ROOM_FULL
    thief = client_hello(client_mac(2), secret=b"t" * 32)
    assert rejection(switch, thief, 3.0).reject_code is RejectCode.ROOM_FULL
    admit(switch, client_hello(client_mac(2)), 4.0)  # bob himself gets back in

"""Control messages: wire strings of the enums, immutability, normalised MACs.

The Hypothesis strategies here generate valid messages of every type; the
codec and framing tests import them.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.ctrl import (
    Disconnect,
    Hello,
    Message,
    MessageType,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    PeerLeftReason,
    Reject,
    RejectCode,
    RelayMessage,
    Role,
    Stats,
    Welcome,
)
from lanparty.proto.mac import InvalidMacError, format_mac

# --- strategies -----------------------------------------------------------------------------

client_macs = st.binary(min_size=6, max_size=6).map(
    lambda raw: format_mac(bytes([(raw[0] & 0xFC) | 0x02]) + raw[1:])
)
gateway_macs = (
    st.binary(min_size=6, max_size=6)
    .map(lambda raw: bytes([raw[0] & 0xFE]) + raw[1:])
    .filter(lambda mac: mac != bytes(6))
    .map(format_mac)
)
rooms = st.from_regex(r"[a-z2-7]{26}", fullmatch=True)
room_names = st.from_regex(r"[A-Za-z0-9_ -]{1,32}", fullmatch=True)
keys = st.binary(min_size=32, max_size=32)
sha256_hexes = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
peer_ids = st.integers(min_value=0, max_value=2**63)
counts = st.integers(min_value=0, max_value=2**64)
room_mtus = st.integers(min_value=576, max_value=65535)
texts = st.text(max_size=80)


def _role_and_mac(role: Role) -> st.SearchStrategy[tuple[Role, str]]:
    return st.tuples(st.just(role), client_macs if role is Role.CLIENT else gateway_macs)


roles_with_macs = st.sampled_from(Role).flatmap(_role_and_mac)

peer_infos = st.builds(
    lambda peer_id, role_mac: PeerInfo(peer_id=peer_id, role=role_mac[0], mac=role_mac[1]),
    peer_ids,
    roles_with_macs,
)


@st.composite
def welcomes(draw: st.DrawFn) -> Welcome:
    members = draw(
        st.lists(peer_infos, max_size=7, unique_by=(lambda p: p.peer_id, lambda p: p.mac))
    )
    gateways = [p for p in members if p.role is Role.GATEWAY]
    peers = [p for p in members if p.role is Role.CLIENT] + gateways[:1]
    taken_ids = {p.peer_id for p in peers}
    mtu = draw(room_mtus)
    return Welcome(
        peer_id=draw(peer_ids.filter(lambda peer_id: peer_id not in taken_ids)),
        room=draw(rooms),
        mtu=mtu,
        max_frame=mtu + 18,
        peers=tuple(draw(st.permutations(peers))),
        software=draw(texts),
        room_name=draw(st.none() | room_names),
    )


gateway_hellos = st.builds(
    lambda mac, room, max_datagram, software, key, key_hash, name, token: Hello(
        role=Role.GATEWAY,
        room=room,
        mac=mac,
        max_datagram=max_datagram,
        software=software,
        gateway_key=key,
        client_key_sha256=key_hash,
        room_name=name,
        operator_token=token,
    ),
    gateway_macs,
    rooms,
    st.integers(min_value=0, max_value=2**32),
    st.none() | st.text(max_size=64),
    keys,
    sha256_hexes,
    st.none() | room_names,
    st.none() | st.text(max_size=256),
)
client_hellos = st.builds(
    lambda mac, room, max_datagram, software, key, client_id: Hello(
        role=Role.CLIENT,
        room=room,
        mac=mac,
        max_datagram=max_datagram,
        software=software,
        client_key=key,
        client_id=client_id,
    ),
    client_macs,
    rooms,
    st.integers(min_value=0, max_value=2**32),
    st.none() | st.text(max_size=64),
    keys,
    keys,
)
hellos = gateway_hellos | client_hellos
rejects = st.builds(Reject, code=st.sampled_from(RejectCode), message=texts)
peers_joined = st.builds(
    lambda peer_id, role_mac: PeerJoined(peer_id=peer_id, role=role_mac[0], mac=role_mac[1]),
    peer_ids,
    roles_with_macs,
)
peers_left = st.builds(PeerLeft, peer_id=peer_ids, reason=st.sampled_from(PeerLeftReason))
stats = st.builds(
    Stats,
    rx_frames=counts,
    rx_bytes=counts,
    tx_frames=counts,
    tx_bytes=counts,
    drops=st.dictionaries(st.text(max_size=30), counts, max_size=8),
)
disconnects = st.builds(Disconnect, reason=texts)

# what each side of the control stream receives
relay_messages: st.SearchStrategy[RelayMessage] = st.one_of(
    welcomes(), rejects, peers_joined, peers_left, stats, disconnects
)
endpoint_messages: st.SearchStrategy[Message] = st.one_of(hellos, disconnects)
messages: st.SearchStrategy[Message] = st.one_of(relay_messages, hellos)

# --- tests ----------------------------------------------------------------------------------


def test_reject_codes_are_the_wire_strings_of_version_2() -> None:
    assert {code.value for code in RejectCode} == {
        "unsupported_protocol",
        "malformed",
        "invalid_role",
        "invalid_room",
        "invalid_mac",
        "room_full",
        "relay_full",
        "duplicate_mac",
        "mtu_too_small",
        "hello_timeout",
        "not_authorized",
        "room_not_open",
    }


def test_roles_and_peer_left_reasons_are_wire_strings() -> None:
    assert {role.value for role in Role} == {"client", "gateway"}
    assert {reason.value for reason in PeerLeftReason} == {
        "disconnect",
        "closed",
        "timeout",
        "malformed",
        "relay_shutdown",
    }


@pytest.mark.parametrize(
    ("cls", "wire_type"),
    [
        (Hello, "hello"),
        (Welcome, "welcome"),
        (Reject, "reject"),
        (PeerJoined, "peer_joined"),
        (PeerLeft, "peer_left"),
        (Stats, "stats"),
        (Disconnect, "disconnect"),
    ],
)
def test_each_message_class_names_its_wire_type(cls: type[Message], wire_type: str) -> None:
    assert wire_type == cls.TYPE
    assert MessageType(wire_type) is cls.TYPE


@given(messages)
def test_messages_are_frozen_and_hashable(message: Message) -> None:
    field = attrs.fields(type(message))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(message, field, None)
    assert hash(message) == hash(attrs.evolve(message))


def test_hello_defaults_protocol_two_and_no_software() -> None:
    hello = Hello(role=Role.CLIENT, room="den", mac="02:00:00:00:00:01", max_datagram=1200)
    assert hello.protocol == 2
    assert hello.software is None


@given(hellos)
def test_a_hello_s_repr_shows_no_key(hello: Hello) -> None:
    shown = repr(hello)
    for secret in (hello.gateway_key, hello.client_key, hello.client_id):
        if secret is not None:
            assert repr(secret) not in shown
    if hello.operator_token:
        assert f"operator_token={hello.operator_token!r}" not in shown


def test_macs_are_normalised_to_lower_case() -> None:
    assert Hello(role=Role.GATEWAY, room="r", mac="AA:BB:CC:DD:EE:F0", max_datagram=1400).mac == (
        "aa:bb:cc:dd:ee:f0"
    )
    assert PeerInfo(peer_id=1, role=Role.CLIENT, mac="02:0A:0B:0C:0D:0E").mac == "02:0a:0b:0c:0d:0e"
    assert (
        PeerJoined(peer_id=1, role=Role.CLIENT, mac="0E:00:00:00:00:FF").mac == "0e:00:00:00:00:ff"
    )


def test_a_message_cannot_hold_a_malformed_mac() -> None:
    with pytest.raises(InvalidMacError):
        PeerJoined(peer_id=1, role=Role.CLIENT, mac="02-00-00-00-00-01")


def test_stats_drops_compare_equal_whatever_their_order() -> None:
    first = Stats(
        rx_frames=1, rx_bytes=2, tx_frames=3, tx_bytes=4, drops={"jumbo": 2, "malformed": 1}
    )
    second = Stats(
        rx_frames=1, rx_bytes=2, tx_frames=3, tx_bytes=4, drops=[("malformed", 1), ("jumbo", 2)]
    )
    assert first == second
    assert hash(first) == hash(second)
    assert first.drops == (("jumbo", 2), ("malformed", 1))
    assert first.drops_by_reason() == {"jumbo": 2, "malformed": 1}


def test_stats_drop_reasons_given_as_str_enums_are_stored_as_plain_strings() -> None:
    stats_message = Stats(rx_frames=0, rx_bytes=0, tx_frames=0, tx_bytes=0, drops={Role.CLIENT: 1})
    ((reason, _),) = stats_message.drops
    assert type(reason) is str
    assert reason == "client"

"""The strict cattrs codec and the validation rules it applies."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.credentials import b64url
from lanparty.ctrl import (
    ControlProtocolError,
    Hello,
    HelloRejectedError,
    InvalidMessageError,
    Message,
    MissingTypeError,
    PeerInfo,
    Reject,
    RejectCode,
    Role,
    Stats,
    UnknownTypeError,
    Welcome,
    structure_message,
    unstructure_message,
    validate_hello,
)
from tests.unit.test_ctrl_messages import messages

ROOM_ID = "abcdefghijklmnopqrstuvwxyz"
KEY = bytes(range(32))
KEY_TEXT = b64url(KEY)
OTHER_KEY = bytes(range(32, 64))
VALID_HELLO: dict[str, Any] = {
    "type": "hello",
    "protocol": 2,
    "role": "client",
    "room": ROOM_ID,
    "mac": "02:00:00:00:00:01",
    "max_datagram": 1200,
    "software": "lanparty 0.1.0",
    "client_key": KEY_TEXT,
    "client_id": b64url(OTHER_KEY),
}
VALID_GATEWAY_HELLO: dict[str, Any] = {
    "type": "hello",
    "protocol": 2,
    "role": "gateway",
    "room": ROOM_ID,
    "mac": "00:1b:21:aa:bb:cc",
    "max_datagram": 1200,
    "gateway_key": KEY_TEXT,
    "client_key_sha256": "ab" * 32,
    "room_name": "Bob's LAN".replace("'", ""),
}
VALID_WELCOME: dict[str, Any] = {
    "type": "welcome",
    "protocol": 2,
    "peer_id": 7,
    "room": ROOM_ID,
    "mtu": 1400,
    "max_frame": 1418,
    "peers": [
        {"peer_id": 1, "role": "gateway", "mac": "00:1b:21:aa:bb:cc"},
        {"peer_id": 2, "role": "client", "mac": "02:00:00:00:00:02"},
    ],
    "software": "lanparty-relay 0.1.0",
}


def hello_with(**changes: Any) -> dict[str, Any]:
    fields = {**VALID_HELLO, **changes}
    return {name: value for name, value in fields.items() if value is not ...}


def gateway_hello_with(**changes: Any) -> dict[str, Any]:
    fields = {**VALID_GATEWAY_HELLO, **changes}
    return {name: value for name, value in fields.items() if value is not ...}


def welcome_with(**changes: Any) -> dict[str, Any]:
    return {**VALID_WELCOME, **changes}


def rejected_code(fields: dict[str, Any]) -> RejectCode:
    with pytest.raises(HelloRejectedError) as caught:
        validate_hello(fields)
    return caught.value.reject_code


# --- round trip and wire shape --------------------------------------------------------------


@given(messages)
def test_every_message_round_trips_through_json(message: Message) -> None:
    wire = json.loads(json.dumps(unstructure_message(message)))
    assert structure_message(wire) == message


@given(messages)
def test_unstructured_messages_hold_only_json_types(message: Message) -> None:
    def check(value: object) -> None:
        assert type(value) in (dict, list, str, int)
        if isinstance(value, dict):
            for key, item in value.items():
                assert type(key) is str
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)

    fields = unstructure_message(message)
    assert next(iter(fields)) == "type"
    assert fields["type"] == message.TYPE.value
    check(fields)


def test_welcome_wire_form() -> None:
    welcome = Welcome(
        peer_id=7,
        room=ROOM_ID,
        mtu=1400,
        max_frame=1418,
        peers=(PeerInfo(peer_id=1, role=Role.GATEWAY, mac="00:1B:21:AA:BB:CC"),),
        software="relay",
        room_name="Bob LAN",
    )
    assert unstructure_message(welcome) == {
        "type": "welcome",
        "protocol": 2,
        "peer_id": 7,
        "room": ROOM_ID,
        "mtu": 1400,
        "max_frame": 1418,
        "peers": [{"peer_id": 1, "role": "gateway", "mac": "00:1b:21:aa:bb:cc"}],
        "software": "relay",
        "room_name": "Bob LAN",
    }
    assert "room_name" not in unstructure_message(attrs.evolve(welcome, room_name=None))


def test_stats_drops_travel_as_a_json_object() -> None:
    stats = Stats(rx_frames=1, rx_bytes=60, tx_frames=2, tx_bytes=120, drops={"jumbo": 3})
    assert unstructure_message(stats)["drops"] == {"jumbo": 3}


def test_hello_software_is_omitted_when_absent_and_sent_when_present() -> None:
    hello = Hello(role=Role.CLIENT, room="den", mac="02:00:00:00:00:01", max_datagram=1200)
    assert "software" not in unstructure_message(hello)
    with_software = unstructure_message(
        Hello(role=Role.CLIENT, room="d", mac="02:00:00:00:00:01", max_datagram=1200, software="x")
    )
    assert with_software["software"] == "x"


# --- hello rules ----------------------------------------------------------------------------


def test_a_valid_hello_is_accepted_and_normalised() -> None:
    hello = validate_hello(hello_with(mac="0A:BC:DE:F0:12:34"))
    assert hello == Hello(
        role=Role.CLIENT,
        room=ROOM_ID,
        mac="0a:bc:de:f0:12:34",
        max_datagram=1200,
        software="lanparty 0.1.0",
        client_key=KEY,
        client_id=OTHER_KEY,
    )
    assert type(hello.role) is Role


def test_a_valid_gateway_hello_is_accepted() -> None:
    hello = validate_hello(gateway_hello_with(operator_token="t0ken"))
    assert hello.role is Role.GATEWAY
    assert hello.gateway_key == KEY
    assert hello.client_key_sha256 == "ab" * 32
    assert hello.room_name == "Bobs LAN"
    assert hello.operator_token == "t0ken"
    assert hello.client_key is None
    assert hello.client_id is None


def test_the_wire_form_of_a_hello_holds_keys_as_base64url() -> None:
    fields = unstructure_message(validate_hello(hello_with()))
    assert fields["client_key"] == KEY_TEXT
    assert "gateway_key" not in fields
    assert "room_name" not in fields


@pytest.mark.parametrize("field", ["client_key", "client_id"])
def test_a_client_hello_needs_its_credentials(field: str) -> None:
    with pytest.raises(HelloRejectedError, match=field) as caught:
        validate_hello(hello_with(**{field: ...}))
    assert caught.value.reject_code is RejectCode.MALFORMED


@pytest.mark.parametrize("field", ["gateway_key", "client_key_sha256"])
def test_a_gateway_hello_needs_its_credentials(field: str) -> None:
    with pytest.raises(HelloRejectedError, match=field) as caught:
        validate_hello(gateway_hello_with(**{field: ...}))
    assert caught.value.reject_code is RejectCode.MALFORMED


@pytest.mark.parametrize(
    "key_text",
    [
        "",
        KEY_TEXT[:-1],  # 42 characters
        KEY_TEXT + "A",  # 44
        KEY_TEXT + "=",  # padding
        KEY_TEXT[:-1] + "+",  # base64, not base64url
        KEY_TEXT[:-1] + "B",  # the two spare bits set: not canonical
        "é" * 43,
    ],
)
def test_a_key_that_is_not_32_bytes_of_canonical_base64url_is_malformed(key_text: str) -> None:
    with pytest.raises(HelloRejectedError) as caught:
        validate_hello(hello_with(client_key=key_text))
    assert caught.value.reject_code is RejectCode.MALFORMED
    assert key_text not in str(caught.value) or not key_text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"client_key_sha256": "AB" * 32}, "client_key_sha256"),
        ({"client_key_sha256": "ab" * 31}, "client_key_sha256"),
        ({"room_name": ""}, "room name"),
        ({"room_name": "x" * 33}, "room name"),
        ({"room_name": "a\nb"}, "room name"),
        ({"room_name": 5}, "room_name"),
        ({"operator_token": "t" * 257}, "operator token"),
        ({"operator_token": 5}, "operator_token"),
    ],
)
def test_bad_gateway_fields_are_malformed(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(HelloRejectedError, match=field) as caught:
        validate_hello(gateway_hello_with(**changes))
    assert caught.value.reject_code is RejectCode.MALFORMED


def test_a_version_1_hello_is_told_to_update_not_that_it_is_malformed() -> None:
    version_1 = {
        "type": "hello",
        "protocol": 1,
        "role": "client",
        "room": "party",
        "mac": "02:00:00:00:00:01",
        "max_datagram": 1400,
    }
    with pytest.raises(HelloRejectedError, match="update lanparty") as caught:
        validate_hello(version_1)
    assert caught.value.reject_code is RejectCode.UNSUPPORTED_PROTOCOL
    assert "protocol 2" in str(caught.value)


def test_software_is_cut_to_64_characters() -> None:
    assert validate_hello(hello_with(software="s" * 65_000)).software == "s" * 64


def test_structure_message_applies_the_hello_rules() -> None:
    with pytest.raises(HelloRejectedError) as caught:
        structure_message(hello_with(role="spectator"))
    assert caught.value.reject_code is RejectCode.INVALID_ROLE


@pytest.mark.parametrize("field", ["protocol", "role", "room", "mac", "max_datagram"])
def test_a_missing_hello_field_is_malformed(field: str) -> None:
    with pytest.raises(HelloRejectedError, match=field) as caught:
        validate_hello(hello_with(**{field: ...}))
    assert caught.value.reject_code is RejectCode.MALFORMED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("protocol", True),
        ("protocol", "1"),
        ("protocol", 1.0),
        ("max_datagram", False),
        ("max_datagram", 1200.0),
        ("max_datagram", None),
        ("role", ["client"]),
        ("room", 5),
        ("mac", None),
        ("software", 3),
        ("software", None),
    ],
)
def test_a_mistyped_hello_field_is_malformed(field: str, value: object) -> None:
    assert rejected_code(hello_with(**{field: value})) is RejectCode.MALFORMED


def test_software_is_optional() -> None:
    assert validate_hello(hello_with(software=...)).software is None


def test_a_surrogate_in_a_hello_string_is_malformed() -> None:
    assert rejected_code(hello_with(software="\ud800")) is RejectCode.MALFORMED


@pytest.mark.parametrize("protocol", [0, 1, 3, -1, 10**30])
def test_another_protocol_is_unsupported(protocol: int) -> None:
    assert rejected_code(hello_with(protocol=protocol)) is RejectCode.UNSUPPORTED_PROTOCOL


@pytest.mark.parametrize("role", ["", "Client", "relay", "gateway "])
def test_an_unknown_role_is_invalid(role: str) -> None:
    assert rejected_code(hello_with(role=role)) is RejectCode.INVALID_ROLE


@pytest.mark.parametrize(
    "room", ["", "party", "a" * 25, "a" * 27, ROOM_ID.upper(), "a" * 25 + "1", "a" * 25 + "="]
)
def test_a_room_that_is_not_a_room_id_is_invalid(room: str) -> None:
    assert rejected_code(hello_with(room=room)) is RejectCode.INVALID_ROOM
    assert rejected_code(gateway_hello_with(room=room)) is RejectCode.INVALID_ROOM


@pytest.mark.parametrize("room", ["a" * 26, "7" * 26, ROOM_ID])
def test_room_ids_of_26_base32_characters_pass(room: str) -> None:
    assert validate_hello(hello_with(room=room)).room == room


@pytest.mark.parametrize(
    "mac",
    [
        "02:00:00:00:00",  # five groups
        "02-00-00-00-00-01",  # wrong separator
        "2:0:0:0:0:1",  # one-digit groups
        "00:00:00:00:00:00",  # zero
        "03:00:00:00:00:01",  # multicast
        "ff:ff:ff:ff:ff:ff",  # broadcast
        "00:1b:21:aa:bb:cc",  # universally administered, not allowed for a client
    ],
)
def test_a_bad_client_mac_is_invalid(mac: str) -> None:
    assert rejected_code(hello_with(mac=mac)) is RejectCode.INVALID_MAC


def test_a_gateway_mac_may_be_universally_administered() -> None:
    hello = validate_hello(gateway_hello_with(mac="00:1B:21:AA:BB:CC"))
    assert hello.role is Role.GATEWAY
    assert hello.mac == "00:1b:21:aa:bb:cc"


@pytest.mark.parametrize("mac", ["00:00:00:00:00:00", "01:00:5e:00:00:01"])
def test_a_gateway_mac_must_still_be_unicast_and_not_zero(mac: str) -> None:
    assert rejected_code(gateway_hello_with(mac=mac)) is RejectCode.INVALID_MAC


@pytest.mark.parametrize("max_datagram", [0, -5, 100, 594])
def test_max_datagram_is_judged_by_the_switch_after_the_credentials(max_datagram: int) -> None:
    # PROTOCOL.md 10: mtu_too_small is room state; a wrong key must hear not_authorized.
    assert validate_hello(hello_with(max_datagram=max_datagram)).max_datagram == max_datagram


@pytest.mark.parametrize(
    ("changes", "first_failure"),
    [
        ({"protocol": "1", "role": "x"}, RejectCode.MALFORMED),
        ({"protocol": 1, "max_datagram": "big"}, RejectCode.MALFORMED),
        ({"protocol": 1, "role": "x"}, RejectCode.UNSUPPORTED_PROTOCOL),
        ({"protocol": 1, "client_key": ...}, RejectCode.UNSUPPORTED_PROTOCOL),
        ({"role": "x", "room": ""}, RejectCode.INVALID_ROLE),
        ({"client_key": "x", "room": ""}, RejectCode.MALFORMED),
        ({"room": "", "mac": "zz"}, RejectCode.INVALID_ROOM),
        ({"mac": "zz", "max_datagram": 10}, RejectCode.INVALID_MAC),
        (
            {"protocol": 9, "role": "x", "room": "", "mac": "zz", "max_datagram": 1},
            RejectCode.UNSUPPORTED_PROTOCOL,
        ),
    ],
)
def test_a_hello_failing_two_rules_reports_the_first(
    changes: dict[str, Any], first_failure: RejectCode
) -> None:
    assert rejected_code(hello_with(**changes)) is first_failure


def test_unknown_hello_fields_are_ignored() -> None:
    hello = validate_hello(hello_with(colour="blue", extensions={"x": [1, 2]}))
    assert hello.room == ROOM_ID


def test_a_rejection_message_does_not_grow_with_the_peer_s_value() -> None:
    for changes in (
        {"role": "x" * 100_000},
        {"room": "y" * 100_000},
        {"mac": "z" * 100_000},
        {"protocol": 10**4000},
        {"room_name": "n" * 100_000, "role": "gateway"},
        {"operator_token": "t" * 100_000, "role": "gateway"},
        {"client_key": "k" * 100_000},
    ):
        fields = gateway_hello_with(**changes) if "role" in changes else hello_with(**changes)
        with pytest.raises(HelloRejectedError) as caught:
            validate_hello(fields)
        assert len(str(caught.value)) < 300


# --- other messages -------------------------------------------------------------------------


def test_a_valid_welcome_is_structured() -> None:
    welcome = structure_message(VALID_WELCOME)
    assert isinstance(welcome, Welcome)
    assert welcome.peers[0] == PeerInfo(peer_id=1, role=Role.GATEWAY, mac="00:1b:21:aa:bb:cc")


def test_unknown_fields_are_ignored_in_every_message() -> None:
    welcome = welcome_with(future=1, peers=[{**VALID_WELCOME["peers"][1], "nickname": "x"}])
    assert structure_message(welcome) == structure_message(
        welcome_with(peers=[VALID_WELCOME["peers"][1]])
    )
    reject = structure_message({"type": "reject", "code": "room_full", "message": "m", "retry": 5})
    assert reject == Reject(code=RejectCode.ROOM_FULL, message="m")


@pytest.mark.parametrize(
    "fields",
    [
        welcome_with(peer_id=True),
        welcome_with(mtu=1400.0),
        welcome_with(mtu="1400"),
        welcome_with(room=None),
        welcome_with(peers={}),
        welcome_with(peers="peers"),
        welcome_with(peers=[[1, "client", "02:00:00:00:00:02"]]),
        welcome_with(peers=[{"peer_id": 2, "role": "client"}]),
        {"type": "peer_left", "peer_id": False, "reason": "timeout"},
        {
            "type": "stats",
            "rx_frames": 1,
            "rx_bytes": 1,
            "tx_frames": 1,
            "tx_bytes": True,
            "drops": {},
        },
        {
            "type": "stats",
            "rx_frames": 1,
            "rx_bytes": 1,
            "tx_frames": 1,
            "tx_bytes": 1,
            "drops": [],
        },
        {
            "type": "stats",
            "rx_frames": 1,
            "rx_bytes": 1,
            "tx_frames": 1,
            "tx_bytes": 1,
            "drops": {"a": True},
        },
        {"type": "disconnect", "reason": 5},
        {"type": "disconnect"},
        {"type": "reject", "code": "malformed", "message": "\udfff"},
    ],
)
def test_missing_and_mistyped_fields_are_invalid(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        structure_message(fields)
    assert caught.value.reject_code is RejectCode.MALFORMED


@pytest.mark.parametrize(
    "fields",
    [
        welcome_with(protocol=1),
        welcome_with(room_name=""),
        welcome_with(room_name="x" * 33),
        welcome_with(peer_id=-1),
        welcome_with(room="no room"),
        welcome_with(mtu=575, max_frame=593),
        welcome_with(max_frame=1500),
        welcome_with(peers=[{"peer_id": 2, "role": "client", "mac": "00:1b:21:00:00:01"}]),
        welcome_with(peers=[{"peer_id": 2, "role": "admin", "mac": "02:00:00:00:00:02"}]),
        welcome_with(peers=[{"peer_id": 7, "role": "client", "mac": "02:00:00:00:00:02"}]),
        welcome_with(
            peers=[
                {"peer_id": 1, "role": "gateway", "mac": "00:1b:21:00:00:01"},
                {"peer_id": 2, "role": "gateway", "mac": "00:1b:21:00:00:02"},
            ]
        ),
        welcome_with(
            peers=[
                {"peer_id": 1, "role": "client", "mac": "02:00:00:00:00:02"},
                {"peer_id": 2, "role": "client", "mac": "02:00:00:00:00:02"},
            ]
        ),
        {"type": "peer_joined", "peer_id": 3, "role": "client", "mac": "ff:ff:ff:ff:ff:ff"},
        {"type": "peer_joined", "peer_id": 3, "role": "client", "mac": "not a mac"},
        {"type": "peer_left", "peer_id": 3, "reason": "bored"},
        {"type": "reject", "code": "go_away", "message": "no"},
        {
            "type": "stats",
            "rx_frames": -1,
            "rx_bytes": 1,
            "tx_frames": 1,
            "tx_bytes": 1,
            "drops": {},
        },
        {
            "type": "stats",
            "rx_frames": 1,
            "rx_bytes": 1,
            "tx_frames": 1,
            "tx_bytes": 1,
            "drops": {"x": -2},
        },
    ],
)
def test_impossible_values_from_a_relay_are_invalid(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessageError):
        structure_message(fields)


def test_an_invalid_message_says_which_field_is_wrong() -> None:
    with pytest.raises(InvalidMessageError, match=r"peers\[0\]\.peer_id must be an integer"):
        structure_message(
            welcome_with(peers=[{"peer_id": "1", "role": "client", "mac": "02:00:00:00:00:02"}])
        )


def test_a_dict_without_a_string_type_is_refused() -> None:
    with pytest.raises(MissingTypeError):
        structure_message({"reason": "x"})
    with pytest.raises(MissingTypeError):
        structure_message({"type": 3, "reason": "x"})


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownTypeError) as caught:
        structure_message({"type": "telepathy"})
    assert caught.value.message_type == "telepathy"


# --- fuzzing --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
plausible_values = st.sampled_from(
    [
        1,
        0,
        -1,
        595,
        1400,
        1418,
        True,
        "client",
        "gateway",
        "den",
        "02:00:00:00:00:02",
        "timeout",
        "room_full",
        2,
        ROOM_ID,
        KEY_TEXT,
        "ab" * 32,
        "Bob LAN",
    ]
) | st.lists(
    st.fixed_dictionaries(
        {"peer_id": st.integers(0, 3), "role": st.sampled_from(["client", "gateway", 1])}
    ).map(lambda d: {**d, "mac": "02:00:00:00:00:0" + str(d["peer_id"])}),
    max_size=3,
)
field_names = [
    "protocol",
    "role",
    "room",
    "mac",
    "max_datagram",
    "software",
    "peer_id",
    "mtu",
    "max_frame",
    "peers",
    "code",
    "message",
    "reason",
    "rx_frames",
    "rx_bytes",
    "tx_frames",
    "tx_bytes",
    "drops",
    "gateway_key",
    "client_key_sha256",
    "room_name",
    "operator_token",
    "client_key",
    "client_id",
]
message_types = st.sampled_from(
    ["hello", "welcome", "reject", "peer_joined", "peer_left", "stats", "disconnect", "other"]
)


@given(message_types, st.dictionaries(st.sampled_from(field_names), json_values | plausible_values))
def test_any_json_object_is_a_message_or_a_control_protocol_error(
    message_type: str, fields: dict[str, Any]
) -> None:
    try:
        message = structure_message({"type": message_type, **fields})
    except ControlProtocolError:
        return
    assert message_type == message.TYPE


_HELLO_VALUES = st.sampled_from([None, 2, 1, 0, True, "", "x" * 70, ROOM_ID, KEY_TEXT, "ab" * 32])


@given(
    st.sampled_from(["client", "gateway"]),
    st.dictionaries(st.sampled_from(field_names), json_values | plausible_values | _HELLO_VALUES),
)
def test_any_hello_of_either_role_is_a_hello_or_a_reject_code(
    role: str, changes: dict[str, Any]
) -> None:
    base = VALID_HELLO if role == "client" else VALID_GATEWAY_HELLO
    fields = {**base, **changes}
    try:
        hello = validate_hello(fields)
    except HelloRejectedError as exc:
        refusal: HelloRejectedError | None = exc
    else:
        refusal = None
    if refusal is not None:
        assert isinstance(refusal.reject_code, RejectCode)
        assert len(str(refusal)) < 400
        return
    assert hello.protocol == 2
    assert structure_message(unstructure_message(hello)) == hello

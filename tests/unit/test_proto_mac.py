"""MAC address parsing, formatting, validation and generation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.errors import ProtocolError
from lanparty.proto.mac import (
    BROADCAST_MAC,
    MAC_LENGTH,
    ZERO_MAC,
    InvalidMacError,
    check_endpoint_mac,
    format_mac,
    is_locally_administered,
    is_multicast,
    is_unicast,
    normalize_mac,
    parse_mac,
    random_local_mac,
)

macs = st.binary(min_size=MAC_LENGTH, max_size=MAC_LENGTH)


def test_parse_either_case() -> None:
    assert parse_mac("02:AB:cd:00:11:ff") == bytes.fromhex("02abcd0011ff")


def test_format_is_lower_case_with_colons() -> None:
    assert format_mac(bytes.fromhex("02ABCD0011FF")) == "02:ab:cd:00:11:ff"


def test_normalize() -> None:
    assert normalize_mac("AA:BB:CC:DD:EE:0F") == "aa:bb:cc:dd:ee:0f"


@given(macs)
def test_parse_inverts_format(mac: bytes) -> None:
    assert parse_mac(format_mac(mac)) == mac
    assert parse_mac(format_mac(mac).upper()) == mac


@pytest.mark.parametrize(
    "text",
    [
        "",
        "02:00:00:00:00",
        "02:00:00:00:00:00:00",
        "02-00-00-00-00-01",
        "0200.0000.0001",
        "020000000001",
        "2:0:0:0:0:1",
        "02:00:00:00:00:0g",
        " 02:00:00:00:00:01",
        "02:00:00:00:00:01\n",
        "\uff10\uff12:00:00:00:00:01",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidMacError):
        parse_mac(text)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(InvalidMacError):
        parse_mac(b"02:00:00:00:00:01")  # type: ignore[arg-type]


@given(st.text(max_size=24))
def test_parse_returns_six_bytes_or_raises_its_own_error(text: str) -> None:
    try:
        mac = parse_mac(text)
    except InvalidMacError:
        return
    assert len(mac) == MAC_LENGTH
    assert format_mac(mac) == text.lower()


def test_invalid_mac_is_a_protocol_error() -> None:
    assert issubclass(InvalidMacError, ProtocolError)


@pytest.mark.parametrize("length", [0, 5, 7])
def test_format_rejects_wrong_length(length: int) -> None:
    with pytest.raises(InvalidMacError):
        format_mac(bytes(length))


def test_address_bits() -> None:
    assert is_multicast(BROADCAST_MAC)
    assert is_multicast(bytes.fromhex("01005e000001"))
    assert is_unicast(bytes.fromhex("020000000001"))
    assert not is_multicast(bytes.fromhex("020000000001"))
    assert is_locally_administered(bytes.fromhex("020000000001"))
    assert not is_locally_administered(bytes.fromhex("001122334455"))


def test_client_mac_must_be_local_unicast_and_not_zero() -> None:
    check_endpoint_mac(bytes.fromhex("020000000001"), must_be_local=True)
    with pytest.raises(InvalidMacError, match="locally administered"):
        check_endpoint_mac(bytes.fromhex("001122334455"), must_be_local=True)
    with pytest.raises(InvalidMacError, match="multicast"):
        check_endpoint_mac(bytes.fromhex("030000000001"), must_be_local=True)
    with pytest.raises(InvalidMacError, match="00:00:00:00:00:00"):
        check_endpoint_mac(ZERO_MAC, must_be_local=False)
    with pytest.raises(InvalidMacError, match="6 bytes"):
        check_endpoint_mac(bytes(5), must_be_local=False)


def test_gateway_mac_may_be_universal() -> None:
    check_endpoint_mac(bytes.fromhex("001122334455"), must_be_local=False)


@given(macs)
def test_check_endpoint_mac_agrees_with_the_bits(mac: bytes) -> None:
    valid = mac != ZERO_MAC and is_unicast(mac)
    for must_be_local in (False, True):
        expected = valid and (is_locally_administered(mac) or not must_be_local)
        try:
            check_endpoint_mac(mac, must_be_local=must_be_local)
        except InvalidMacError:
            assert not expected
        else:
            assert expected


def test_random_local_macs_are_valid_client_macs() -> None:
    seen = set()
    for _ in range(200):
        mac = random_local_mac()
        check_endpoint_mac(mac, must_be_local=True)
        seen.add(mac)
    assert len(seen) == 200

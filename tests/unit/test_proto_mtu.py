"""Room MTU arithmetic (PROTOCOL.md section 4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.errors import ConfigError
from lanparty.proto.mtu import (
    DEFAULT_RELAY_MTU,
    MIN_ROOM_MTU,
    MtuAdmission,
    admit_mtu,
    check_relay_mtu,
    endpoint_capacity,
    max_frame,
    minimum_capacity,
    required_max_datagram,
    room_mtu,
)


def test_constants() -> None:
    assert MIN_ROOM_MTU == 576
    assert DEFAULT_RELAY_MTU == 1400


def test_capacity_leaves_room_for_header_ethernet_and_one_tag() -> None:
    assert endpoint_capacity(1419) == 1400
    assert endpoint_capacity(1200) == 1200 - 1 - 14 - 4


def test_max_frame_is_mtu_plus_ethernet_header_and_one_tag() -> None:
    assert max_frame(1400) == 1418
    assert max_frame(576) == 594


@given(st.integers(min_value=0, max_value=70000))
def test_required_max_datagram_inverts_capacity(max_datagram: int) -> None:
    assert required_max_datagram(endpoint_capacity(max_datagram)) == max_datagram
    assert endpoint_capacity(required_max_datagram(max_datagram)) == max_datagram


@given(st.integers(min_value=576, max_value=9000), st.integers(min_value=0, max_value=70000))
def test_datagram_of_max_frame_fits_required_max_datagram(mtu: int, capacity: int) -> None:
    # The overlay header plus the largest frame is exactly the budget.
    assert 1 + max_frame(mtu) == required_max_datagram(mtu)
    assert room_mtu(mtu, capacity) == min(mtu, capacity)


def test_room_mtu_is_the_smaller_of_relay_and_first_member() -> None:
    assert room_mtu(1400, 1200) == 1200
    assert room_mtu(1400, 1500) == 1400


def test_minimum_capacity() -> None:
    assert minimum_capacity(None) == 576
    assert minimum_capacity(1400) == 1400
    # A room never has an MTU below 576, but the floor holds regardless.
    assert minimum_capacity(500) == 576


def test_first_member_creates_room_with_its_capacity() -> None:
    verdict = admit_mtu(1219, relay_mtu=1400, current_room_mtu=None)
    assert verdict == MtuAdmission(admitted=True, room_mtu=1200, required_max_datagram=595)


def test_first_member_with_large_capacity_gets_the_relay_mtu() -> None:
    verdict = admit_mtu(65000, relay_mtu=1400, current_room_mtu=None)
    assert verdict.admitted
    assert verdict.room_mtu == 1400


def test_capacity_below_576_is_always_too_small() -> None:
    verdict = admit_mtu(required_max_datagram(575), relay_mtu=1400, current_room_mtu=None)
    assert not verdict.admitted
    assert verdict.required_max_datagram == 595
    assert admit_mtu(595, relay_mtu=1400, current_room_mtu=None).admitted


def test_later_member_below_room_mtu_is_told_the_budget_it_needs() -> None:
    verdict = admit_mtu(1418, relay_mtu=1400, current_room_mtu=1400)
    assert verdict == MtuAdmission(admitted=False, room_mtu=1400, required_max_datagram=1419)


def test_later_member_at_room_mtu_is_admitted_to_the_fixed_mtu() -> None:
    assert admit_mtu(1419, relay_mtu=1400, current_room_mtu=1400).admitted
    # The room keeps its MTU even if the relay's setting changed since.
    verdict = admit_mtu(9000, relay_mtu=1500, current_room_mtu=1200)
    assert verdict.admitted
    assert verdict.room_mtu == 1200


@given(
    st.integers(min_value=0, max_value=70000),
    st.integers(min_value=576, max_value=9000),
    st.none() | st.integers(min_value=576, max_value=9000),
)
def test_admission_matches_section_4(
    max_datagram: int, relay_mtu: int, current_room_mtu: int | None
) -> None:
    verdict = admit_mtu(max_datagram, relay_mtu=relay_mtu, current_room_mtu=current_room_mtu)
    capacity = endpoint_capacity(max_datagram)
    floor = 576 if current_room_mtu is None else current_room_mtu
    assert verdict.admitted == (capacity >= floor)
    assert verdict.admitted == (max_datagram >= verdict.required_max_datagram)
    if verdict.admitted:
        assert MIN_ROOM_MTU <= verdict.room_mtu <= capacity
        assert required_max_datagram(verdict.room_mtu) <= max_datagram


@pytest.mark.parametrize("relay_mtu", [576, 1400, 9000, 65535])
def test_relay_mtu_in_range_is_accepted(relay_mtu: int) -> None:
    assert check_relay_mtu(relay_mtu) == relay_mtu


@pytest.mark.parametrize("relay_mtu", [-1, 0, 575, 65536])
def test_relay_mtu_out_of_range_is_a_config_error(relay_mtu: int) -> None:
    with pytest.raises(ConfigError, match="--mtu"):
        check_relay_mtu(relay_mtu)

"""Room MTU arithmetic (PROTOCOL.md 4 and 11): one MTU for the room, budgets that fragment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.errors import ConfigError
from lanparty.proto.fragments import fragment_frame
from lanparty.proto.mtu import (
    DEFAULT_RELAY_MTU,
    MAX_ROOM_MTU,
    MIN_MAX_DATAGRAM,
    MIN_ROOM_MTU,
    admit_mtu,
    check_relay_mtu,
    endpoint_capacity,
    max_frame,
    required_max_datagram,
)


def test_the_numbers_of_the_contract() -> None:
    assert DEFAULT_RELAY_MTU == 1500
    assert MAX_ROOM_MTU == 9000 - 18
    assert MIN_MAX_DATAGRAM == 600
    assert max_frame(1500) == 1518
    assert endpoint_capacity(1408) == 1389


@pytest.mark.parametrize(
    ("max_datagram", "admitted"), [(599, False), (600, True), (1408, True), (65535, True)]
)
def test_a_member_needs_600_bytes_whatever_the_room(max_datagram: int, admitted: bool) -> None:
    verdict = admit_mtu(max_datagram, relay_mtu=1500)
    assert verdict.admitted is admitted
    assert verdict.room_mtu == 1500  # the same for every member
    assert verdict.required_max_datagram == 600


def test_a_jumbo_room_needs_budgets_its_frames_fit_in_8_fragments() -> None:
    needed = required_max_datagram(MAX_ROOM_MTU)
    assert needed == 9000 // 8 + 4
    assert not admit_mtu(needed - 1, relay_mtu=MAX_ROOM_MTU).admitted
    assert admit_mtu(needed, relay_mtu=MAX_ROOM_MTU).admitted


@given(st.integers(MIN_ROOM_MTU, MAX_ROOM_MTU), st.integers(0, 70000))
def test_an_admitted_budget_always_carries_the_room_s_largest_frame(
    mtu: int, max_datagram: int
) -> None:
    if admit_mtu(max_datagram, relay_mtu=mtu).admitted:
        frame = bytes(max_frame(mtu))
        if len(frame) + 1 > max_datagram:
            assert fragment_frame(frame, 0, max_datagram) is not None


@pytest.mark.parametrize("mtu", [575, 8983, 65535])
def test_the_relay_mtu_is_checked(mtu: int) -> None:
    with pytest.raises(ConfigError, match="--mtu"):
        check_relay_mtu(mtu)
    assert check_relay_mtu(1500) == 1500

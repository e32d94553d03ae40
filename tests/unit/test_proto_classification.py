"""The frame classification value shared by the classifier and the filters."""

from __future__ import annotations

import attrs
import pytest

from lanparty.proto.classification import (
    FragmentState,
    FrameClass,
    Uncertainty,
    certain_frame_class,
)


def test_certain_unless_a_reason_is_given() -> None:
    assert FrameClass(0x0806).certain
    uncertain = FrameClass(0x86DD, ip_version=6, uncertainty=Uncertainty.ENCRYPTED)
    assert not uncertain.certain
    assert uncertain.uncertainty == "encrypted"


def test_is_ip() -> None:
    assert FrameClass(0x0800, ip_version=4).is_ip
    assert not FrameClass(0x8137).is_ip


def test_frozen() -> None:
    frame_class = FrameClass(0x0800)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        frame_class.ethertype = 0x86DD  # type: ignore[misc]


def test_shared_results_equal_fresh_ones() -> None:
    shared = certain_frame_class(0x0800, 1, False, 4, 17, FragmentState.FIRST, 67, 68)
    assert shared == FrameClass(0x0800, 1, False, 4, 17, FragmentState.FIRST, 67, 68)
    assert shared is certain_frame_class(0x0800, 1, False, 4, 17, FragmentState.FIRST, 67, 68)
    assert shared.certain


def test_fragment_states_hash_like_themselves() -> None:
    states = {state: state.value for state in FragmentState}
    assert states[FragmentState("first")] == "first"
    assert len(states) == 3


def test_reasons_are_short_wire_style_strings() -> None:
    for reason in Uncertainty:
        assert reason.value == reason.name.lower()

"""Fragments (PROTOCOL.md 11): splitting, reassembly in any order, and a bounded reassembler."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanparty.proto.fragments import (
    MAX_FRAGMENTS,
    OVERLAY_FRAGMENT,
    FragmentError,
    Reassembler,
    fragment_frame,
)

MAX_FRAME = 1518


def frame_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize(
    ("size", "budget", "count"), [(1518, 1408, 2), (1518, 600, 3), (9018, 1200, 8)]
)
def test_a_frame_splits_into_equal_parts_and_comes_back(size: int, budget: int, count: int) -> None:
    frame = frame_of(size)
    parts = fragment_frame(frame, 0x1234, budget)
    assert parts is not None
    assert len(parts) == count
    assert all(len(part) <= budget for part in parts)
    assert {len(part) for part in parts[:-1]} == {len(parts[0])}
    assert len(parts[-1]) <= len(parts[0])
    assert all(part[:3] == bytes([OVERLAY_FRAGMENT, 0x12, 0x34]) for part in parts)
    assert [part[3] for part in parts] == [index << 4 | count for index in range(count)]
    reassembler = Reassembler(max_frame=max(MAX_FRAME, size))
    results = [reassembler.add(part, 0.0) for part in reversed(parts)]
    assert results[:-1] == [None] * (count - 1)
    assert results[-1] == frame
    assert reassembler.pending == 0


def test_a_frame_that_needs_more_than_8_fragments_is_not_split() -> None:
    assert fragment_frame(frame_of(9018), 1, 1000) is None


def make(frame_id: int, index: int, count: int, data: bytes) -> bytes:
    return bytes([OVERLAY_FRAGMENT, frame_id >> 8, frame_id & 0xFF, index << 4 | count]) + data


@pytest.mark.parametrize(
    "second",
    [
        make(7, 1, 3, bytes(100)),  # another count
        make(7, 0, 2, bytes([1]) * 100),  # the same index, other bytes
        make(7, 1, 2, bytes(101)),  # the last longer than the others
        make(7, 2, 2, bytes(10)),  # an index beyond the count
        make(7, 0, 9, bytes(10)),  # a count beyond 8
        make(7, 0, 1, bytes(10)),  # a count of 1
        make(7, 0, 2, bytes(2000)),  # longer than any frame
    ],
)
def test_a_fragment_that_disagrees_drops_its_frame(second: bytes) -> None:
    reassembler = Reassembler(MAX_FRAME)
    assert reassembler.add(make(7, 0, 2, bytes(100)), 0.0) is None
    with pytest.raises(FragmentError):
        reassembler.add(second, 0.0)
    # the frame is gone: its last part alone completes nothing
    assert reassembler.add(make(7, 1, 2, bytes(50)), 0.0) is None


def test_a_datagram_too_short_to_be_a_fragment_is_an_error() -> None:
    for short in (b"", bytes([OVERLAY_FRAGMENT, 0, 7]), make(1, 0, 2, b"")):
        with pytest.raises(FragmentError):
            Reassembler(MAX_FRAME).add(short, 0.0)


def test_a_duplicate_with_the_same_bytes_is_harmless() -> None:
    reassembler = Reassembler(MAX_FRAME)
    first = make(1, 0, 2, b"a" * 40)
    assert reassembler.add(first, 0.0) is None
    assert reassembler.add(first, 0.0) is None
    assert reassembler.add(make(1, 1, 2, b"b" * 10), 0.0) == b"a" * 40 + b"b" * 10


def test_endless_first_fragments_cost_a_fixed_amount() -> None:
    reassembler = Reassembler(MAX_FRAME)
    for frame_id in range(5000):
        reassembler.add(make(frame_id % 65536, 0, 8, bytes(180)), frame_id * 1e-5)
    assert reassembler.pending == 32
    assert reassembler.timeouts == 5000 - 32


def test_an_incomplete_frame_times_out_after_200_ms() -> None:
    reassembler = Reassembler(MAX_FRAME)
    reassembler.add(make(1, 0, 2, bytes(100)), 0.0)
    assert reassembler.add(make(2, 0, 2, bytes(100)), 0.199) is None
    assert reassembler.timeouts == 0
    assert reassembler.add(make(1, 1, 2, bytes(10)), 0.2) is None  # too late: frame 1 is gone
    assert reassembler.timeouts == 1
    assert reassembler.pending == 2  # frame 2, and frame 1's late part starting anew


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(14, MAX_FRAME), min_size=1, max_size=6),
    st.integers(600, 1500),
    st.randoms(use_true_random=False),
    st.lists(st.binary(max_size=40), max_size=10),
)
def test_any_sequence_of_fragments_yields_sent_frames_or_errors(
    sizes: list[int], budget: int, rng: random.Random, junk: list[bytes]
) -> None:
    sent = {}
    datagrams: list[bytes] = []
    for frame_id, size in enumerate(sizes):
        frame = frame_of(size, frame_id)
        parts = fragment_frame(frame, frame_id, budget)
        if parts is None:
            continue
        sent[frame] = frame_id
        datagrams.extend(parts)
    datagrams.extend(bytes([OVERLAY_FRAGMENT]) + j for j in junk)
    rng.shuffle(datagrams)
    reassembler = Reassembler(MAX_FRAME)
    for datagram in datagrams:
        try:
            frame = reassembler.add(datagram, 0.0)
        except FragmentError:
            continue
        if frame is not None:
            assert frame in sent
        assert reassembler.pending <= 32
    assert MAX_FRAGMENTS == 8

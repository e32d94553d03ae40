"""Token buckets on a fake clock: start full, refill with time, cap at the burst."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.relay.ratelimit import TokenBucket


def test_starts_full_and_allows_exactly_the_burst() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=5)
    assert [bucket.take(100.0) for _ in range(6)] == [True] * 5 + [False]


def test_refills_at_the_rate() -> None:
    # binary fractions of a second keep the arithmetic exact
    bucket = TokenBucket(rate_per_s=4, burst=5)
    for _ in range(5):
        assert bucket.take(0.0)
    assert not bucket.take(0.125)  # half a token earned
    assert bucket.take(0.25)  # one token
    assert not bucket.take(0.25)
    assert bucket.take(0.75, amount=2.0)
    assert not bucket.take(0.75)


def test_refill_is_capped_at_the_burst() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=5)
    bucket.take(0.0, amount=5.0)
    assert bucket.peek(3600.0) == 5
    assert [bucket.take(3600.0) for _ in range(6)] == [True] * 5 + [False]


def test_a_refused_take_takes_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=10)
    assert bucket.take(0.0, amount=7.0)
    assert not bucket.take(0.0, amount=4.0)
    assert bucket.peek(0.0) == 3
    assert bucket.take(0.0, amount=3.0)


def test_more_than_the_burst_never_passes() -> None:
    bucket = TokenBucket(rate_per_s=1000, burst=100)
    assert not bucket.take(0.0, amount=101)
    assert not bucket.take(1e6, amount=101)
    assert bucket.take(1e6, amount=100)


def test_would_allow_and_consume_for_two_buckets() -> None:
    frames = TokenBucket(rate_per_s=1, burst=1)
    data = TokenBucket(rate_per_s=100, burst=1000)
    assert frames.would_allow(0.0)
    assert not data.would_allow(0.0, 1500)
    # refused by the second bucket: neither is charged
    assert frames.peek(0.0) == 1
    assert data.peek(0.0) == 1000
    assert data.would_allow(0.0, 600)
    frames.consume()
    data.consume(600)
    assert frames.peek(0.0) == 0
    assert data.peek(0.0) == 400


def test_a_clock_going_backwards_earns_nothing() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=5)
    bucket.take(10.0, amount=5.0)
    assert not bucket.take(5.0)
    assert bucket.peek(5.0) == 0
    # counted from 10.0, the latest time seen
    assert bucket.peek(10.2) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("rate_per_s", "burst"),
    [(0, 1), (-1, 1), (math.nan, 1), (math.inf, 1), (1, 0), (1, -5), (1, math.nan), (1, math.inf)],
)
def test_rejects_impossible_settings(rate_per_s: float, burst: float) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate_per_s, burst)


@given(
    rate_per_s=st.floats(0.001, 1e9),
    burst=st.floats(1.0, 1e9),
    steps=st.lists(st.tuples(st.floats(0, 100), st.floats(0, 2e9)), max_size=50),
)
def test_level_stays_between_zero_and_the_burst(
    rate_per_s: float, burst: float, steps: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(rate_per_s, burst)
    now = 0.0
    for elapsed_s, amount in steps:
        now += elapsed_s
        before = bucket.peek(now)
        taken = bucket.take(now, amount)
        assert taken == (before >= amount)
        assert 0 <= bucket.peek(now) <= burst


def test_take_both_takes_from_both_or_from_neither() -> None:
    frames = TokenBucket(rate_per_s=1, burst=1)
    data = TokenBucket(rate_per_s=100, burst=1000)
    assert frames.take_both(data, 0.0, 1500) is data
    assert frames.peek(0.0) == 1
    assert data.peek(0.0) == 1000
    assert frames.take_both(data, 0.0, 600) is None
    assert frames.peek(0.0) == 0
    assert data.peek(0.0) == 400
    # both would refuse: the frames bucket is named, and the data bucket keeps its tokens
    assert frames.take_both(data, 0.0, 500) is frames
    assert data.peek(0.0) == 400
    assert frames.take_both(data, 1.0, 500) is None
    assert data.peek(1.0) == 0


@given(steps=st.lists(st.tuples(st.floats(0, 5), st.floats(0, 300)), min_size=1, max_size=40))
def test_take_both_agrees_with_would_allow_and_consume(
    steps: list[tuple[float, float]],
) -> None:
    frames, data = TokenBucket(4, 3), TokenBucket(100, 250)
    twin_frames, twin_data = TokenBucket(4, 3), TokenBucket(100, 250)
    now = 0.0
    for elapsed_s, amount in steps:
        now += elapsed_s
        refused = frames.take_both(data, now, amount)
        if not twin_frames.would_allow(now):
            assert refused is frames
        elif not twin_data.would_allow(now, amount):
            assert refused is data
        else:
            assert refused is None
            twin_frames.consume()
            twin_data.consume(amount)
        assert frames.peek(now) == twin_frames.peek(now)
        assert data.peek(now) == twin_data.peek(now)

"""Reconnect delays: growing, capped, jittered, never zero."""

from __future__ import annotations

import random

from lanparty.backoff import Backoff


def test_delays_grow_to_the_cap_and_reset() -> None:
    backoff = Backoff(initial_s=0.5, cap_s=8.0, rng=random.Random(7))
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(10)]
    delays = [backoff.next_delay_s() for _ in range(10)]
    assert all(0.25 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8.0
    backoff.reset()
    assert backoff.next_delay_s() <= 0.5


def test_jitter_spreads_many_endpoints() -> None:
    firsts = {Backoff(initial_s=1, cap_s=60, attempts=5).next_delay_s() for _ in range(50)}
    assert len(firsts) > 40

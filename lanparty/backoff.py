"""Capped exponential backoff with jitter, for reconnecting to the relay.

Sans-I/O: it only computes delays; the caller sleeps. Full jitter (a
uniform draw below the capped exponential) spreads the reconnects of many
endpoints after a relay restart.
"""

from __future__ import annotations

import random

import attrs


@attrs.define
class Backoff:
    initial_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    attempts: int = 0

    def next_delay_s(self) -> float:
        """The delay before the next attempt; grows until ``cap_s``."""
        ceiling = min(self.cap_s, self.initial_s * self.factor**self.attempts)
        self.attempts += 1
        # Never zero: a relay that refuses at once must not be hammered.
        return max(self.initial_s / 2, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        """After a connection that worked: start small again."""
        self.attempts = 0

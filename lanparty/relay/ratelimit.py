"""Token buckets for the relay's rate limits (PROTOCOL.md section 7).

A bucket holds up to ``burst`` tokens and gains ``rate_per_s`` tokens per
second; a frame passes when it can take its tokens (1 per frame for the
frames/s limits, its size in bytes for the bits/s limit). Time is passed in
(``now``, seconds on any monotonic clock), so tests drive a fake clock.

A frame may be subject to two buckets (frames/s and bytes/s). It must take
from both or from neither, so that a frame dropped by one limit does not
eat into the other: ``take_both`` does that (and ``take`` does it for one
bucket); ``would_allow`` and ``consume`` are its steps, for other pairs.
"""

from __future__ import annotations

import math


class TokenBucket:
    """``rate_per_s`` tokens per second, at most ``burst`` stored; starts full."""

    __slots__ = ("burst", "rate_per_s", "tokens", "updated_s")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise ValueError(f"a token bucket's rate must be a positive number, not {rate_per_s!r}")
        if not (math.isfinite(burst) and burst > 0):
            raise ValueError(f"a token bucket's burst must be a positive number, not {burst!r}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst
        # The first refill finds the bucket already full, whatever ``now`` is.
        self.updated_s = -math.inf

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if the bucket has them; False (taking nothing) otherwise.

        First adds the tokens earned since the last call (capped at
        ``burst``); a clock that goes backwards earns nothing (and is not
        remembered). This is the relay's per-frame call, hence one method
        holding all the arithmetic.
        """
        tokens = self.tokens
        elapsed_s = now - self.updated_s
        if elapsed_s > 0:
            self.updated_s = now
            tokens += elapsed_s * self.rate_per_s
            # Not min(): per frame, the builtin's call costs more than the rest of the refill.
            tokens = tokens if tokens < self.burst else self.burst
        if tokens >= amount:
            self.tokens = tokens - amount
            return True
        self.tokens = tokens
        return False

    def refill(self, now: float) -> float:
        """Add the tokens earned since the last call (capped at ``burst``); return the level."""
        self.take(now, 0.0)
        return self.tokens

    def peek(self, now: float) -> float:
        """The tokens available at ``now``."""
        return self.refill(now)

    def would_allow(self, now: float, amount: float = 1.0) -> bool:
        """Whether ``take(now, amount)`` would succeed; takes nothing."""
        return self.refill(now) >= amount

    def consume(self, amount: float = 1.0) -> None:
        """Take ``amount`` tokens that ``would_allow`` has just vouched for."""
        self.tokens -= amount

    def take_both(self, data: TokenBucket, now: float, amount: float) -> TokenBucket | None:
        """Take 1 token from this bucket and ``amount`` from ``data``, or nothing from either.

        Returns the bucket that refused (this one when both would), or None
        when the tokens were taken. ``take``'s arithmetic, written out for
        both buckets: the relay calls this per frame, once instead of twice.
        """
        tokens = self.tokens
        elapsed_s = now - self.updated_s
        if elapsed_s > 0:
            self.updated_s = now
            tokens += elapsed_s * self.rate_per_s
            tokens = tokens if tokens < self.burst else self.burst
        self.tokens = tokens
        data_tokens = data.tokens
        elapsed_s = now - data.updated_s
        if elapsed_s > 0:
            data.updated_s = now
            data_tokens += elapsed_s * data.rate_per_s
            data_tokens = data_tokens if data_tokens < data.burst else data.burst
        data.tokens = data_tokens
        if tokens < 1.0:
            return self
        if data_tokens < amount:
            return data
        self.tokens = tokens - 1.0
        data.tokens = data_tokens - amount
        return None

"""Traffic counters shared by every role.

``TrafficCounters`` is mutated on the hot path (plain int attributes, a
``Counter`` of drops); ``snapshot()`` freezes it for the ``stats`` message
and for logs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from lanparty.proto.drops import DropReason

__all__ = ["TrafficCounters", "TrafficSnapshot"]


@attrs.frozen(kw_only=True)
class TrafficSnapshot:
    """Counters at one instant; ``drops`` is sorted by reason and holds no zero counts."""

    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    drops: tuple[tuple[DropReason, int], ...] = ()

    @property
    def dropped_frames(self) -> int:
        return sum(count for _, count in self.drops)

    def log_fields(self) -> dict[str, Any]:
        """Flat fields for a log event, drops as ``{reason: count}``."""
        return {
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "drops": {str(reason): count for reason, count in self.drops},
        }


class TrafficCounters:
    """Frames and bytes one way and the other, and drops by reason (not thread-safe)."""

    __slots__ = ("drops", "rx_bytes", "rx_frames", "tx_bytes", "tx_frames")

    def __init__(self) -> None:
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.drops: Counter[DropReason] = Counter()

    def count_rx(self, size_bytes: int) -> None:
        self.rx_frames += 1
        self.rx_bytes += size_bytes

    def count_tx(self, size_bytes: int) -> None:
        self.tx_frames += 1
        self.tx_bytes += size_bytes

    def count_drop(self, reason: DropReason, n: int = 1) -> None:
        self.drops[reason] += n

    def snapshot(self) -> TrafficSnapshot:
        return TrafficSnapshot(
            rx_frames=self.rx_frames,
            rx_bytes=self.rx_bytes,
            tx_frames=self.tx_frames,
            tx_bytes=self.tx_bytes,
            drops=tuple(sorted((reason, count) for reason, count in self.drops.items() if count)),
        )

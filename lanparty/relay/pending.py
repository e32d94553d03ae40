"""Connections waiting for their hello: who gets a slot when the table is full.

A handshake costs an attacker little more than it costs us, and a connection
that never says hello holds a slot for ``hello_timeout_s``. A per-source cap
(an IPv4 address or an IPv6 /64) alone lets a host with a /56 (256 /64s)
fill the whole table and lock every player out. So when the table is full,
a newcomer takes the slot of the oldest connection of the source holding the
most slots, unless its own source holds as many: whoever spreads over more
prefixes still loses its oldest slot first, and a player's connection, whose
hello follows the handshake within a round trip, is the newest in the table.

Sans-I/O: the relay cancels what ``add`` evicts.
"""

from __future__ import annotations

import itertools
from typing import Generic, TypeVar

from lanparty.transport.admission import SourceKey

T = TypeVar("T")


class PendingHellos(Generic[T]):
    """At most ``limit`` waiting connections, at most ``per_source_limit`` from one source."""

    def __init__(self, limit: int, per_source_limit: int) -> None:
        if limit < 1 or per_source_limit < 1:
            raise ValueError("the pending-hello limits must be at least 1")
        self.limit = limit
        self.per_source_limit = per_source_limit
        self._by_source: dict[SourceKey, list[tuple[int, T]]] = {}
        self._total = 0
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return self._total

    def held_by(self, source: SourceKey) -> int:
        return len(self._by_source.get(source, ()))

    def add(self, source: SourceKey, item: T) -> tuple[bool, T | None]:
        """Try to give ``item`` a slot: (whether it got one, what it evicted)."""
        held = self.held_by(source)
        if held >= self.per_source_limit:
            return False, None
        evicted: T | None = None
        if self._total >= self.limit:
            greediest = max(len(waiting) for waiting in self._by_source.values())
            if held >= greediest:
                return False, None
            oldest_source = min(
                (s for s, waiting in self._by_source.items() if len(waiting) == greediest),
                key=lambda s: self._by_source[s][0][0],
            )
            evicted = self._by_source[oldest_source][0][1]
            self.remove(oldest_source, evicted)
        self._by_source.setdefault(source, []).append((next(self._sequence), item))
        self._total += 1
        return True, evicted

    def remove(self, source: SourceKey, item: T) -> None:
        """Give ``item``'s slot back (nothing if it holds none, e.g. it was evicted)."""
        waiting = self._by_source.get(source)
        if waiting is None:
            return
        for index, (_, held) in enumerate(waiting):
            if held is item:
                del waiting[index]
                self._total -= 1
                if not waiting:
                    del self._by_source[source]
                return

"""The pump's fairness between connections, with stand-ins and no sockets."""

from __future__ import annotations

from typing import Any, cast

from lanparty.transport import TransportSettings
from lanparty.transport.endpoint import (
    MAX_CONNECTION_BACKLOG,
    MAX_FEED_SHARE,
    MIN_FEED_SHARE,
    Endpoint,
)
from lanparty.transport.udp import RECEIVE_BATCH_LIMIT, Address, Datagram

PEER: Address = ("192.0.2.1", 1)


class FakeConnection:
    """Records what the pump feeds it."""

    def __init__(self) -> None:
        self.terminated = False
        self.fed: list[int] = []

    def receive_udp(self, datagrams: list[Datagram], now: float) -> None:
        self.fed.append(len(datagrams))


def endpoint_with(routes: dict[bytes, FakeConnection]) -> Endpoint:
    endpoint = Endpoint(cast(Any, None), TransportSettings())

    def route(data: bytes, address: Address, now: float) -> Any:
        return routes.get(data[:1])

    endpoint._route = route  # type: ignore[method-assign]
    return endpoint


def datagrams(tag: bytes, count: int) -> list[Datagram]:
    return [(tag + bytes(20), PEER) for _ in range(count)]


def test_one_busy_connection_gets_an_even_share_and_the_others_all_theirs() -> None:
    busy, quiet, other = FakeConnection(), FakeConnection(), FakeConnection()
    endpoint = endpoint_with({b"b": busy, b"q": quiet, b"o": other})
    batch = datagrams(b"b", 250) + datagrams(b"q", 3) + datagrams(b"o", 3)
    endpoint._demux(batch, now=0.0)
    touched: dict[Any, None] = {}
    endpoint._feed(0.0, touched)
    share = 256 // 3 + 1
    assert busy.fed == [share]
    assert quiet.fed == [3]
    assert other.fed == [3]
    assert set(touched) == {busy, quiet, other}
    # The rest waits for the next round, which the pump starts at once.
    assert len(endpoint._backlog[cast(Any, busy)]) == 250 - share
    endpoint._feed(0.0, {})
    assert busy.fed == [share, MAX_FEED_SHARE]  # alone now: as much as a round takes
    endpoint._feed(0.0, {})
    assert busy.fed == [share, MAX_FEED_SHARE, 250 - share - MAX_FEED_SHARE]
    assert not endpoint._backlog


def test_a_round_feeds_a_connection_at_most_the_largest_share_and_loses_nothing() -> None:
    lone = FakeConnection()
    endpoint = endpoint_with({b"l": lone})
    # One read with GRO can bring far more than RECEIVE_BATCH_LIMIT.
    endpoint._demux(datagrams(b"l", 6 * RECEIVE_BATCH_LIMIT), now=0.0)
    rounds = 0
    while endpoint._backlog:
        endpoint._feed(0.0, {})
        rounds += 1
    assert lone.fed == [MAX_FEED_SHARE] * rounds
    assert sum(lone.fed) == 6 * RECEIVE_BATCH_LIMIT
    assert endpoint.counters.receive_backlog_dropped == 0
    first, second = FakeConnection(), FakeConnection()
    endpoint = endpoint_with({b"1": first, b"2": second})
    endpoint._demux(datagrams(b"1", 100) + datagrams(b"2", 100), now=0.0)
    endpoint._feed(0.0, {})
    assert first.fed == second.fed == [100]


def test_many_connections_each_get_at_least_the_minimum_share() -> None:
    connections = {bytes([index]): FakeConnection() for index in range(64)}
    endpoint = endpoint_with(connections)
    for tag in connections:
        endpoint._demux(datagrams(tag, 1 if tag != b"\x00" else 40), now=0.0)
    endpoint._feed(0.0, {})
    assert connections[b"\x00"].fed == [MIN_FEED_SHARE]
    assert all(c.fed == [1] for tag, c in connections.items() if tag != b"\x00")


def test_a_full_backlog_drops_the_newest_and_counts_them() -> None:
    busy = FakeConnection()
    endpoint = endpoint_with({b"b": busy})
    endpoint._demux(datagrams(b"b", MAX_CONNECTION_BACKLOG + 10), now=0.0)
    assert len(endpoint._backlog[cast(Any, busy)]) == MAX_CONNECTION_BACKLOG
    assert endpoint.counters.receive_backlog_dropped == 10


def test_a_terminated_connection_is_not_fed() -> None:
    gone = FakeConnection()
    endpoint = endpoint_with({b"g": gone})
    endpoint._demux(datagrams(b"g", 5), now=0.0)
    gone.terminated = True
    endpoint._feed(0.0, {})
    assert gone.fed == []
    assert not endpoint._backlog


class TimedConnection(FakeConnection):
    """A stand-in whose deadline the test moves."""

    def __init__(self, at: float | None) -> None:
        super().__init__()
        self.at = at
        self.timers_handled: list[float] = []

    def timer_at(self) -> float | None:
        return self.at

    def handle_timer(self, now: float) -> None:
        self.timers_handled.append(now)


def test_a_deadline_that_moved_later_does_not_wake_the_pump() -> None:
    endpoint = endpoint_with({})
    moved, kept = TimedConnection(1.0), TimedConnection(5.0)
    endpoint._schedule(cast(Any, moved))
    endpoint._schedule(cast(Any, kept))
    assert endpoint._wake_at == 1.0
    moved.at = 3.0  # e.g. the ACK it waited to send went out with a packet
    endpoint._schedule(cast(Any, moved))  # as after every call into a connection
    assert endpoint._wake_at == 1.0  # the earlier entry is still there...
    endpoint._drop_stale_timers()  # ...until the pump is about to sleep
    assert endpoint._wake_at == 3.0
    moved.at = None
    endpoint._schedule(cast(Any, moved))
    endpoint._drop_stale_timers()
    assert endpoint._wake_at == 5.0
    kept.at = None
    endpoint._schedule(cast(Any, kept))
    endpoint._drop_stale_timers()
    assert endpoint._wake_at == float("inf")
    assert not endpoint._timers


def test_a_deadline_that_moved_earlier_is_kept_and_fires() -> None:
    endpoint = endpoint_with({})
    connection = TimedConnection(5.0)
    endpoint._schedule(cast(Any, connection))
    connection.at = 2.0
    endpoint._schedule(cast(Any, connection))
    endpoint._drop_stale_timers()
    assert endpoint._wake_at == 2.0
    touched: dict[Any, None] = {}
    endpoint._fire_timers(2.0, touched)
    assert connection.timers_handled == [2.0]
    assert set(touched) == {connection}


def test_deadlines_that_keep_moving_earlier_do_not_grow_the_heap() -> None:
    endpoint = endpoint_with({})
    connection = TimedConnection(10.0)
    endpoint._schedule(cast(Any, connection))
    # A keep-alive 10 s away, then a delayed ACK before it, packet after packet.
    for packet in range(10_000):
        connection.at = 10.0 - packet * 0.0001
        endpoint._schedule(cast(Any, connection))
    assert len(endpoint._timers) <= 2 * 1 + 64 + 1
    endpoint._drop_stale_timers()
    assert endpoint._wake_at == connection.at
    touched: dict[Any, None] = {}
    endpoint._fire_timers(connection.at, touched)
    assert connection.timers_handled == [connection.at]

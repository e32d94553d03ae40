"""``SessionSupervisor`` against a scripted relay: each connect yields the next scripted
session or raises the next scripted error; the mock clock jumps over the backoff."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import pytest
import structlog
import trio
import trio.testing

from lanparty.backoff import Backoff
from lanparty.ctrl import DisconnectReason, RejectCode
from lanparty.endpoint.session import EvictedError, RejectedError, Session
from lanparty.endpoint.supervisor import (
    DeviceFailed,
    Evicted,
    SessionEnd,
    SessionLost,
    SessionSupervisor,
    session_end_of,
)
from lanparty.errors import HostNetworkError, ProtocolError, TransportError
from lanparty.obs import events


class Ceiling(random.Random):
    """Jitter that always draws the ceiling: the delays are the backoff's bounds."""

    def uniform(self, a: float, b: float) -> float:
        return b


class FakeSession:
    def __init__(self, name: str) -> None:
        self.name = name
        self.left = False


class ScriptedRelay:
    """Each connect takes the next step: a session to admit, or an error to raise."""

    def __init__(self, *steps: FakeSession | Exception) -> None:
        self.steps = list(steps)
        self.connected_at: list[float] = []

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[Session]:
        await trio.lowlevel.checkpoint()
        self.connected_at.append(trio.current_time())
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        try:
            yield cast(Session, step)
        finally:
            step.left = True

    def connect(self) -> AbstractAsyncContextManager[Session]:
        return self._connect()


def supervisor(relay: ScriptedRelay) -> SessionSupervisor:
    return SessionSupervisor(
        relay.connect,
        Backoff(initial_s=1.0, cap_s=30.0, rng=Ceiling()),
        room="Saturday LAN",
        log=structlog.get_logger(component="test"),
    )


def ending(*ends: SessionEnd) -> tuple[list[Any], Callable[[Session], Any]]:
    """A ``run_session`` that ends the sessions it is given with ``ends``, in turn."""
    ran: list[Any] = []
    remaining = list(ends)

    async def run_session(session: Session) -> SessionEnd:
        await trio.lowlevel.checkpoint()
        ran.append(session)
        return remaining.pop(0)

    return ran, run_session


def refused(code: RejectCode) -> RejectedError:
    return RejectedError(code, "no")


def evicted() -> EvictedError:
    return EvictedError(DisconnectReason.REPLACED, "another one took this one's place")


async def test_after_a_loss_it_reconnects_with_growing_delays_reset_by_a_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first, second = FakeSession("first"), FakeSession("second")
    relay = ScriptedRelay(
        TransportError("no answer"),
        ProtocolError("garbage"),
        first,
        refused(RejectCode.ROOM_FULL),
        TransportError("no answer"),
        second,
        refused(RejectCode.NOT_AUTHORIZED),
    )
    ran, run_session = ending(SessionLost("relay gone"), SessionLost("relay gone"))
    with structlog.testing.capture_logs() as logs, pytest.raises(RejectedError) as caught:
        await supervisor(relay).run(run_session)
    assert caught.value.code is RejectCode.NOT_AUTHORIZED
    # delays 1, 2, then the session: 1 (reset), 2, 4, then the session: 1
    assert relay.connected_at == [0, 1, 3, 4, 6, 10, 11]
    assert ran == [first, second]
    assert first.left
    assert second.left
    reasons = [log["reason"] for log in logs if log["event"] == events.SESSION_RECONNECTING]
    assert reasons[:3] == ["no answer", "garbage", "relay gone"]
    assert "room_full" in reasons[3]


async def test_a_permanent_reject_ends_it_at_once(autojump_clock: trio.testing.MockClock) -> None:
    relay = ScriptedRelay(refused(RejectCode.DUPLICATE_MAC), FakeSession("never"))
    _, run_session = ending()
    with pytest.raises(RejectedError) as caught:
        await supervisor(relay).run(run_session)
    assert caught.value.code is RejectCode.DUPLICATE_MAC
    assert len(relay.steps) == 1


async def test_while_the_room_is_not_open_it_waits_for_the_gateway(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session = FakeSession("admitted")
    relay = ScriptedRelay(refused(RejectCode.ROOM_NOT_OPEN), refused(RejectCode.ROOM_NOT_OPEN))
    relay.steps.append(session)
    ran, run_session = ending(Evicted(evicted()))
    with structlog.testing.capture_logs() as logs, pytest.raises(EvictedError):
        await supervisor(relay).run(run_session)
    assert relay.connected_at == [0, 1, 3]
    waits = [log for log in logs if log["event"] == events.WAITING_FOR_GATEWAY]
    assert [(w["room"], w["in_s"]) for w in waits] == [("Saturday LAN", 1.0), ("Saturday LAN", 2.0)]
    assert not [log for log in logs if log["event"] == events.SESSION_RECONNECTING]
    assert ran == [session]


@pytest.mark.parametrize(
    "end",
    [Evicted(evicted()), DeviceFailed(HostNetworkError("the TAP went away"))],
    ids=["evicted", "device failed"],
)
async def test_an_eviction_or_a_device_failure_ends_it_with_the_error(
    end: Evicted | DeviceFailed, autojump_clock: trio.testing.MockClock
) -> None:
    session = FakeSession("only")
    relay = ScriptedRelay(session, FakeSession("never"))
    _, run_session = ending(end)
    with pytest.raises(type(end.error)) as caught:
        await supervisor(relay).run(run_session)
    assert caught.value is end.error
    assert session.left
    assert len(relay.steps) == 1  # no reconnect


async def test_cancelled_it_leaves_the_session(autojump_clock: trio.testing.MockClock) -> None:
    session = FakeSession("carrying")
    relay = ScriptedRelay(session)
    running = trio.Event()

    async def run_session(session: Session) -> SessionEnd:
        running.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor(relay).run, run_session)
        await running.wait()
        assert not session.left
        nursery.cancel_scope.cancel()
    assert session.left


async def test_the_first_session_is_handed_over_then_run_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The client's way: the first admitted session (the room MTU) before the TAP exists,
    then supervision from that session on."""
    first, second = FakeSession("first"), FakeSession("second")
    relay = ScriptedRelay(TransportError("no answer"), first, second)
    ran, run_session = ending(SessionLost("relay gone"), Evicted(evicted()))
    sessions = supervisor(relay)
    handed_over: list[Session] = []

    async def client() -> None:
        async with sessions.admitted() as admitted:
            handed_over.append(admitted)
            assert relay.connected_at == [0, 1]
            assert not first.left
            await sessions.run(run_session, first=admitted)

    with pytest.raises(EvictedError):
        await client()
    assert handed_over == [first]
    assert ran == [first, second]
    assert relay.connected_at == [0, 1, 2]  # reset by the first session: 1 s after its loss
    assert first.left
    assert second.left


def test_the_end_of_a_session_is_typed_from_its_error() -> None:
    error = evicted()
    assert session_end_of(error) == Evicted(error)
    gone = HostNetworkError("the interface went away")
    assert session_end_of(gone) == DeviceFailed(gone)
    assert session_end_of(TransportError("idle timeout")) == SessionLost("idle timeout")
    assert session_end_of(ProtocolError("garbage")) == SessionLost("garbage")


async def test_the_first_session_is_left_once_it_is_lost_not_when_the_caller_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The client keeps the TAP for its whole run; the first session's connection must not
    stay open (socket, pump) behind the sessions that follow it."""
    first, second = FakeSession("first"), FakeSession("second")
    relay = ScriptedRelay(first, second)
    left_before_second: list[bool] = []
    remaining: list[SessionEnd] = [SessionLost("relay gone"), Evicted(evicted())]

    async def run_session(session: Session) -> SessionEnd:
        if session is cast(Session, second):
            left_before_second.append(first.left)
        await trio.lowlevel.checkpoint()
        return remaining.pop(0)

    sessions = supervisor(relay)

    async def client() -> None:
        async with contextlib.AsyncExitStack() as first_stack:
            admitted = await first_stack.enter_async_context(sessions.admitted())
            await sessions.run(run_session, first=admitted, leave_first=first_stack.aclose)

    with pytest.raises(EvictedError):
        await client()
    assert left_before_second == [True]
    assert second.left


async def test_leaving_a_lost_first_session_that_fails_still_reconnects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first, second = FakeSession("first"), FakeSession("second")
    relay = ScriptedRelay(second)
    ran, run_session = ending(SessionLost("relay gone"), Evicted(evicted()))

    async def leave_fails() -> None:
        raise TransportError("the connection is already closed")

    with pytest.raises(EvictedError):
        await supervisor(relay).run(
            run_session, first=cast(Session, first), leave_first=leave_fails
        )
    assert ran == [first, second]

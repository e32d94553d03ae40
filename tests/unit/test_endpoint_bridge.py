"""``run_device_bridge`` with a fake device and a fake session: frames both ways, and why
the session ended when the device, the relay events or another task end it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import cast

import pytest
import trio
import trio.testing

from lanparty.ctrl import DisconnectReason
from lanparty.endpoint.bridge import run_device_bridge
from lanparty.endpoint.session import EvictedError, Session
from lanparty.endpoint.supervisor import DeviceFailed, Evicted, SessionEnd, SessionLost
from lanparty.errors import HostNetworkError, LanpartyError, TransportError

Handler = Callable[[list[bytes]], None]


class FakeSession:
    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []
        self.handler: Handler | None = None

    def send_frames(self, frames: list[bytes]) -> int:
        self.sent.append(frames)
        return len(frames)

    def deliver_frames_to(self, handler: Handler | None) -> None:
        self.handler = handler

    def pump_delivers(self, frames: list[bytes]) -> None:
        """What the transport's pump does with a wake-up's frames."""
        assert self.handler is not None
        self.handler(frames)


class FakeDevice:
    def __init__(self) -> None:
        self.to_relay, self._from_device = trio.open_memory_channel[list[bytes]](10)
        self.written: list[list[bytes]] = []
        self.write_error: LanpartyError | None = None
        self.read_error: LanpartyError | None = None

    async def read_for_relay(self) -> list[bytes]:
        frames = await self._from_device.receive()
        if self.read_error is not None:
            raise self.read_error
        return frames

    def write_from_relay(self, frames: list[bytes]) -> None:
        if self.write_error is not None:
            raise self.write_error
        self.written.append(frames)


class Relay:
    """The role's relay events: ends when the test says how."""

    def __init__(self) -> None:
        self.send, self._receive = trio.open_memory_channel[str | LanpartyError](1)

    async def relay_events(self) -> str:
        outcome = await self._receive.receive()
        if isinstance(outcome, LanpartyError):
            raise outcome
        return outcome


async def bridge(
    session: FakeSession,
    device: FakeDevice,
    relay: Relay,
    ends: list[SessionEnd],
    also: Sequence[Callable[[], Awaitable[object]]] = (),
) -> None:
    end = await run_device_bridge(cast(Session, session), device, relay.relay_events, also=also)
    ends.append(end)


async def test_frames_go_both_ways_until_the_relay_disconnects() -> None:
    session, device, relay, ends = FakeSession(), FakeDevice(), Relay(), list[SessionEnd]()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bridge, session, device, relay, ends)
        await trio.testing.wait_all_tasks_blocked()
        device.to_relay.send_nowait([b"a", b"b"])
        device.to_relay.send_nowait([])  # the role's checks kept none: nothing sent
        device.to_relay.send_nowait([b"c"])
        await trio.testing.wait_all_tasks_blocked()
        assert session.sent == [[b"a", b"b"], [b"c"]]
        session.pump_delivers([b"x"])
        assert device.written == [[b"x"]]
        relay.send.send_nowait("the relay disconnected us: bye")
    assert ends == [SessionLost("the relay disconnected us: bye")]
    assert session.handler is None  # back to receive_frames


async def test_a_device_failure_in_the_pump_ends_the_session_with_it() -> None:
    session, device, relay, ends = FakeSession(), FakeDevice(), Relay(), list[SessionEnd]()
    gone = HostNetworkError("the TAP went away")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bridge, session, device, relay, ends)
        await trio.testing.wait_all_tasks_blocked()
        device.write_error = gone
        session.pump_delivers([b"x"])  # raises nothing into the pump
        session.pump_delivers([b"y"])  # before the tasks have ended: not written
    assert ends == [DeviceFailed(gone)]
    assert session.handler is None


@pytest.mark.parametrize(
    ("error", "end"),
    [
        (TransportError("idle timeout"), SessionLost("idle timeout")),
        (HostNetworkError("interface down"), None),
    ],
    ids=["connection closed", "device gone"],
)
async def test_a_failing_read_ends_the_session(
    error: LanpartyError, end: SessionEnd | None
) -> None:
    session, device, relay, ends = FakeSession(), FakeDevice(), Relay(), list[SessionEnd]()
    device.read_error = error
    device.to_relay.send_nowait([b"a"])
    await bridge(session, device, relay, ends)
    assert ends == [end or DeviceFailed(error)]


async def test_an_eviction_ends_the_session_as_evicted() -> None:
    session, device, relay, ends = FakeSession(), FakeDevice(), Relay(), list[SessionEnd]()
    error = EvictedError(DisconnectReason.KEY_ROTATED, "ask for the new invite")
    relay.send.send_nowait(error)
    await bridge(session, device, relay, ends)
    assert ends == [Evicted(error)]


async def test_the_roles_other_tasks_end_with_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    session, device, relay, ends = FakeSession(), FakeDevice(), Relay(), list[SessionEnd]()
    cancelled = trio.Event()

    async def refresher() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async def finishes() -> str:
        await trio.sleep(1)
        return "the stats task ended"

    await bridge(session, device, relay, ends, also=[refresher, finishes])
    assert ends == [SessionLost("the stats task ended")]
    assert cancelled.is_set()


async def test_cancelled_it_gives_the_frames_back_to_the_session() -> None:
    session, device, relay, ends = FakeSession(), FakeDevice(), Relay(), list[SessionEnd]()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bridge, session, device, relay, ends)
        await trio.testing.wait_all_tasks_blocked()
        assert session.handler is not None
        nursery.cancel_scope.cancel()
    assert ends == []
    assert session.handler is None

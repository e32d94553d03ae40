"""One session bridged to a device: the gateway's LAN interface, the client's TAP.

run_device_bridge(session, device, relay_events, also=...)
├── device -> relay: ``carry_to_relay``, each batch the device hands over
│   sent with one flush
├── relay -> device: inside the transport's pump (``Session.deliver_frames_to``),
│   each wake-up's frames to ``device.write_from_relay`` (no task switch); a
│   device failure there ends the session's tasks
├── relay events: the role's loop over ``session.next_event()``
└── the role's other per-session tasks (the gateway's CAM refresher, stats)

The first of them to end says why the session ended (a ``SessionEnd``).
The role supplies the device's two directions, with its own checks and
counters inside: the gateway's ``GatewayBridge``, the client's counters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import NoReturn, Protocol

from lanparty.endpoint.session import Session
from lanparty.endpoint.supervisor import DeviceFailed, SessionEnd, SessionLost, session_end_of
from lanparty.errors import LanpartyError
from lanparty.tasks import TasksThatEndTogether, open_tasks_that_end_together


class BridgedDevice(Protocol):
    """A device's two directions, as the bridge uses them."""

    async def read_for_relay(self) -> list[bytes]:
        """Wait for the device's next frames for the relay ([] when the role's checks
        kept none). ``HostNetworkError`` when the device went away."""
        ...

    def write_from_relay(self, frames: list[bytes]) -> None:
        """Give the relay's frames to the device. Called inside the transport's pump: never
        waits. ``LanpartyError`` (``HostNetworkError``) when the device went away."""
        ...


async def carry_to_relay(device: BridgedDevice, session: Session) -> NoReturn:
    """The device -> relay direction: each batch the device hands over, sent with one flush."""
    read, send = device.read_for_relay, session.send_frames
    while True:
        frames = await read()
        if frames:
            send(frames)


async def run_device_bridge(
    session: Session,
    device: BridgedDevice,
    relay_events: Callable[[], Awaitable[str]],
    *,
    also: Iterable[Callable[[], Awaitable[object]]] = (),
) -> SessionEnd:
    """Bridge ``device`` and ``session`` until the session ends; return why.

    ``relay_events`` returns why the relay disconnected us (or raises
    ``EvictedError``); the tasks in ``also`` run alongside until the session ends.
    """

    async def device_to_relay() -> SessionEnd:
        await carry_to_relay(device, session)

    async def until_disconnected() -> SessionEnd:
        return SessionLost(await relay_events())

    try:
        async with open_tasks_that_end_together(session_end_of) as tasks:
            session.deliver_frames_to(_ending_on_failure(device.write_from_relay, tasks))
            tasks.start_soon(device_to_relay)
            tasks.start_soon(until_disconnected)
            for task in also:
                tasks.start_soon(_lost_when_done(task))
    finally:
        session.deliver_frames_to(None)
    return tasks.outcome or SessionLost("cancelled")


def _ending_on_failure(
    write: Callable[[list[bytes]], None], tasks: TasksThatEndTogether[SessionEnd]
) -> Callable[[list[bytes]], None]:
    """``write``, which ends the session's tasks when the device fails (in the pump: no
    task to raise in)."""

    def write_from_relay(frames: list[bytes]) -> None:
        if tasks.outcome is not None:
            return  # ended: the session's tasks are being cancelled
        try:
            write(frames)
        except LanpartyError as exc:  # the device went away
            tasks.end(DeviceFailed(exc))

    return write_from_relay


def _lost_when_done(task: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[SessionEnd]]:
    async def run() -> SessionEnd:
        return SessionLost(str(await task()))

    return run

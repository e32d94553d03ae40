"""Keeping a session with the relay: the gateway's and the client's supervision.

    supervisor = SessionSupervisor(connect, Backoff(), room="Saturday LAN")
    await supervisor.run(run_session)  # the gateway: until an error ends it

    async with supervisor.admitted() as first:  # the client: the room MTU before the TAP
        ...  # open the TAP with first.mtu
        await supervisor.run(run_session, first=first)

``run_session`` carries one session and returns why it ended, typed:
``SessionLost`` reconnects after a capped exponential backoff with jitter;
``Evicted`` (replaced, rotated invite key) and ``DeviceFailed`` (the TAP or
the LAN interface went away) end the supervision with their error, as does
a permanent ``RejectedError``. ``room_not_open`` waits for the gateway.

The client takes its first session through ``admitted`` rather than a
``task_status``: its TAP needs the first session's MTU, and the session
tasks that write the TAP must end before the TAP closes, so the supervision
runs inside the TAP's lifetime and the first session outside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import NoReturn

import attrs
import trio
from structlog.typing import FilteringBoundLogger

from lanparty.backoff import Backoff
from lanparty.ctrl import RejectCode
from lanparty.endpoint.session import EvictedError, RejectedError, Session
from lanparty.errors import HostNetworkError, LanpartyError, ProtocolError, TransportError
from lanparty.obs import events


@attrs.frozen
class SessionLost:
    """The session ended in a way a new one may mend (the relay went away, disconnected us)."""

    reason: str


@attrs.frozen
class Evicted:
    """The relay ended our place in the room for good (replaced, rotated invite key)."""

    error: EvictedError


@attrs.frozen
class DeviceFailed:
    """The device bridged into the session (the TAP, the LAN interface) went away."""

    error: LanpartyError


SessionEnd = SessionLost | Evicted | DeviceFailed


def session_end_of(error: LanpartyError) -> SessionEnd:
    """Why a session ended, from the error one of its tasks raised."""
    if isinstance(error, EvictedError):
        return Evicted(error)
    if isinstance(error, HostNetworkError):
        return DeviceFailed(error)
    return SessionLost(str(error))


Connect = Callable[[], AbstractAsyncContextManager[Session]]
RunSession = Callable[[Session], Awaitable[SessionEnd]]


@attrs.define
class SessionSupervisor:
    """Sessions with the relay, one after another, until one ends in a way no reconnect mends."""

    connect: Connect
    """Opens one session (``functools.partial(open_session, relay, ...)``)."""
    backoff: Backoff
    room: str
    """The room as the user knows it (for the log line while the gateway is away)."""
    log: FilteringBoundLogger
    """The role's logger (its lines say ``component=gateway`` or ``client``)."""

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[Session]:
        """The next session the relay admits: tries again, after a delay, until one is.

        Raises a permanent ``RejectedError``.
        """
        while True:
            stack = contextlib.AsyncExitStack()
            try:
                session = await stack.enter_async_context(self.connect())
            except RejectedError as exc:
                if exc.permanent:
                    raise
                if exc.code is RejectCode.ROOM_NOT_OPEN:
                    await self._wait_for_gateway()
                    continue
                await self._reconnect_later(str(exc))
                continue
            except (TransportError, ProtocolError) as exc:
                await self._reconnect_later(str(exc))
                continue
            async with stack:
                self.backoff.reset()
                yield session
            return

    async def run(
        self,
        run_session: RunSession,
        *,
        first: Session | None = None,
        leave_first: Callable[[], Awaitable[object]] | None = None,
    ) -> NoReturn:
        """Run ``run_session`` on ``first`` (if given), then on each new session, reconnecting
        after a loss. Raises what ended it: ``EvictedError``, a device's error, a permanent
        ``RejectedError``.

        ``leave_first`` closes the context ``first`` came from (its connection, its UDP
        socket and pump) once it is lost, as every later session is closed, rather than
        when the caller's context ends.
        """
        if first is not None:
            end = await run_session(first)
            if leave_first is not None:
                # Leaving a session already lost may fail: it is gone either way.
                with contextlib.suppress(TransportError, ProtocolError):
                    await leave_first()
            await self._after(end)
        while True:
            try:
                async with self.admitted() as session:
                    end = await run_session(session)
            except (TransportError, ProtocolError) as exc:  # leaving the session failed
                end = SessionLost(str(exc))
            await self._after(end)

    async def _after(self, end: SessionEnd) -> None:
        if not isinstance(end, SessionLost):
            raise end.error
        await self._reconnect_later(end.reason)

    async def _reconnect_later(self, reason: str) -> None:
        delay_s = self.backoff.next_delay_s()
        self.log.warning(events.SESSION_RECONNECTING, reason=reason, in_s=round(delay_s, 2))
        await trio.sleep(delay_s)

    async def _wait_for_gateway(self) -> None:
        delay_s = self.backoff.next_delay_s()
        self.log.warning(
            events.WAITING_FOR_GATEWAY,
            status="the party's gateway is not connected to the relay: waiting for it",
            room=self.room,
            in_s=round(delay_s, 2),
        )
        await trio.sleep(delay_s)

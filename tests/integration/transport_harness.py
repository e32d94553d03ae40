"""A QUIC server on loopback and the helpers the transport tests share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from lanparty.ctrl import Disconnect, Received, Stats
from lanparty.transport import (
    Connection,
    ConnectionClosedError,
    QuicServer,
    ServerIdentity,
    TransportSettings,
    Trust,
    open_connection,
    serve,
)

# The transport carries control messages without judging them; a disconnect
# is the one the relay side reads whose shape does not depend on the hello rules.
CONTROL_MESSAGE = Disconnect(reason="transport test")


async def round_trip(connection: Connection, message: Disconnect = CONTROL_MESSAGE) -> Stats:
    """Send a control message and return the server's ``stats`` answer."""
    CONTROL_LOG.clear()
    connection.send_control(message)
    with trio.fail_after(10):
        answer = await connection.receive_control()
    assert [message] == CONTROL_LOG
    assert isinstance(answer, Stats)
    return answer


Handler = Callable[[Connection], Awaitable[None]]


CONTROL_LOG: list[Received] = []


async def echo_handler(connection: Connection) -> None:
    """Echo datagrams; log each control message and answer it with ``stats``."""

    async def echo_control() -> None:
        while True:
            CONTROL_LOG.append(await connection.receive_control())
            connection.send_control(Stats(**connection.counters.snapshot().log_fields()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_control)
        while True:
            connection.send_datagrams(await connection.receive_datagrams())


async def wait_handler(connection: Connection) -> None:
    await connection.wait_closed()


@asynccontextmanager
async def running_server(
    identity: ServerIdentity,
    handler: Handler,
    settings: TransportSettings,
    host: str = "127.0.0.1",
) -> AsyncIterator[QuicServer]:
    async def guarded(connection: Connection) -> None:
        with contextlib.suppress(ConnectionClosedError):
            await handler(connection)

    async with trio.open_nursery() as nursery:
        server: QuicServer = await nursery.start(serve, host, 0, identity, guarded, settings)
        yield server
        nursery.cancel_scope.cancel()


def connect(
    server: QuicServer, trust: Trust, settings: TransportSettings, server_name: str | None = None
) -> contextlib.AbstractAsyncContextManager[Connection]:
    host, port = server.address[:2]
    return open_connection(host, port, trust, server_name=server_name, settings=settings)


async def wait_until(check: Callable[[], bool]) -> None:
    """Poll ``check()`` until it holds, at most 10 s (tests assert states, not durations)."""
    with trio.fail_after(10):
        while not check():
            await trio.sleep(0.01)

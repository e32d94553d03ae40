"""The QUIC server: one UDP socket, a handler task per established connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from lanparty.errors import LanpartyError, find_error
from lanparty.transport.certs import ServerIdentity
from lanparty.transport.connection import CLOSE_NORMAL, CLOSE_REFUSED, Connection
from lanparty.transport.endpoint import Endpoint
from lanparty.transport.settings import TransportSettings
from lanparty.transport.udp import Address, UdpSocket

log = structlog.get_logger(component="transport")

ConnectionHandler = Callable[[Connection], Awaitable[None]]


@attrs.frozen
class QuicServer:
    """What ``serve`` reports once it listens."""

    endpoint: Endpoint

    @property
    def address(self) -> Address:
        return self.endpoint.udp.local_address()

    @property
    def connections(self) -> frozenset[Connection]:
        return self.endpoint.connections


async def _run_handler(handler: ConnectionHandler, connection: Connection) -> None:
    """Run one connection's handler; its own failure closes only that connection.

    A ``LanpartyError`` is a failure the handler could name (the peer broke
    the protocol, the connection closed), alone or as every error of an
    exception group (a handler's nursery whose tasks all saw the close):
    logged, and the connection closed. Anything else is a bug and ends the
    server, rather than hide in a log.
    """
    try:
        await handler(connection)
    except* LanpartyError as group:
        error = find_error(group, LanpartyError)
        log.info("connection_handler_failed", peer=connection.peer_address, error=str(error))
        connection.close(CLOSE_REFUSED, str(error)[:200])
    finally:
        connection.close(CLOSE_NORMAL)


async def serve(
    host: str,
    port: int,
    identity: ServerIdentity,
    handler: ConnectionHandler,
    settings: TransportSettings | None = None,
    *,
    task_status: trio.TaskStatus[QuicServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host:port`` and run ``handler`` for each established connection.

    Started with ``nursery.start(serve, ...)``, reports a ``QuicServer``
    (with the bound address, useful for port 0). Runs until cancelled.
    """
    settings = settings or TransportSettings()
    udp = UdpSocket.bind(host, port, batch_io=settings.batch_io)
    endpoint: Endpoint | None = None
    try:
        async with trio.open_nursery() as nursery:

            def on_new_connection(connection: Connection) -> None:
                nursery.start_soon(_run_handler, handler, connection)

            endpoint = Endpoint(
                udp, settings, identity=identity, on_new_connection=on_new_connection
            )
            nursery.start_soon(endpoint.run)
            task_status.started(QuicServer(endpoint))
    finally:
        if endpoint is None:
            udp.close()
        else:
            endpoint.close()

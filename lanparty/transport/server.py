"""The QUIC server: one UDP socket, a handler task per established connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from lanparty.errors import LanpartyError
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
    try:
        await handler(connection)
    except LanpartyError as exc:
        log.info("connection_handler_failed", peer=connection.peer_address, error=str(exc))
        connection.close(CLOSE_REFUSED, str(exc)[:200])
    except Exception:
        # One peer's failure must not take the server down with it.
        log.exception("connection_handler_crashed", peer=connection.peer_address)
        connection.close(CLOSE_REFUSED, "internal error")
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
        udp.close()

"""The endpoint side: one connection to the relay, verified before use."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from lanparty.errors import ConfigError, LanpartyError, TransportError
from lanparty.transport.connection import CLOSE_NORMAL, CLOSE_REFUSED, Connection
from lanparty.transport.endpoint import Endpoint
from lanparty.transport.settings import TransportSettings
from lanparty.transport.trust import Trust, TrustError, verify_relay_chain
from lanparty.transport.udp import Address, UdpSocket

DEFAULT_SERVER_NAME = "lanparty-relay.local"


async def resolve(host: str, port: int) -> Address:
    """The first UDP address of ``host``; a name that does not resolve is a ConfigError."""
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ConfigError(f"cannot resolve the relay address {host!r}: {exc}") from exc
    if not infos:
        raise ConfigError(f"the relay address {host!r} has no IP address")
    return tuple(infos[0][4])


async def _establish(
    endpoint: Endpoint, address: Address, trust: Trust, server_name: str
) -> Connection:
    connection = endpoint.connect(address, server_name)
    with trio.move_on_after(endpoint.settings.handshake_timeout_s):
        await connection.wait_established()
        try:
            verify_relay_chain(trust, connection.peer_certificate_chain(), server_name)
        except TrustError:
            connection.close(CLOSE_REFUSED, "relay certificate not trusted")
            raise
        return connection
    connection.close(CLOSE_NORMAL, "handshake timeout")
    raise TransportError(
        f"no QUIC handshake with the relay at {address[0]} port {address[1]} within "
        f"{endpoint.settings.handshake_timeout_s:g} s (is the relay running, and UDP open?)"
    )


@asynccontextmanager
async def open_connection(
    host: str,
    port: int,
    trust: Trust,
    *,
    server_name: str | None = None,
    settings: TransportSettings | None = None,
) -> AsyncIterator[Connection]:
    """Connect to a relay and verify its certificate; close on exit.

    Errors (resolution, handshake, trust, and those of the ``async with``
    body) come out as themselves, not wrapped in an exception group.
    """
    settings = settings or TransportSettings()
    address = await resolve(host, port)
    bind_host = "::" if ":" in str(address[0]) else "0.0.0.0"
    udp = UdpSocket.bind(bind_host, 0, batch_io=settings.batch_io)
    endpoint = Endpoint(udp, settings)
    failure: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(endpoint.run)
            try:
                connection = await _establish(
                    endpoint, address, trust, server_name or DEFAULT_SERVER_NAME
                )
            except LanpartyError as exc:
                failure = exc
            else:
                try:
                    yield connection
                except Exception as exc:
                    failure = exc
                finally:
                    connection.close(CLOSE_NORMAL)
            nursery.cancel_scope.cancel()
    finally:
        endpoint.close()
    if failure is not None:
        raise failure

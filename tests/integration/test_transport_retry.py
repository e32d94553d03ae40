"""Address validation with Retry over loopback: real clients get through, replays do not."""

from __future__ import annotations

import socket

import pytest
import trio

from lanparty.transport import (
    QuicBackend,
    RetryPolicy,
    ServerIdentity,
    SpkiPin,
    TransportSettings,
)
from lanparty.transport.admission import InitialDrop
from tests.integration.transport_harness import (
    connect,
    echo_handler,
    round_trip,
    running_server,
    wait_handler,
    wait_until,
)
from tests.quic_initials import answer_retry, client_connection

BACKENDS = [QuicBackend.QH3, QuicBackend.AIOQUIC]


@pytest.mark.parametrize("client_backend", BACKENDS, ids=lambda b: f"client-{b}")
@pytest.mark.parametrize("server_backend", BACKENDS, ids=lambda b: f"server-{b}")
async def test_with_retry_always_a_real_client_still_connects(
    dev_identity: ServerIdentity, server_backend: QuicBackend, client_backend: QuicBackend
) -> None:
    server_settings = TransportSettings(backend=server_backend, retry=RetryPolicy.ALWAYS)
    client_settings = TransportSettings(backend=client_backend)
    async with (
        running_server(dev_identity, echo_handler, server_settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), client_settings) as connection,
    ):
        counters = server.endpoint.counters
        assert counters.retries_sent >= 1
        assert counters.tokens_refused == 0
        await round_trip(connection)
        assert connection.send_datagram(b"after a retry")
        with trio.fail_after(10):
            assert await connection.receive_datagrams() == [b"after a retry"]


async def test_an_aioquic_client_connects_to_a_qh3_server_through_one_retry(
    dev_identity: ServerIdentity,
) -> None:
    # retry=auto, far below the rate threshold: the Retry is for aioquic's
    # padded Initial only (lanparty/transport/admission.py).
    server_settings = TransportSettings(backend=QuicBackend.QH3)
    client_settings = TransportSettings(backend=QuicBackend.AIOQUIC, handshake_timeout_s=5)
    async with (
        running_server(dev_identity, echo_handler, server_settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), client_settings) as connection,
    ):
        assert server.endpoint.counters.retries_sent == 1
        await round_trip(connection)
    # A qh3 client gets no Retry from the same server.
    async with (
        running_server(dev_identity, echo_handler, server_settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), server_settings) as connection,
    ):
        assert server.endpoint.counters.retries_sent == 0
        await round_trip(connection)


async def _receive_retry(sock: trio.socket.SocketType) -> bytes:
    with trio.fail_after(10):
        while True:
            data = await sock.recv(65535)
            if data[0] & 0xF0 == 0xF0:  # long header, type Retry
                return data


@pytest.mark.parametrize("client_backend", BACKENDS, ids=str)
async def test_a_token_replayed_from_another_address_is_refused(
    dev_identity: ServerIdentity, client_backend: QuicBackend
) -> None:
    settings = TransportSettings(retry=RetryPolicy.ALWAYS)
    async with running_server(dev_identity, wait_handler, settings) as server:
        counters = server.endpoint.counters
        client = client_connection(client_backend)
        with (
            trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as owner,
            trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief,
        ):
            await owner.bind(("127.0.0.1", 0))
            await thief.bind(("127.0.0.1", 0))
            first_flight = [data for data, _ in client.datagrams_to_send(0.0)]
            await owner.sendto(first_flight[0], server.address)
            retry = await _receive_retry(owner)
            with_token = answer_retry(client, retry)
            for datagram in with_token:
                await thief.sendto(datagram, server.address)
            await wait_until(lambda: counters.tokens_refused == len(with_token))
            assert not server.connections
            assert server.endpoint.routed_connection_ids == 0
            # The same Initials from the address the token was made for: admitted.
            for datagram in with_token:
                await owner.sendto(datagram, server.address)
            await wait_until(lambda: len(server.connections) == 1)
            assert counters.tokens_refused == len(with_token)
            assert counters.initials_dropped[InitialDrop.UNDECRYPTABLE] == 0


async def test_an_expired_token_is_refused(dev_identity: ServerIdentity) -> None:
    settings = TransportSettings(retry=RetryPolicy.ALWAYS, retry_token_lifetime_s=0.2)
    async with running_server(dev_identity, wait_handler, settings) as server:
        client = client_connection(QuicBackend.QH3)
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            await sock.sendto(client.datagrams_to_send(0.0)[0][0], server.address)
            with_token = answer_retry(client, await _receive_retry(sock))
            await trio.sleep(0.5)
            await sock.sendto(with_token[0], server.address)
            counters = server.endpoint.counters
            await wait_until(lambda: counters.tokens_refused == 1)
            assert not server.connections

"""Real client Initials made in memory by either QUIC library, and junk ones.

A client connection of the library is started with no socket; its first
flight is what a real endpoint would send. ``answer_retry`` feeds it a
Retry and returns the Initials it sends back with the token.
"""

from __future__ import annotations

import os

from lanparty.transport import QuicBackend, TransportSettings
from lanparty.transport.backend import QuicEngine, load_library
from lanparty.transport.udp import Address

SERVER_ADDRESS: Address = ("127.0.0.1", 4433)


def client_connection(backend: QuicBackend, now: float = 0.0) -> QuicEngine:
    """A started client connection of ``backend``'s library (its Initial is queued)."""
    library = load_library(backend)
    connection = library.client_connection(
        TransportSettings(backend=backend), "lanparty-relay.local", connection_id_bytes=8
    )
    connection.connect(SERVER_ADDRESS, now)
    return connection


def first_flight(backend: QuicBackend, now: float = 0.0) -> list[bytes]:
    """The datagrams of a new client's first flight."""
    return [data for data, _ in client_connection(backend, now).datagrams_to_send(now)]


def answer_retry(connection: QuicEngine, retry_packet: bytes, now: float = 0.0) -> list[bytes]:
    """Feed the client a Retry; the datagrams it sends next (its Initials with the token)."""
    connection.receive_datagram(retry_packet, SERVER_ADDRESS, now)
    return [data for data, _ in connection.datagrams_to_send(now)]


def junk_initial(size: int = 1200) -> bytes:
    """A datagram shaped like a client Initial (v1, 8-byte IDs) whose payload is random."""
    header = b"\xc3" + (1).to_bytes(4, "big") + b"\x08" + os.urandom(8) + b"\x08" + os.urandom(8)
    header += b"\x00"  # no token
    remaining = size - len(header) - 2
    return header + (0x4000 | remaining).to_bytes(2, "big") + os.urandom(remaining)

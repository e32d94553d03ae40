"""QUIC transport on Trio around the sans-I/O connection of qh3 or aioquic.

The public surface: ``serve`` (relay side) and ``open_connection`` (endpoint
side), both giving ``Connection`` objects that carry Ethernet frames as
DATAGRAM frames and control messages on stream 0.
"""

from lanparty.transport.backend import QuicBackend
from lanparty.transport.certs import (
    ServerIdentity,
    load_certificate_file,
    load_or_create_dev_identity,
    load_server_identity,
    spki_pin,
)
from lanparty.transport.client import open_connection
from lanparty.transport.connection import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_REFUSED,
    CloseInfo,
    Connection,
    ConnectionClosedError,
)
from lanparty.transport.server import QuicServer, serve
from lanparty.transport.settings import RetryPolicy, TransportSettings
from lanparty.transport.trust import (
    PinnedCertificate,
    SpkiPin,
    SystemTrust,
    Trust,
    TrustError,
    verify_relay_chain,
)

__all__ = [
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_REFUSED",
    "CloseInfo",
    "Connection",
    "ConnectionClosedError",
    "PinnedCertificate",
    "QuicBackend",
    "QuicServer",
    "RetryPolicy",
    "ServerIdentity",
    "SpkiPin",
    "SystemTrust",
    "TransportSettings",
    "Trust",
    "TrustError",
    "load_certificate_file",
    "load_or_create_dev_identity",
    "load_server_identity",
    "open_connection",
    "serve",
    "spki_pin",
    "verify_relay_chain",
]

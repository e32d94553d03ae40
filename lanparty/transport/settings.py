"""Transport settings shared by the relay and the endpoints."""

from __future__ import annotations

import attrs

from lanparty import ALPN
from lanparty.transport.backend import QuicBackend

# 1452 bytes of QUIC packet fit a 1500-byte path over IPv6 (and IPv4 over
# PPPoE); with it an endpoint carries a 1389-byte IP MTU (PROTOCOL.md 4).
DEFAULT_MAX_UDP_PAYLOAD_BYTES = 1452
QUIC_MIN_UDP_PAYLOAD_BYTES = 1200


@attrs.frozen
class TransportSettings:
    backend: QuicBackend = QuicBackend.QH3
    idle_timeout_s: float = 30.0
    keepalive_interval_s: float = 10.0
    handshake_timeout_s: float = 10.0
    max_udp_payload_bytes: int = attrs.field(default=DEFAULT_MAX_UDP_PAYLOAD_BYTES)
    send_queue_frames: int = 256
    # Server side: connections still in their handshake, beyond which new
    # Initials are ignored (a flood of them must not grow memory without bound).
    max_pending_handshakes: int = 1024
    receive_queue_frames: int = 4096
    alpn: str = ALPN
    batch_io: bool = True

    @max_udp_payload_bytes.validator
    def _check_payload(self, _attribute: object, value: int) -> None:
        if not QUIC_MIN_UDP_PAYLOAD_BYTES <= value <= 65527:
            raise ValueError(f"max_udp_payload_bytes must be 1200..65527, not {value}")

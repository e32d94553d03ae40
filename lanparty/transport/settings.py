"""Transport settings shared by the relay and the endpoints."""

from __future__ import annotations

import enum

import attrs

from lanparty import ALPN
from lanparty.transport.backend import QuicBackend

# 1452 bytes of QUIC packet fit a 1500-byte path over IPv6 (and IPv4 over
# PPPoE); with it an endpoint carries a 1389-byte IP MTU (PROTOCOL.md 4).
DEFAULT_MAX_UDP_PAYLOAD_BYTES = 1452
QUIC_MIN_UDP_PAYLOAD_BYTES = 1200
# The max_ack_delay both libraries announce is 25 ms; their own delay (1 ms)
# and a late wake-up come on top of our wait.
MAX_ACK_WAIT_S = 0.02


class RetryPolicy(enum.StrEnum):
    """When a server answers a new client with a Retry (address validation, RFC 9000 8.1)."""

    # When new handshakes come faster than retry_above_handshakes_per_s.
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


@attrs.frozen
class TransportSettings:
    backend: QuicBackend = QuicBackend.QH3
    idle_timeout_s: float = 30.0
    keepalive_interval_s: float = 10.0
    # A client gives up connecting, and a server drops a handshake, after this.
    handshake_timeout_s: float = 10.0
    max_udp_payload_bytes: int = attrs.field(default=DEFAULT_MAX_UDP_PAYLOAD_BYTES)
    send_queue_frames: int = 256
    # Server side: connections still in their handshake; a new one beyond it
    # replaces the oldest (a flood of them must not grow memory without bound,
    # nor lock newcomers out for good).
    max_pending_handshakes: int = 1024
    # Server side: connections (handshaking or not) from one IPv4 address or
    # one IPv6 /64; a LAN party behind one NAT stays far below it.
    max_connections_per_source: int = 64
    retry: RetryPolicy = RetryPolicy.AUTO
    # With RetryPolicy.AUTO: new handshakes per second (and as a burst) before
    # new clients must prove their address with a Retry.
    retry_above_handshakes_per_s: float = 50.0
    retry_token_lifetime_s: float = 10.0
    receive_queue_frames: int = 4096
    # How much longer than the library's delayed-ACK timer (1 ms in qh3
    # 2.1.0) a lone ACK of DATAGRAM packets waits for a second packet: the
    # library acknowledges two packets at once, so at game and ping rates
    # (a packet every few ms up to 60 Hz) no timer wake-up sends a lone
    # ACK and half the ACK packets go. 1 + 18 ms leaves 6 ms for a late
    # wake-up under the max_ack_delay of 25 ms the libraries announce (RFC
    # 9000 13.2.1). qh3 shows only its earliest timer, so one behind the
    # ACK's (loss detection, pacing) may fire as late: another reason to
    # keep the wait short. qh3 only: aioquic does not say which timer is due.
    ack_wait_s: float = attrs.field(default=0.018)
    alpn: str = ALPN
    batch_io: bool = True

    @ack_wait_s.validator
    def _check_ack_wait(self, _attribute: object, value: float) -> None:
        if not 0.0 <= value <= MAX_ACK_WAIT_S:
            raise ValueError(f"ack_wait_s must be 0..{MAX_ACK_WAIT_S:g} s, not {value}")

    @max_udp_payload_bytes.validator
    def _check_payload(self, _attribute: object, value: int) -> None:
        if not QUIC_MIN_UDP_PAYLOAD_BYTES <= value <= 65527:
            raise ValueError(f"max_udp_payload_bytes must be 1200..65527, not {value}")

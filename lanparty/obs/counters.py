"""Traffic counters shared by every role, and the reasons a frame is dropped.

``TrafficCounters`` is mutated on the hot path (plain int attributes, a
``Counter`` of drops); ``snapshot()`` freezes it for the ``stats`` message
and for logs.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

import attrs


class DropReason(StrEnum):
    """Why a frame was not delivered; values are PROTOCOL.md's wire strings."""

    # forwarding and filters at the relay (PROTOCOL.md sections 5-8)
    MALFORMED = "malformed"
    SPOOFED_SOURCE = "spoofed_source"
    SOURCE_CONFLICT = "source_conflict"
    JUMBO = "jumbo"
    SWITCH_CONTROL = "switch_control"
    DHCP_SERVER = "dhcp_server"
    IPV6_RA = "ipv6_ra"
    SUSPICIOUS = "suspicious"
    RATE_LIMITED_BROADCAST = "rate_limited_broadcast"
    RATE_LIMITED_UNKNOWN_UNICAST = "rate_limited_unknown_unicast"
    RATE_LIMITED_TOTAL = "rate_limited_total"
    RATE_LIMITED_FRAMES = "rate_limited_frames"  # every datagram, before parsing (not contract)
    REFLECTION = "reflection"
    # the L2 guard (relay/guard.py)
    ARP_SPOOF = "arp_spoof"
    ND_SPOOF = "nd_spoof"
    DHCP_SPOOF = "dhcp_spoof"
    RATE_LIMITED_DHCP = "rate_limited_dhcp"
    VLAN_TAGGED = "vlan_tagged"
    ICMP_REDIRECT = "icmp_redirect"
    NO_GATEWAY = "no_gateway"  # to the LAN while the room's gateway is away (grace period)
    # fragments (PROTOCOL.md 11)
    FRAGMENT_INVALID = "fragment_invalid"
    FRAGMENT_TIMEOUT = "fragment_timeout"
    # transport
    OVERSIZE = "oversize"  # larger than the QUIC packet or the receiver's max_datagram
    SEND_QUEUE_FULL = "send_queue_full"
    RECEIVE_QUEUE_FULL = "receive_queue_full"
    NOT_ESTABLISHED = "not_established"  # sent before the handshake completed


@attrs.frozen(kw_only=True)
class TrafficSnapshot:
    """Counters at one instant; ``drops`` is sorted by reason and holds no zero counts."""

    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    drops: tuple[tuple[DropReason, int], ...] = ()

    @property
    def dropped_frames(self) -> int:
        return sum(count for _, count in self.drops)

    def log_fields(self) -> dict[str, Any]:
        """Flat fields for a log event, drops as ``{reason: count}``."""
        return {
            "rx_frames": self.rx_frames,
            "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames,
            "tx_bytes": self.tx_bytes,
            "drops": {str(reason): count for reason, count in self.drops},
        }


class TrafficCounters:
    """Frames and bytes one way and the other, and drops by reason (not thread-safe)."""

    __slots__ = ("drops", "rx_bytes", "rx_frames", "tx_bytes", "tx_frames")

    def __init__(self) -> None:
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.drops: Counter[DropReason] = Counter()

    def count_rx(self, size_bytes: int) -> None:
        self.rx_frames += 1
        self.rx_bytes += size_bytes

    def count_tx(self, size_bytes: int) -> None:
        self.tx_frames += 1
        self.tx_bytes += size_bytes

    def count_drop(self, reason: DropReason, n: int = 1) -> None:
        self.drops[reason] += n

    def snapshot(self) -> TrafficSnapshot:
        return TrafficSnapshot(
            rx_frames=self.rx_frames,
            rx_bytes=self.rx_bytes,
            tx_frames=self.tx_frames,
            tx_bytes=self.tx_bytes,
            drops=tuple(sorted((reason, count) for reason, count in self.drops.items() if count)),
        )

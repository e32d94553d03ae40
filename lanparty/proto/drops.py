"""Why a frame was not delivered: ``DropReason``, whose values are wire strings.

The values travel as the keys of the ``drops`` object of the ``stats``
control message (PROTOCOL.md 2), so they are part of the protocol; but
``Stats`` carries them as plain strings (an endpoint must accept reasons
a newer relay adds), while every producer of a reason is on the frame
path: the relay's switch, filters and L2 guard, the gateway's bridge, the
endpoint session and the transport. So the enum lives here, beside the
frame formats those modules already import, and ``lanparty.ctrl`` (which
depends on ``proto``, never the reverse) can use it too without a cycle.
"""

from __future__ import annotations

from enum import StrEnum


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

"""Room MTU arithmetic (PROTOCOL.md sections 4 and 11).

Three sizes, each in bytes:
- an endpoint's ``max_datagram``: the largest QUIC DATAGRAM payload it carries
  (the relay uses the smaller of what it declares and what its connection
  really carries);
- a room's ``mtu`` (IP MTU): the relay's ``--mtu`` (1500 by default), the same
  for every member; frames that do not fit one datagram of a member's budget
  travel to it in fragments (``lanparty.proto.fragments``);
- a room's ``max_frame``: the largest Ethernet frame (no FCS) with one 802.1Q tag.

A member is admitted when its budget is at least 600 bytes and the room's
largest frame fits in at most 8 fragments of it.
"""

from __future__ import annotations

import math

import attrs

from lanparty.errors import ConfigError
from lanparty.proto.ethernet import ETHERNET_HEADER_BYTES, VLAN_TAG_BYTES
from lanparty.proto.fragments import FRAGMENT_HEADER_BYTES, MAX_FRAGMENTS
from lanparty.proto.overlay import OVERLAY_HEADER_BYTES

# The IPv4 datagram size every host must accept (RFC 791): no room goes below it.
MIN_ROOM_MTU = 576
DEFAULT_RELAY_MTU = 1500
# A jumbo frame of 9000 bytes, tag and header included.
MAX_ROOM_MTU = 9000 - ETHERNET_HEADER_BYTES - VLAN_TAG_BYTES
# The smallest DATAGRAM budget a member may have (PROTOCOL.md 11).
MIN_MAX_DATAGRAM = 600

FRAME_OVERHEAD_BYTES = ETHERNET_HEADER_BYTES + VLAN_TAG_BYTES
DATAGRAM_OVERHEAD_BYTES = OVERLAY_HEADER_BYTES + FRAME_OVERHEAD_BYTES


def endpoint_capacity(max_datagram: int) -> int:
    """The IP MTU whose frames fit one datagram of ``max_datagram`` bytes, whole."""
    return max_datagram - DATAGRAM_OVERHEAD_BYTES


def max_frame(mtu: int) -> int:
    """The largest Ethernet frame (no FCS) a room with this IP MTU accepts."""
    return mtu + FRAME_OVERHEAD_BYTES


def required_max_datagram(mtu: int) -> int:
    """The smallest budget a member of a room with this MTU may have."""
    fragments_budget = math.ceil(max_frame(mtu) / MAX_FRAGMENTS) + FRAGMENT_HEADER_BYTES
    return max(MIN_MAX_DATAGRAM, fragments_budget)


@attrs.frozen
class MtuAdmission:
    """The MTU rule's verdict on one member; ``mtu_too_small`` names the budget it needs."""

    admitted: bool
    room_mtu: int
    required_max_datagram: int


def admit_mtu(max_datagram: int, *, relay_mtu: int) -> MtuAdmission:
    """Apply section 11's rule to a member with a budget of ``max_datagram``."""
    required = required_max_datagram(relay_mtu)
    return MtuAdmission(
        admitted=max_datagram >= required, room_mtu=relay_mtu, required_max_datagram=required
    )


def check_relay_mtu(relay_mtu: int) -> int:
    """Validate the relay's ``--mtu`` option; return it or raise ``ConfigError``."""
    if not MIN_ROOM_MTU <= relay_mtu <= MAX_ROOM_MTU:
        raise ConfigError(
            f"--mtu {relay_mtu} is out of range: use an IP MTU from {MIN_ROOM_MTU} "
            f"to {MAX_ROOM_MTU} (the default is {DEFAULT_RELAY_MTU})"
        )
    return relay_mtu

"""Room MTU arithmetic (PROTOCOL.md section 4).

Three sizes, each in bytes:
- an endpoint's ``max_datagram``: the largest QUIC DATAGRAM payload it carries;
- its capacity: the IP MTU that fits in such a datagram after the overlay
  header, an Ethernet header and room for one 802.1Q tag;
- a room's ``mtu`` (IP MTU) and ``max_frame`` (largest Ethernet frame, no FCS).
"""

from __future__ import annotations

import attrs

from lanparty.errors import ConfigError
from lanparty.proto.ethernet import ETHERNET_HEADER_BYTES, VLAN_TAG_BYTES
from lanparty.proto.overlay import OVERLAY_HEADER_BYTES

# The IPv4 datagram size every host must accept (RFC 791): no room goes below it.
MIN_ROOM_MTU = 576
DEFAULT_RELAY_MTU = 1400
# The largest IPv4 total length.
MAX_ROOM_MTU = 65535

FRAME_OVERHEAD_BYTES = ETHERNET_HEADER_BYTES + VLAN_TAG_BYTES
DATAGRAM_OVERHEAD_BYTES = OVERLAY_HEADER_BYTES + FRAME_OVERHEAD_BYTES


def endpoint_capacity(max_datagram: int) -> int:
    """The IP MTU an endpoint can carry with DATAGRAM payloads of ``max_datagram`` bytes."""
    return max_datagram - DATAGRAM_OVERHEAD_BYTES


def required_max_datagram(mtu: int) -> int:
    """The ``max_datagram`` an endpoint needs to carry an IP MTU of ``mtu``."""
    return mtu + DATAGRAM_OVERHEAD_BYTES


def room_mtu(relay_mtu: int, first_member_capacity: int) -> int:
    """The MTU a room is created with; fixed for the room's whole life."""
    return min(relay_mtu, first_member_capacity)


def max_frame(mtu: int) -> int:
    """The largest Ethernet frame (no FCS) a room with this IP MTU accepts."""
    return mtu + FRAME_OVERHEAD_BYTES


def minimum_capacity(current_room_mtu: int | None) -> int:
    """The smallest capacity admitted to a room (``None``: a room not created yet)."""
    if current_room_mtu is None:
        return MIN_ROOM_MTU
    return max(current_room_mtu, MIN_ROOM_MTU)


@attrs.frozen
class MtuAdmission:
    """The MTU rule's verdict on one ``hello``.

    When ``admitted`` is false the relay rejects with ``mtu_too_small`` and
    names ``required_max_datagram`` in the message.
    """

    admitted: bool
    # The room's MTU: the existing one, or the one a new room is created with.
    room_mtu: int
    # The smallest ``max_datagram`` this room admits.
    required_max_datagram: int


def admit_mtu(max_datagram: int, *, relay_mtu: int, current_room_mtu: int | None) -> MtuAdmission:
    """Apply section 4 to an endpoint joining a room (``None``: it creates the room)."""
    capacity = endpoint_capacity(max_datagram)
    needed_capacity = minimum_capacity(current_room_mtu)
    mtu = room_mtu(relay_mtu, capacity) if current_room_mtu is None else current_room_mtu
    return MtuAdmission(
        admitted=capacity >= needed_capacity,
        room_mtu=mtu,
        required_max_datagram=required_max_datagram(needed_capacity),
    )


def check_relay_mtu(relay_mtu: int) -> int:
    """Validate the relay's ``--mtu`` option; return it or raise ``ConfigError``."""
    if not MIN_ROOM_MTU <= relay_mtu <= MAX_ROOM_MTU:
        raise ConfigError(
            f"--mtu {relay_mtu} is out of range: use an IP MTU from {MIN_ROOM_MTU} "
            f"to {MAX_ROOM_MTU} (the default is {DEFAULT_RELAY_MTU})"
        )
    return relay_mtu

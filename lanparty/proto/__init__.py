"""The wire formats and frame parsing shared by every role; pure functions, no I/O.

- ``overlay``: the one-byte datagram header around each Ethernet frame;
- ``mtu``: room MTU and datagram budget arithmetic;
- ``drops``: ``DropReason``, why a frame was not delivered (wire strings of ``stats``);
- ``mac``: MAC address text, validation and generation;
- ``ethernet`` and ``ip``: frame classification for the relay's switch and
  safety filters, with the result type in ``classification``;
- ``offload``: the checksums and segmentation a packet socket's
  ``virtio_net_hdr`` says the sending kernel left undone, completed.
"""

from lanparty.proto.classification import FragmentState, FrameClass, Uncertainty
from lanparty.proto.drops import DropReason
from lanparty.proto.ethernet import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPX,
    ETHERTYPE_QINQ,
    ETHERTYPE_VLAN,
    VLAN_TAG_ETHERTYPES,
    classify_frame,
    destination_mac,
    source_mac,
)
from lanparty.proto.ip import (
    DHCP_SERVER_PORT,
    DHCPV6_SERVER_PORT,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ICMPV6_REDIRECT,
    ICMPV6_ROUTER_ADVERTISEMENT,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
)
from lanparty.proto.mac import (
    BROADCAST_MAC,
    MAC_LENGTH,
    InvalidMacError,
    check_endpoint_mac,
    format_mac,
    is_locally_administered,
    is_multicast,
    is_unicast,
    normalize_mac,
    parse_mac,
    random_local_mac,
)
from lanparty.proto.mtu import (
    DEFAULT_RELAY_MTU,
    MIN_ROOM_MTU,
    MtuAdmission,
    admit_mtu,
    check_relay_mtu,
    endpoint_capacity,
    max_frame,
    required_max_datagram,
)
from lanparty.proto.offload import (
    VNET_HDR_BYTES,
    OffloadDrop,
    OffloadDropReason,
    VnetHeader,
    complete_offload,
)
from lanparty.proto.overlay import (
    MIN_FRAME_BYTES,
    OVERLAY_ETHERNET,
    MalformedDatagramError,
    MalformedReason,
    decode_datagram,
    encode_datagram,
)

__all__ = [
    "BROADCAST_MAC",
    "DEFAULT_RELAY_MTU",
    "DHCPV6_SERVER_PORT",
    "DHCP_SERVER_PORT",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_IPX",
    "ETHERTYPE_QINQ",
    "ETHERTYPE_VLAN",
    "ICMPV6_REDIRECT",
    "ICMPV6_ROUTER_ADVERTISEMENT",
    "IPPROTO_ICMPV6",
    "IPPROTO_UDP",
    "MAC_LENGTH",
    "MIN_FRAME_BYTES",
    "MIN_ROOM_MTU",
    "OVERLAY_ETHERNET",
    "VLAN_TAG_ETHERTYPES",
    "VNET_HDR_BYTES",
    "DropReason",
    "FragmentState",
    "FrameClass",
    "InvalidMacError",
    "MalformedDatagramError",
    "MalformedReason",
    "MtuAdmission",
    "OffloadDrop",
    "OffloadDropReason",
    "Uncertainty",
    "VnetHeader",
    "admit_mtu",
    "check_endpoint_mac",
    "check_relay_mtu",
    "classify_frame",
    "complete_offload",
    "decode_datagram",
    "destination_mac",
    "encode_datagram",
    "endpoint_capacity",
    "format_mac",
    "is_locally_administered",
    "is_multicast",
    "is_unicast",
    "max_frame",
    "normalize_mac",
    "parse_mac",
    "random_local_mac",
    "required_max_datagram",
    "source_mac",
]

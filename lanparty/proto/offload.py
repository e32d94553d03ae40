"""Finishing what a network card would have done to a packet the kernel left unfinished.

A packet socket with ``PACKET_VNET_HDR`` receives each packet behind a
``struct virtio_net_hdr`` (10 bytes, in the host's byte order, written by
the kernel's ``virtio_net_hdr_from_skb``). On a veth, a tap or a bridge in
front of them, the sending host's kernel leaves work to the "hardware" that
never happens: the TCP/UDP checksum (``VIRTIO_NET_HDR_F_NEEDS_CSUM``: the
checksum field holds only the pseudo-header sum) and segmentation (TSO/GSO
super-packets of up to 64 KiB, ``gso_type``/``gso_size``). Bridged as they
are, such frames are dropped by the far host (bad checksum) or by every
link (too long). ``complete_offload`` turns one received packet into the
frames a real card would have put on the wire:

- a checksum to complete is computed over ``frame[csum_start:]`` and stored
  at ``csum_start + csum_offset`` (CRC32c for SCTP, which the kernel
  offloads the same way; the Internet checksum otherwise);
- a TCPv4/TCPv6/UDP GSO packet is cut into ``gso_size``-byte payloads, each
  with its own IPv4 total length, identification (counting up) and header
  checksum, IPv6 payload length, TCP sequence number and flags (FIN and PSH
  on the last segment only, CWR on the first only) or UDP length, and a full
  TCP/UDP checksum, as the kernel's own software GSO does.

Up to two VLAN tags may precede the IP header. ``hdr_len`` is only the
kernel's hint of the linear length and is not used. A segment's checksum is
computed afresh, its pseudo-header from the IP header's addresses, so a
packet merged by GRO (no ``NEEDS_CSUM``, a stale checksum field) is cut
right too; an IPv6 routing header's final destination is not looked up
(no LAN host sends TSO through one). A packet whose metadata cannot be
honoured (an unknown GSO type, offsets that do not match the headers, a
frame shorter than its headers, a GSO packet inside a tunnel) becomes an
``OffloadDrop`` with a reason; nothing here raises for any bytes.

The C shim (``native/packet_io.c``, ``lp_complete_offload``) implements the
same rules; tests hold both to byte-identical output.
"""

from __future__ import annotations

import enum
import struct

import attrs

from lanparty.proto.ethernet import (
    ETHERNET_HEADER_BYTES,
    MAX_VLAN_TAGS,
    VLAN_TAG_BYTES,
    VLAN_TAG_ETHERTYPES,
)
from lanparty.proto.ip import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_MIN_HEADER_BYTES,
    IPV6_GENERIC_EXTENSION_HEADERS,
    IPV6_HEADER_BYTES,
    MAX_IPV6_EXTENSION_HEADERS,
    UDP_HEADER_BYTES,
)

# <linux/virtio_net.h>
VNET_HDR_BYTES = 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3  # UDP fragmentation offload: the kernel no longer makes it
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80

TCP_MIN_HEADER_BYTES = 20
TCP_CHECKSUM_OFFSET = 16
UDP_CHECKSUM_OFFSET = 6
SCTP_CHECKSUM_OFFSET = 8
SCTP_COMMON_HEADER_BYTES = 12
TCP_FIN = 0x01
TCP_PSH = 0x08
TCP_CWR = 0x80
# The largest IPv4 total length or IPv6 payload length a segment can state.
MAX_IP_LENGTH = 0xFFFF

# struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start,
# csum_offset. The kernel writes packet sockets' headers in the legacy
# virtio byte order, which is the host's own (little-endian on x86 and arm64).
_VNET_HDR = struct.Struct("=BBHHHH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_GSO_TYPES = frozenset(
    {VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP_L4}
)


@attrs.frozen
class VnetHeader:
    """A ``struct virtio_net_hdr`` as the kernel fills it for one received packet."""

    flags: int = 0
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> VnetHeader:
        """Read the first ``VNET_HDR_BYTES`` of ``data``.

        Raises ``ValueError`` when fewer are given: the kernel always writes
        all ten, so a short one is the caller's bug.
        """
        if len(data) < VNET_HDR_BYTES:
            raise ValueError(f"a virtio_net_hdr has {VNET_HDR_BYTES} bytes, not {len(data)}")
        return cls(*_VNET_HDR.unpack_from(data))

    def pack(self) -> bytes:
        return _VNET_HDR.pack(
            self.flags,
            self.gso_type,
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        )

    @property
    def needs_checksum(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)

    @property
    def needs_completion(self) -> bool:
        """Whether ``complete_offload`` has work to do (else the frame is complete)."""
        return bool(self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM or self.gso_type)


# Nothing to finish: what a card that verified the checksum (or none) delivers.
NO_OFFLOAD = VnetHeader()


class OffloadDropReason(enum.StrEnum):
    """Why a received packet's offload metadata could not be honoured."""

    # The frame ends before a header the metadata or the IP header points at.
    TRUNCATED = "truncated"
    # csum_start/csum_offset outside the frame, or not the L4 checksum field.
    BAD_CHECKSUM_OFFSETS = "bad_checksum_offsets"
    # A gso_type other than TCPv4, TCPv6 and UDP (L4).
    UNKNOWN_GSO_TYPE = "unknown_gso_type"
    ZERO_GSO_SIZE = "zero_gso_size"
    # A GSO packet that is not IPv4 or IPv6 (after at most two VLAN tags).
    NOT_IP = "not_ip"
    # A bad version or IHL, an IP version or protocol other than the GSO type's,
    # or an IPv6 extension-header chain that does not lead to it.
    BAD_IP_HEADER = "bad_ip_header"
    # A TCP data offset below 5.
    BAD_L4_HEADER = "bad_l4_header"
    # A segment longer than an IP length field can state.
    OVERSIZED_SEGMENT = "oversized_segment"
    # Not from this module: the kernel refused to describe the packet's GSO type
    # in a virtio_net_hdr (recvmsg fails with EINVAL; the packet is gone).
    KERNEL_REFUSED = "kernel_refused"
    # A GSO packet inside a tunnel (VXLAN, GRE, ...): the kernel describes it by
    # its inner TCP/UDP header alone, and the tunnel's headers cannot be
    # rewritten per segment without knowing its format.
    ENCAPSULATED = "encapsulated"


# The C shim reports a drop as -code (LP_DROP_* in native/packet_io.c).
OFFLOAD_DROP_CODES: dict[int, OffloadDropReason] = {
    1: OffloadDropReason.TRUNCATED,
    2: OffloadDropReason.BAD_CHECKSUM_OFFSETS,
    3: OffloadDropReason.UNKNOWN_GSO_TYPE,
    4: OffloadDropReason.ZERO_GSO_SIZE,
    5: OffloadDropReason.NOT_IP,
    6: OffloadDropReason.BAD_IP_HEADER,
    7: OffloadDropReason.BAD_L4_HEADER,
    8: OffloadDropReason.OVERSIZED_SEGMENT,
    9: OffloadDropReason.KERNEL_REFUSED,
    10: OffloadDropReason.ENCAPSULATED,
}


@attrs.frozen
class OffloadDrop:
    """A received packet to drop (and count by ``reason``); ``detail`` is for logs."""

    reason: OffloadDropReason
    detail: str


def complete_offload(header: VnetHeader, frame: bytes) -> list[bytes] | OffloadDrop:
    """The complete frames that ``frame`` stands for, or why it must be dropped.

    Without anything to finish the result is ``[frame]``; with a checksum
    to complete, one frame; a GSO packet gives one frame per segment, in
    order. Never raises.
    """
    gso_type = header.gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if gso_type == VIRTIO_NET_HDR_GSO_NONE:
        if header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            return _complete_checksum(header, frame)
        return [frame]
    if gso_type not in _GSO_TYPES:
        return OffloadDrop(OffloadDropReason.UNKNOWN_GSO_TYPE, f"gso_type {header.gso_type}")
    if header.gso_size == 0:
        return OffloadDrop(OffloadDropReason.ZERO_GSO_SIZE, "a GSO packet with gso_size 0")
    return _segment(header, gso_type, frame)


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """The RFC 1071 checksum of ``data``: the complement of its ones' complement sum."""
    return ~_ones_sum(_words(data)) & 0xFFFF


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli, RFC 3720), SCTP's checksum."""
    table = _CRC32C_TABLE
    crc = 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = crc >> 1 ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def _words(data: bytes | bytearray | memoryview) -> int:
    """``data`` as one big-endian integer, a zero byte appended if its length is odd.

    Modulo 0xFFFF it equals the sum of its 16-bit words (2**16 = 1 mod 0xFFFF),
    which is all a ones' complement sum needs, computed in C.
    """
    value = int.from_bytes(data, "big")
    return value << 8 if len(data) & 1 else value


def _ones_sum(value: int) -> int:
    """The 16-bit ones' complement sum of the words ``value`` stands for (0 only if all are 0)."""
    if not value:
        return 0
    return value % 0xFFFF or 0xFFFF


def _l4_checksum(value: int) -> int:
    """The field value for an L4 checksum; 0 is sent as 0xFFFF (the kernel's CSUM_MANGLED_0)."""
    return ~_ones_sum(value) & 0xFFFF or 0xFFFF


def _complete_checksum(header: VnetHeader, frame: bytes) -> list[bytes] | OffloadDrop:
    start, offset = header.csum_start, header.csum_offset
    field = start + offset
    end = len(frame)
    if start < ETHERNET_HEADER_BYTES or field + 2 > end:
        return OffloadDrop(
            OffloadDropReason.BAD_CHECKSUM_OFFSETS,
            f"csum_start {start} + csum_offset {offset} in a {end}-byte frame",
        )
    if offset == SCTP_CHECKSUM_OFFSET and _is_sctp_at(frame, start):
        if start + SCTP_COMMON_HEADER_BYTES > end:
            return OffloadDrop(OffloadDropReason.TRUNCATED, "an SCTP header past the frame's end")
        completed = bytearray(frame)
        completed[field : field + 4] = bytes(4)
        completed[field : field + 4] = crc32c(memoryview(completed)[start:]).to_bytes(4, "little")
        return [bytes(completed)]
    # The field holds the pseudo-header sum: summing over it finishes the job.
    completed = bytearray(frame)
    _U16.pack_into(completed, field, _l4_checksum(_words(memoryview(completed)[start:])))
    return [bytes(completed)]


def _is_sctp_at(frame: bytes, start: int) -> bool:
    """Whether the L4 header at ``start`` is SCTP's (the kernel offloads its CRC32c alike)."""
    located = _network_header(frame)
    if located is None or located[0] not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return False
    upper = _upper_layer(frame, located[0], located[1])
    return not isinstance(upper, OffloadDrop) and upper == (IPPROTO_SCTP, start)


def _network_header(frame: bytes) -> tuple[int, int] | None:
    """(ethertype, offset of the network header) after up to two VLAN tags; None if cut short."""
    end = len(frame)
    position = 12
    tags = 0
    while True:
        if position + 2 > end:
            return None
        ethertype = frame[position] << 8 | frame[position + 1]
        position += 2
        if ethertype in VLAN_TAG_ETHERTYPES and tags < MAX_VLAN_TAGS:
            position += VLAN_TAG_BYTES - 2
            tags += 1
            continue
        return ethertype, position


def _upper_layer(frame: bytes, ethertype: int, l3: int) -> tuple[int, int] | OffloadDrop:
    """(protocol, offset) of the header after the IP header and IPv6 extension headers."""
    end = len(frame)
    if ethertype == ETHERTYPE_IPV4:
        if l3 + IPV4_MIN_HEADER_BYTES > end:
            return OffloadDrop(OffloadDropReason.TRUNCATED, "an IPv4 header past the frame's end")
        version_ihl = frame[l3]
        header_bytes = (version_ihl & 0x0F) * 4
        if version_ihl >> 4 != 4 or header_bytes < IPV4_MIN_HEADER_BYTES:
            return OffloadDrop(
                OffloadDropReason.BAD_IP_HEADER, f"IPv4 version/IHL byte 0x{version_ihl:02x}"
            )
        if l3 + header_bytes > end:
            return OffloadDrop(OffloadDropReason.TRUNCATED, "IPv4 options past the frame's end")
        return frame[l3 + 9], l3 + header_bytes
    if l3 + IPV6_HEADER_BYTES > end:
        return OffloadDrop(OffloadDropReason.TRUNCATED, "an IPv6 header past the frame's end")
    if frame[l3] >> 4 != 6:
        return OffloadDrop(OffloadDropReason.BAD_IP_HEADER, f"IP version {frame[l3] >> 4}, not 6")
    next_header = frame[l3 + 6]
    position = l3 + IPV6_HEADER_BYTES
    walked = 0
    while next_header in IPV6_GENERIC_EXTENSION_HEADERS:
        if walked == MAX_IPV6_EXTENSION_HEADERS:
            return OffloadDrop(OffloadDropReason.BAD_IP_HEADER, "too many extension headers")
        if position + 2 > end:
            return OffloadDrop(
                OffloadDropReason.TRUNCATED, "an extension header past the frame's end"
            )
        next_header, position = frame[position], position + (frame[position + 1] + 1) * 8
        walked += 1
    return next_header, position


@attrs.frozen
class _GsoLayout:
    """Where a GSO packet's headers are: network header, L4 header, payload."""

    ipv4: bool
    tcp: bool
    protocol: int
    l3: int
    l4: int
    payload_start: int

    @property
    def checksum_at(self) -> int:
        return self.l4 + (TCP_CHECKSUM_OFFSET if self.tcp else UDP_CHECKSUM_OFFSET)


def _segment(header: VnetHeader, gso_type: int, frame: bytes) -> list[bytes] | OffloadDrop:
    """Cut a TCP or UDP GSO packet into its segments (see the module's docstring)."""
    layout = _gso_layout(header, gso_type, frame)
    if isinstance(layout, OffloadDrop):
        return layout
    size = header.gso_size
    payload = len(frame) - layout.payload_start
    if layout.payload_start + min(size, payload) - layout.l3 > MAX_IP_LENGTH:
        return OffloadDrop(OffloadDropReason.OVERSIZED_SEGMENT, f"gso_size {size}")
    return _cut(layout, size, frame)


def _gso_layout(header: VnetHeader, gso_type: int, frame: bytes) -> _GsoLayout | OffloadDrop:
    """The GSO packet's header offsets, checked against its gso_type and checksum offsets."""
    end = len(frame)
    located = _network_header(frame)
    if located is None:
        return OffloadDrop(OffloadDropReason.TRUNCATED, "an Ethernet header past the frame's end")
    ethertype, l3 = located
    if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return OffloadDrop(OffloadDropReason.NOT_IP, f"a GSO packet of ethertype 0x{ethertype:04x}")
    ipv4 = ethertype == ETHERTYPE_IPV4
    if (gso_type == VIRTIO_NET_HDR_GSO_TCPV4 and not ipv4) or (
        gso_type == VIRTIO_NET_HDR_GSO_TCPV6 and ipv4
    ):
        return OffloadDrop(
            OffloadDropReason.BAD_IP_HEADER, f"gso_type {gso_type} on ethertype 0x{ethertype:04x}"
        )
    upper = _upper_layer(frame, ethertype, l3)
    if isinstance(upper, OffloadDrop):
        return upper
    protocol, l4 = upper
    tcp = gso_type != VIRTIO_NET_HDR_GSO_UDP_L4
    if protocol != (IPPROTO_TCP if tcp else IPPROTO_UDP):
        if header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM and header.csum_start > l4:
            return OffloadDrop(
                OffloadDropReason.ENCAPSULATED,
                f"a GSO packet in a tunnel: protocol {protocol} at {l4}, "
                f"its TCP/UDP header at {header.csum_start}",
            )
        return OffloadDrop(
            OffloadDropReason.BAD_IP_HEADER, f"protocol {protocol} under gso_type {gso_type}"
        )
    checksum_offset = TCP_CHECKSUM_OFFSET if tcp else UDP_CHECKSUM_OFFSET
    if header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM and (
        header.csum_start != l4 or header.csum_offset != checksum_offset
    ):
        return OffloadDrop(
            OffloadDropReason.BAD_CHECKSUM_OFFSETS,
            f"csum_start {header.csum_start}, csum_offset {header.csum_offset} for a "
            f"{'TCP' if tcp else 'UDP'} header at {l4}",
        )
    if tcp:
        if l4 + TCP_MIN_HEADER_BYTES > end:
            return OffloadDrop(OffloadDropReason.TRUNCATED, "a TCP header past the frame's end")
        data_offset = frame[l4 + 12] >> 4
        if data_offset * 4 < TCP_MIN_HEADER_BYTES:
            return OffloadDrop(OffloadDropReason.BAD_L4_HEADER, f"TCP data offset {data_offset}")
        payload_start = l4 + data_offset * 4
    else:
        payload_start = l4 + UDP_HEADER_BYTES
    if payload_start > end:
        return OffloadDrop(OffloadDropReason.TRUNCATED, "an L4 header past the frame's end")
    return _GsoLayout(ipv4, tcp, protocol, l3, l4, payload_start)


def _cut(layout: _GsoLayout, size: int, frame: bytes) -> list[bytes]:
    """The segments of ``size``-byte payloads, each with its own lengths, numbers and checksums."""
    ipv4, tcp, l3, l4 = layout.ipv4, layout.tcp, layout.l3, layout.l4
    payload_start, checksum_at, end = layout.payload_start, layout.checksum_at, len(frame)
    count = max(1, -(-(end - payload_start) // size))
    template = bytearray(frame[:payload_start])
    template[checksum_at : checksum_at + 2] = b"\0\0"
    if ipv4:
        template[l3 + 10 : l3 + 12] = b"\0\0"
        ip_id = _U16.unpack_from(frame, l3 + 4)[0]
        pseudo = _words(frame[l3 + 12 : l3 + 20]) + layout.protocol
    else:
        ip_id = 0
        pseudo = _words(frame[l3 + 8 : l3 + 40]) + layout.protocol
    sequence = _U32.unpack_from(frame, l4 + 4)[0] if tcp else 0
    tcp_flags = frame[l4 + 13] if tcp else 0
    last = count - 1
    segments = []
    for index in range(count):
        start = payload_start + index * size
        segment = template + frame[start : min(start + size, end)]
        length = len(segment)
        if ipv4:
            _U16.pack_into(segment, l3 + 2, length - l3)
            _U16.pack_into(segment, l3 + 4, (ip_id + index) & 0xFFFF)
            header_sum = _ones_sum(_words(memoryview(segment)[l3:l4]))
            _U16.pack_into(segment, l3 + 10, ~header_sum & 0xFFFF)
        else:
            _U16.pack_into(segment, l3 + 4, length - l3 - IPV6_HEADER_BYTES)
        l4_length = length - l4
        if tcp:
            _U32.pack_into(segment, l4 + 4, (sequence + index * size) & 0xFFFFFFFF)
            flags = tcp_flags
            if index:
                flags &= ~TCP_CWR
            if index != last:
                flags &= ~(TCP_FIN | TCP_PSH)
            segment[l4 + 13] = flags
        else:
            _U16.pack_into(segment, l4 + 4, l4_length)
        checksum = _l4_checksum(pseudo + l4_length + _words(memoryview(segment)[l4:]))
        _U16.pack_into(segment, checksum_at, checksum)
        segments.append(bytes(segment))
    return segments

"""Completing checksum and segmentation offloads, against the kernel's own rules.

The packets are built the way the sending kernel leaves them: the TCP/UDP
checksum field holding the folded pseudo-header sum (CHECKSUM_PARTIAL), a
GSO super-packet with its total length in the IP header and the
virtio_net_hdr fields ``virtio_net_hdr_from_skb`` would write (``hdr_len``
is only the linear length, a hint). The checks use their own ones'
complement sum, not the module's. The C shim (``lp_complete_offload``)
must give byte-identical results for every input, valid or not.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# The C shim; the package install builds it (a missing one fails these tests).
from lanparty import _native
from lanparty.proto.ethernet import VLAN_TAG_ETHERTYPES
from lanparty.proto.offload import (
    NO_OFFLOAD,
    OFFLOAD_DROP_CODES,
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP,
    VIRTIO_NET_HDR_GSO_UDP_L4,
    VNET_HDR_BYTES,
    OffloadDrop,
    OffloadDropReason,
    VnetHeader,
    complete_offload,
    crc32c,
    internet_checksum,
)

TCP, UDP, SCTP = 6, 17, 132
FIN, PSH, CWR = 0x01, 0x08, 0x80
MACS = bytes.fromhex("020000000001020000000002")
HOPOPTS, DSTOPTS = 0, 60

# ---------------------------------------------------------------- reference


def ones_sum(data: bytes) -> int:
    """The 16-bit ones' complement sum, word by word (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(
    version: int, source: bytes, destination: bytes, protocol: int, length: int
) -> bytes:
    if version == 4:
        return source + destination + bytes([0, protocol]) + struct.pack("!H", length)
    return source + destination + struct.pack("!I", length) + bytes([0, 0, 0, protocol])


def reference_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------- builders


@dataclass(frozen=True)
class Built:
    """A packet as the sending kernel left it, and where its parts are."""

    frame: bytes
    header: VnetHeader
    version: int
    protocol: int
    source: bytes
    destination: bytes
    l3: int
    l4: int
    payload_start: int
    payload: bytes

    @property
    def checksum_at(self) -> int:
        return self.l4 + {TCP: 16, UDP: 6, SCTP: 8}[self.protocol]


def ethernet(ethertype: int, tags: tuple[int, ...] = ()) -> bytes:
    header = MACS
    for tpid in tags:
        header += struct.pack("!HH", tpid, 0x0064)
    return header + struct.pack("!H", ethertype)


def ipv4(
    addresses: tuple[bytes, bytes], protocol: int, total: int, ident: int, options: bytes = b""
) -> bytes:
    source, destination = addresses
    header = bytearray(
        struct.pack("!BBHHHBBH", 0x45 + len(options) // 4, 0, total, ident, 0x4000, 64, protocol, 0)
        + source
        + destination
        + options
    )
    header[10:12] = struct.pack("!H", ~ones_sum(bytes(header)) & 0xFFFF)
    return bytes(header)


def ipv6(source: bytes, destination: bytes, next_header: int, payload_length: int) -> bytes:
    return struct.pack("!IHBB", 0x60000000, payload_length, next_header, 64) + source + destination


def extension_headers(kinds: list[tuple[int, int]], last: int) -> tuple[int, bytes]:
    """IPv6 extension headers of (type, 8-octet units - 1); the first next-header value."""
    chain = b""
    following = last
    for kind, units in reversed(kinds):
        chain = bytes([following, units]) + bytes(6 + 8 * units) + chain
        following = kind
    return following, chain


@st.composite
def kernel_packets(draw: Any, *, gso: bool, payload_max: int = 3000) -> Built:
    """A TCP or UDP packet over IPv4 or IPv6, VLAN-tagged or not, as the kernel leaves it."""
    version = draw(st.sampled_from([4, 6]))
    protocol = draw(st.sampled_from([TCP, UDP]))
    tags = tuple(draw(st.lists(st.sampled_from(sorted(VLAN_TAG_ETHERTYPES)), max_size=2)))
    # Payload and segment sizes come from a seeded generator: hypothesis's own
    # sizes stay near the small end, and segmentation needs long payloads.
    rng = draw(st.randoms(use_true_random=True))
    length = rng.randint(0, draw(st.sampled_from([payload_max, payload_max, 64, 0])))
    payload = rng.randbytes(length)
    address_bytes = 4 if version == 4 else 16
    source = draw(st.binary(min_size=address_bytes, max_size=address_bytes))
    destination = draw(st.binary(min_size=address_bytes, max_size=address_bytes))
    ports = struct.pack("!HH", draw(st.integers(1, 65535)), draw(st.integers(1, 65535)))
    if protocol == TCP:
        options = bytes(4 * draw(st.integers(0, 10)))
        flags = sum(1 << bit for bit in range(8) if draw(st.booleans()))
        numbers = struct.pack(
            "!II", draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
        )
        rest = struct.pack("!BBHHH", (5 + len(options) // 4) << 4, flags, 64240, 0, 0)
        l4_header = ports + numbers + rest + options
    else:
        l4_header = ports + struct.pack("!HH", 8 + len(payload), 0)
    l4_length = len(l4_header) + len(payload)
    if version == 4:
        options = b"\x01" * (4 * draw(st.integers(0, 10)))
        ident = draw(st.integers(0, 65535))
        network = ipv4(
            (source, destination), protocol, 20 + len(options) + l4_length, ident, options
        )
        link = ethernet(0x0800, tags)
    else:
        kinds = draw(
            st.lists(st.tuples(st.sampled_from([HOPOPTS, DSTOPTS]), st.integers(0, 2)), max_size=2)
        )
        first, chain = extension_headers(kinds, protocol)
        network = ipv6(source, destination, first, len(chain) + l4_length) + chain
        link = ethernet(0x86DD, tags)
    l3 = len(link)
    l4 = l3 + len(network)
    frame = bytearray(link + network + l4_header + payload)
    checksum_at = l4 + (16 if protocol == TCP else 6)
    gro = gso and draw(st.booleans())
    if gro:  # merged by GRO: a verified packet, its checksum field stale
        frame[checksum_at : checksum_at + 2] = draw(st.binary(min_size=2, max_size=2))
    else:  # CHECKSUM_PARTIAL: the folded pseudo-header sum, for the whole L4 length
        pseudo = pseudo_header(version, source, destination, protocol, l4_length)
        frame[checksum_at : checksum_at + 2] = struct.pack("!H", ones_sum(pseudo))
    payload_start = l4 + len(l4_header)
    if gso:
        gso_type = {4: VIRTIO_NET_HDR_GSO_TCPV4, 6: VIRTIO_NET_HDR_GSO_TCPV6}[version]
        if protocol == UDP:
            gso_type = VIRTIO_NET_HDR_GSO_UDP_L4
        elif draw(st.booleans()):
            gso_type |= VIRTIO_NET_HDR_GSO_ECN
        header = VnetHeader(
            flags=VIRTIO_NET_HDR_F_DATA_VALID if gro else VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type=gso_type,
            hdr_len=draw(st.integers(payload_start, len(frame))),
            gso_size=draw(st.sampled_from([536, 1448, 0]))
            or rng.randint(8, draw(st.sampled_from([64, 1500, 1500, 65535]))),
            csum_start=0 if gro else l4,
            csum_offset=0 if gro else checksum_at - l4,
        )
    else:
        header = VnetHeader(
            flags=VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start=l4, csum_offset=checksum_at - l4
        )
    return Built(
        bytes(frame), header, version, protocol, source, destination, l3, l4, payload_start, payload
    )


# ---------------------------------------------------------------- checks


def assert_l4_checksum_valid(built: Built, frame: bytes) -> None:
    l4_bytes = frame[built.l4 :]
    pseudo = pseudo_header(
        built.version, built.source, built.destination, built.protocol, len(l4_bytes)
    )
    assert ones_sum(pseudo + l4_bytes) == 0xFFFF
    assert frame[built.checksum_at : built.checksum_at + 2] != b"\0\0"


def assert_segments(built: Built, segments: list[bytes]) -> None:
    """Every segment as the kernel's software GSO would have made it."""
    original, size, l3, l4 = built.frame, built.header.gso_size, built.l3, built.l4
    head = built.payload_start
    assert len(segments) == max(1, math.ceil(len(built.payload) / size))
    last = len(segments) - 1
    bodies = []
    for index, segment in enumerate(segments):
        body = segment[head:]
        if index < last:
            assert len(body) == size
        else:
            assert 0 < len(body) <= size or not built.payload
        bodies.append(body)
        assert segment[:l3] == original[:l3]  # Ethernet header and tags
        if built.version == 4:
            total, ident = struct.unpack_from("!HH", segment, l3 + 2)
            assert total == len(segment) - l3
            assert ident == (struct.unpack_from("!H", original, l3 + 4)[0] + index) & 0xFFFF
            assert ones_sum(segment[l3:l4]) == 0xFFFF
            assert segment[l3 : l3 + 2] == original[l3 : l3 + 2]
            assert segment[l3 + 6 : l3 + 10] == original[l3 + 6 : l3 + 10]
            assert segment[l3 + 12 : l4] == original[l3 + 12 : l4]
        else:
            assert struct.unpack_from("!H", segment, l3 + 4)[0] == len(segment) - l3 - 40
            assert segment[l3 : l3 + 4] == original[l3 : l3 + 4]
            assert segment[l3 + 6 : l4] == original[l3 + 6 : l4]
        assert segment[l4 : l4 + 4] == original[l4 : l4 + 4]  # ports
        if built.protocol == TCP:
            sequence = struct.unpack_from("!I", original, l4 + 4)[0]
            assert struct.unpack_from("!I", segment, l4 + 4)[0] == (sequence + index * size) % 2**32
            flags = original[l4 + 13]
            if index:
                flags &= ~CWR
            if index != last:
                flags &= ~(FIN | PSH)
            assert segment[l4 + 13] == flags
            assert segment[l4 + 8 : l4 + 13] == original[l4 + 8 : l4 + 13]
            assert segment[l4 + 14 : l4 + 16] == original[l4 + 14 : l4 + 16]
            assert segment[l4 + 18 : head] == original[l4 + 18 : head]
        else:
            assert struct.unpack_from("!H", segment, l4 + 4)[0] == len(segment) - l4
        assert_l4_checksum_valid(built, segment)
    assert b"".join(bodies) == built.payload


# ---------------------------------------------------------------- the C shim


def native_complete(
    header: VnetHeader, frame: bytes, *, chunk: int = 64
) -> list[bytes] | OffloadDropReason:
    """lp_complete_offload on the same input, segments fetched ``chunk`` at a time."""
    ffi, lib = _native.ffi, _native.lib
    buffer = ffi.new("char[]", max(len(frame), 1))
    ffi.memmove(buffer, frame, len(frame))
    stride = max(len(frame), 1)  # room for any segment
    out = ffi.new("char[]", stride * chunk)
    lengths = ffi.new("uint32_t[]", chunk)
    result = lib.lp_complete_offload(
        header.pack(), buffer, len(frame), 0, out, stride, chunk, lengths
    )
    if result < 0:
        return OFFLOAD_DROP_CODES[-result]
    if result == 0:
        return [ffi.buffer(buffer, len(frame))[:]]
    segments: list[bytes] = []
    while True:
        for k in range(min(chunk, result - len(segments))):
            length = lengths[k]
            assert length <= stride
            segments.append(ffi.buffer(out + k * stride, length)[:])
        if len(segments) == result:
            return segments
        again = lib.lp_complete_offload(
            header.pack(), buffer, len(frame), len(segments), out, stride, chunk, lengths
        )
        assert again == result


def python_complete(header: VnetHeader, frame: bytes) -> list[bytes] | OffloadDropReason:
    result = complete_offload(header, frame)
    return result.reason if isinstance(result, OffloadDrop) else result


def test_the_drop_codes_are_the_shims() -> None:
    lib = _native.lib
    for code, reason in OFFLOAD_DROP_CODES.items():
        assert getattr(lib, f"LP_DROP_{reason.name}") == code
    assert set(OFFLOAD_DROP_CODES.values()) == set(OffloadDropReason)
    assert max(OFFLOAD_DROP_CODES) + 1 == lib.LP_DROP_CODES
    assert lib.LP_VNET_HDR_BYTES == VNET_HDR_BYTES


# ---------------------------------------------------------------- the header


def test_the_header_is_read_in_host_order_and_written_back() -> None:
    header = VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16)
    data = header.pack()
    assert len(data) == VNET_HDR_BYTES
    assert data == struct.pack("=BBHHHH", 1, 1, 66, 1448, 34, 16)
    assert VnetHeader.parse(data + b"frame") == header
    assert header.needs_checksum
    assert header.needs_completion
    assert not NO_OFFLOAD.needs_completion
    assert not VnetHeader(flags=VIRTIO_NET_HDR_F_DATA_VALID).needs_completion
    with pytest.raises(ValueError, match="10 bytes, not 9"):
        VnetHeader.parse(data[:9])


# ---------------------------------------------------------------- checksums


def test_the_checksum_helpers_match_known_values() -> None:
    # RFC 1071's example header and RFC 3720's CRC32C vectors.
    header = bytes.fromhex("4500003c1c46400040060000ac100a63ac100a0c")
    assert internet_checksum(header) == 0xB1E6
    assert internet_checksum(b"") == 0xFFFF
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E


@given(st.binary(max_size=600))
def test_the_crc_is_crc32c(data: bytes) -> None:
    assert crc32c(data) == reference_crc32c(data)


def test_a_frame_without_offloads_is_returned_as_it_is() -> None:
    frame = ethernet(0x0806) + bytes(28)
    assert complete_offload(NO_OFFLOAD, frame) == [frame]
    assert complete_offload(VnetHeader(flags=VIRTIO_NET_HDR_F_DATA_VALID), frame) == [frame]
    assert native_complete(NO_OFFLOAD, frame) == [frame]


@given(kernel_packets(gso=False))
def test_a_partial_checksum_is_completed(built: Built) -> None:
    result = complete_offload(built.header, built.frame)
    assert isinstance(result, list)
    [frame] = result
    assert len(frame) == len(built.frame)
    at = built.checksum_at
    assert frame[:at] + frame[at + 2 :] == built.frame[:at] + built.frame[at + 2 :]
    assert_l4_checksum_valid(built, frame)
    assert native_complete(built.header, built.frame) == result


def test_a_udp_checksum_of_zero_is_sent_as_ffff() -> None:
    source, destination = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
    udp = struct.pack("!HHHH", 1234, 5678, 10, 0) + b"\0\0"
    pseudo = pseudo_header(4, source, destination, UDP, len(udp))
    # Pick the two payload bytes that make the sum 0xffff: the checksum would be 0.
    filler = 0xFFFF - ones_sum(pseudo + udp)
    udp = udp[:8] + struct.pack("!H", filler)
    assert ones_sum(pseudo + udp) == 0xFFFF
    partial = udp[:6] + struct.pack("!H", ones_sum(pseudo)) + udp[8:]
    frame = ethernet(0x0800) + ipv4((source, destination), UDP, 20 + len(udp), 1) + partial
    header = VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start=34, csum_offset=6)
    result = complete_offload(header, frame)
    assert isinstance(result, list)
    assert result[0][40:42] == b"\xff\xff"
    assert native_complete(header, frame) == result


@pytest.mark.parametrize("tags", [(), (0x8100,), (0x88A8, 0x8100)])
def test_an_sctp_checksum_is_completed_as_crc32c(tags: tuple[int, ...]) -> None:
    source, destination = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
    sctp = struct.pack("!HHII", 5000, 5001, 0x01020304, 0) + bytes(range(40))
    frame = ethernet(0x0800, tags) + ipv4((source, destination), SCTP, 20 + len(sctp), 7) + sctp
    start = len(frame) - len(sctp)
    header = VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start=start, csum_offset=8)
    result = complete_offload(header, frame)
    assert isinstance(result, list)
    assert result[0][start + 8 : start + 12] == reference_crc32c(sctp).to_bytes(4, "little")
    assert result[0][: start + 8] == frame[: start + 8]
    assert native_complete(header, frame) == result


# ---------------------------------------------------------------- segmentation


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(kernel_packets(gso=True))
def test_a_gso_packet_is_cut_into_valid_segments(built: Built) -> None:
    result = complete_offload(built.header, built.frame)
    assert isinstance(result, list), result
    assert_segments(built, result)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(kernel_packets(gso=True), st.integers(1, 9))
def test_the_shim_cuts_byte_for_byte_alike(built: Built, chunk: int) -> None:
    assert native_complete(built.header, built.frame, chunk=chunk) == python_complete(
        built.header, built.frame
    )


def test_a_tcp_stream_of_mss_segments() -> None:
    """A 64 KiB TSO packet of 1448-byte segments, the common case, in numbers."""
    source, destination = bytes([198, 19, 0, 10]), bytes([198, 19, 0, 100])
    payload = bytes(i % 251 for i in range(65000))
    tcp = struct.pack(
        "!HHIIBBHHH", 5001, 40000, 0xFFFFF000, 1, 0x80, CWR | 0x10 | PSH | FIN, 500, 0, 0
    ) + bytes(12)
    pseudo = pseudo_header(4, source, destination, TCP, len(tcp) + len(payload))
    tcp = tcp[:16] + struct.pack("!H", ones_sum(pseudo)) + tcp[18:]
    frame = (
        ethernet(0x0800)
        + ipv4((source, destination), TCP, 20 + len(tcp) + len(payload), 0xFFFE)
        + tcp
        + payload
    )
    header = VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16)
    segments = complete_offload(header, frame)
    assert isinstance(segments, list)
    assert len(segments) == 45
    assert [len(s) for s in segments] == [66 + 1448] * 44 + [66 + 65000 - 44 * 1448]
    assert struct.unpack_from("!I", segments[3], 38)[0] == 0xFFFFF000 + 3 * 1448 - 2**32
    assert [struct.unpack_from("!H", s, 18)[0] for s in segments[:3]] == [0xFFFE, 0xFFFF, 0]
    assert [s[47] for s in (segments[0], segments[1], segments[-1])] == [0x90, 0x10, 0x19]
    built = Built(frame, header, 4, TCP, source, destination, 14, 34, 66, payload)
    assert_segments(built, segments)
    assert native_complete(header, frame) == segments
    # Segments longer than the output slots are measured but not written.
    out = _native.ffi.new("char[]", 1000 * 64)
    lengths = _native.ffi.new("uint32_t[]", 64)
    buffer = _native.ffi.new("char[]", frame)
    assert (
        _native.lib.lp_complete_offload(
            header.pack(), buffer, len(frame), 40, out, 1000, 64, lengths
        )
        == 45
    )
    assert list(lengths)[:5] == [len(s) for s in segments[40:]]
    assert _native.ffi.buffer(out)[:] == bytes(64000)


# ---------------------------------------------------------------- drops


def tcp4_gso() -> tuple[VnetHeader, bytes]:
    """A valid TCPv4 GSO packet with a 12-byte TCP option, no tags."""
    source, destination = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
    tcp = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x80, 0x10, 5, 0, 0) + bytes(12)
    payload = bytes(3000)
    frame = ethernet(0x0800) + ipv4((source, destination), TCP, 20 + 32 + 3000, 9) + tcp + payload
    return VnetHeader(
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16
    ), frame


def drop_reason(header: VnetHeader, frame: bytes) -> OffloadDropReason | None:
    result = complete_offload(header, frame)
    assert native_complete(header, frame) == python_complete(header, frame)
    if isinstance(result, OffloadDrop):
        assert result.detail
        return result.reason
    return None


def with_header(header: VnetHeader, **changes: int) -> VnetHeader:
    return attrs.evolve(header, **changes)


def test_unusable_metadata_is_a_drop_with_a_reason() -> None:
    header, frame = tcp4_gso()
    assert drop_reason(header, frame) is None
    for gso_type in (2, VIRTIO_NET_HDR_GSO_UDP, 6, 0x7F, VIRTIO_NET_HDR_GSO_UDP | 0x80):
        assert (
            drop_reason(with_header(header, gso_type=gso_type), frame)
            is OffloadDropReason.UNKNOWN_GSO_TYPE
        )
    assert drop_reason(with_header(header, gso_size=0), frame) is OffloadDropReason.ZERO_GSO_SIZE
    for start, offset in ((33, 16), (35, 16), (34, 6), (34, 18)):
        changed = with_header(header, csum_start=start, csum_offset=offset)
        assert drop_reason(changed, frame) is OffloadDropReason.BAD_CHECKSUM_OFFSETS
    v6 = with_header(header, gso_type=VIRTIO_NET_HDR_GSO_TCPV6)
    assert drop_reason(v6, frame) is OffloadDropReason.BAD_IP_HEADER
    udp = with_header(header, gso_type=VIRTIO_NET_HDR_GSO_UDP_L4, csum_offset=6)
    assert drop_reason(udp, frame) is OffloadDropReason.BAD_IP_HEADER
    arp = frame[:12] + b"\x08\x06" + frame[14:]
    assert drop_reason(header, arp) is OffloadDropReason.NOT_IP
    for version_ihl in (0x65, 0x44, 0x40):
        bad = frame[:14] + bytes([version_ihl]) + frame[15:]
        assert drop_reason(header, bad) is OffloadDropReason.BAD_IP_HEADER
    bad_offset = frame[:46] + b"\x40" + frame[47:]
    assert drop_reason(header, bad_offset) is OffloadDropReason.BAD_L4_HEADER
    # Partial checksums that point outside the frame or into the Ethernet header.
    plain = VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start=34, csum_offset=16)
    assert drop_reason(plain, frame[:51]) is OffloadDropReason.BAD_CHECKSUM_OFFSETS
    assert (
        drop_reason(with_header(plain, csum_start=12, csum_offset=0), frame)
        is OffloadDropReason.BAD_CHECKSUM_OFFSETS
    )
    assert (
        drop_reason(with_header(plain, csum_start=40000), frame)
        is OffloadDropReason.BAD_CHECKSUM_OFFSETS
    )


def test_every_cut_before_the_payload_is_a_truncated_drop() -> None:
    header, frame = tcp4_gso()
    for length in range(66):
        assert drop_reason(header, frame[:length]) is OffloadDropReason.TRUNCATED, length
    assert drop_reason(header, frame[:66]) is None  # headers only: one empty segment


def test_a_gso_packet_in_a_tunnel_is_dropped_as_encapsulated() -> None:
    """TCP in VXLAN: the kernel's header names the inner TCP, the outer header is UDP."""
    inner_source, inner_destination = bytes([198, 19, 9, 1]), bytes([198, 19, 9, 2])
    tcp = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x50, 0x10, 5, 0, 0)
    inner = (
        ethernet(0x0800)
        + ipv4((inner_source, inner_destination), TCP, 20 + 20 + 4000, 1)
        + tcp
        + bytes(4000)
    )
    vxlan = (
        struct.pack("!HHHH", 40000, 4789, 8 + 8 + len(inner), 0)
        + bytes.fromhex("0800000000002a00")
        + inner
    )
    frame = (
        ethernet(0x0800)
        + ipv4((bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])), UDP, 20 + len(vxlan), 2)
        + vxlan
    )
    inner_tcp = len(frame) - 4000 - 20
    header = VnetHeader(
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0, 1400, inner_tcp, 16
    )
    assert drop_reason(header, frame) is OffloadDropReason.ENCAPSULATED
    # Its non-GSO packets are fine: the inner checksum is the one left to do.
    single = VnetHeader(VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start=inner_tcp, csum_offset=16)
    assert drop_reason(single, frame) is None


def test_a_segment_longer_than_an_ip_length_is_dropped() -> None:
    header, frame = tcp4_gso()
    huge = frame[:66] + bytes(70000)
    assert (
        drop_reason(with_header(header, gso_size=65535), huge)
        is OffloadDropReason.OVERSIZED_SEGMENT
    )
    assert drop_reason(with_header(header, gso_size=65000), huge) is None


def test_a_packet_ending_inside_its_ipv6_extension_headers_is_truncated() -> None:
    first, chain = extension_headers([(HOPOPTS, 1), (DSTOPTS, 0)], TCP)
    tcp = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x50, 0x10, 5, 0, 0)
    frame = ethernet(0x86DD) + ipv6(bytes(16), bytes(16), first, len(chain) + 20) + chain + tcp
    header = VnetHeader(
        VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 0, 100, 14 + 40 + 24, 16
    )
    assert drop_reason(header, frame) is None
    for length in (54, 55, 60, 70, 78, 97):
        assert drop_reason(header, frame[:length]) is OffloadDropReason.TRUNCATED, length
    long_chain = extension_headers([(DSTOPTS, 0)] * 9, TCP)
    frame = ethernet(0x86DD) + ipv6(bytes(16), bytes(16), long_chain[0], 92) + long_chain[1] + tcp
    assert (
        drop_reason(with_header(header, csum_start=14 + 40 + 72), frame)
        is OffloadDropReason.BAD_IP_HEADER
    )


# ---------------------------------------------------------------- any input


def mutated(built: Built, data: st.DataObject) -> tuple[VnetHeader, bytes]:
    frame = bytearray(built.frame)
    for _ in range(data.draw(st.integers(0, 3))):
        if frame:
            frame[data.draw(st.integers(0, min(len(frame), built.payload_start + 4) - 1))] = (
                data.draw(st.integers(0, 255))
            )
    frame = frame[: data.draw(st.integers(0, len(frame)))] if data.draw(st.booleans()) else frame
    header = built.header
    if data.draw(st.booleans()):
        header = VnetHeader(
            flags=data.draw(st.integers(0, 3)),
            gso_type=data.draw(st.sampled_from([0, 1, 3, 4, 5, 0x81, 0x84, 0x85, 6])),
            hdr_len=data.draw(st.integers(0, 65535)),
            gso_size=data.draw(st.sampled_from([0, 1, 7, 536, 1448, 65535])),
            csum_start=data.draw(st.sampled_from([0, 14, built.l4, built.l4 + 1, 65535])),
            csum_offset=data.draw(st.sampled_from([0, 6, 8, 16, 17, 65535])),
        )
    return header, bytes(frame)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(
    st.one_of(
        kernel_packets(gso=True, payload_max=600), kernel_packets(gso=False, payload_max=600)
    ),
    st.data(),
)
def test_any_input_gives_frames_or_a_drop_and_the_shim_agrees(
    built: Built, data: st.DataObject
) -> None:
    header, frame = mutated(built, data)
    result = complete_offload(header, frame)
    assert isinstance(result, (list, OffloadDrop))
    assert native_complete(header, frame, chunk=data.draw(st.integers(1, 5))) == python_complete(
        header, frame
    )


@given(st.binary(min_size=VNET_HDR_BYTES, max_size=200))
def test_random_bytes_never_raise(packet: bytes) -> None:
    header = VnetHeader.parse(packet)
    result = complete_offload(header, packet[VNET_HDR_BYTES:])
    assert isinstance(result, (list, OffloadDrop))
    assert native_complete(header, packet[VNET_HDR_BYTES:]) == python_complete(
        header, packet[VNET_HDR_BYTES:]
    )

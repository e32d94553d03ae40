"""Frames a test client speaks (ARP, ICMP echo) and raw LAN-side sockets."""

from __future__ import annotations

import ipaddress
import socket
import struct

ETH_P_ALL = 0x0003
TEST_ETHERTYPE = 0x88B5
BROADCAST = b"\xff" * 6
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_request(source_mac: bytes, source_ip: str, target_ip: str) -> bytes:
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, source_mac, ip4(source_ip),
                      bytes(6), ip4(target_ip))  # fmt: skip
    return (BROADCAST + source_mac + b"\x08\x06" + arp).ljust(60, b"\x00")


def arp_reply_from(frame: bytes, ip: str) -> bytes | None:
    """The sender MAC of an ARP reply for ``ip``, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    operation, sender_mac, sender_ip = struct.unpack_from("!H6s4s", frame, 20)
    return sender_mac if operation == 2 and sender_ip == ip4(ip) else None


def icmp_echo(source_mac: bytes, destination_mac: bytes, source_ip: str, destination_ip: str,
              sequence: int) -> bytes:  # fmt: skip
    payload = b"lanparty ping".ljust(32, b".")
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x1A2B, sequence) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), sequence, 0, 64, 1, 0,
                         ip4(source_ip), ip4(destination_ip))  # fmt: skip
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return destination_mac + source_mac + b"\x08\x00" + header + icmp


def is_echo_reply(frame: bytes, from_ip: str, sequence: int) -> bool:
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 1:
        return False
    ihl = (frame[14] & 0x0F) * 4
    icmp = 14 + ihl
    return (
        frame[26:30] == ip4(from_ip)
        and frame[icmp] == 0
        and struct.unpack_from("!H", frame, icmp + 6)[0] == sequence
    )


def marked_frame(destination: bytes, source: bytes, payload: bytes, size: int = 60) -> bytes:
    return (destination + source + TEST_ETHERTYPE.to_bytes(2, "big") + payload).ljust(size, b"\x00")


def raw_socket(interface: str, *, promiscuous: bool = False) -> socket.socket:
    """A raw packet socket on ``interface`` in the current namespace (all ethertypes)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((interface, 0))
    if promiscuous:
        index = socket.if_nametoindex(interface)
        membership = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket) -> list[bytes]:
    """Frames that arrived on the wire (not our own sends), without blocking."""
    frames: list[bytes] = []
    while True:
        try:
            data, address = sock.recvfrom(65535)
        except BlockingIOError:
            return frames
        if address[2] != socket.PACKET_OUTGOING:
            frames.append(data)

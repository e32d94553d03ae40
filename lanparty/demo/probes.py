"""What the demo and the end-to-end tests do across the bridge, from Python sockets.

Each probe makes its sockets inside a namespace (``inside``) and then runs
in the calling thread, bounded in time. No ping, DHCP client or netcat
binary is needed: ICMP echo on raw sockets, a four-message DHCP exchange
(DISCOVER, OFFER, REQUEST, ACK) with the real DHCP server on the LAN, UDP
broadcasts like a game's server announcement, TCP with a SHA-256 check.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs

from lanparty.demo.netns import inside

_SO_BINDTODEVICE = 25


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def ping_rtts(
    namespace: str, address: str, count: int, *, interval_s: float = 0.0, timeout_s: float = 2
) -> list[float | None]:
    """``count`` ICMP echoes from ``namespace`` (IPv4, or IPv6 with ``%scope``); RTTs in s.

    None for an echo not answered within ``timeout_s``. One echo in flight
    at a time, the next ``interval_s`` after the previous was sent.
    """
    ipv6 = ":" in address
    with inside(namespace):
        if ipv6:
            target = socket.getaddrinfo(address, 0, socket.AF_INET6)[0][4]
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        else:
            target = (address, 0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    request, reply = (128, 129) if ipv6 else (8, 0)
    identifier = secrets.randbits(16)
    rtts: list[float | None] = []
    try:
        for sequence in range(1, count + 1):
            sent_at = time.monotonic()
            header = struct.pack("!BBHHH", request, 0, 0, identifier, sequence) + b"lanparty"
            if not ipv6:  # the kernel fills in ICMPv6 checksums itself
                header = header[:2] + struct.pack("!H", _checksum(header)) + header[4:]
            sock.sendto(header, target)
            rtts.append(_await_echo(sock, ipv6, (reply, identifier, sequence), timeout_s))
            pause = interval_s - (time.monotonic() - sent_at)
            if pause > 0:
                time.sleep(pause)
    finally:
        sock.close()
    return rtts


def _await_echo(
    sock: socket.socket, ipv6: bool, wanted: tuple[int, int, int], timeout_s: float
) -> float | None:
    """The RTT of the echo reply ``wanted`` (type, identifier, sequence), or None."""
    started = time.monotonic()
    deadline = started + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            packet = sock.recv(2048)
        except TimeoutError:
            return None
        icmp = packet if ipv6 else packet[(packet[0] & 0x0F) * 4 :]
        if len(icmp) < 8:
            continue
        kind, _, _, got_id, got_sequence = struct.unpack("!BBHHH", icmp[:8])
        if (kind, got_id, got_sequence) == wanted:
            return time.monotonic() - started
    return None


def ping(namespace: str, address: str, count: int, timeout_s: float = 2) -> bool:
    """Whether all ``count`` echoes were answered."""
    return all(rtt is not None for rtt in ping_rtts(namespace, address, count, timeout_s=timeout_s))


def wait_for_ping(namespace: str, address: str, timeout_s: float = 30) -> float:
    """Ping until one echo is answered; the seconds that took. ``TimeoutError`` if none."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if ping(namespace, address, 1, timeout_s=1):
            return time.monotonic() - started
    raise TimeoutError(f"no answer from {address} within {timeout_s} s")


# DHCP (RFC 2131 / 2132), client side

_DHCP_MAGIC = b"\x63\x82\x53\x63"
_DISCOVER, _OFFER, _REQUEST, _ACK, _NAK = 1, 2, 3, 5, 6
_OPT_MASK, _OPT_ROUTER, _OPT_REQUESTED, _OPT_LEASE, _OPT_TYPE, _OPT_SERVER = 1, 3, 50, 51, 53, 54
_OPT_PARAMETERS, _OPT_END = 55, 255


@attrs.frozen
class Lease:
    address: ipaddress.IPv4Interface
    router: ipaddress.IPv4Address | None
    server: ipaddress.IPv4Address
    lease_s: int


def _dhcp_message(kind: int, xid: int, mac: bytes, options: dict[int, bytes]) -> bytes:
    fixed = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4),
                        bytes(4), bytes(4), bytes(4), mac.ljust(16, b"\0"), b"", b"")  # fmt: skip
    body = bytes([_OPT_TYPE, 1, kind])
    for code, value in options.items():
        body += bytes([code, len(value)]) + value
    return fixed + _DHCP_MAGIC + body + bytes([_OPT_END])


def _dhcp_parse(packet: bytes, xid: int) -> tuple[int, bytes, dict[int, bytes]] | None:
    """(message type, yiaddr, options) of a reply to ``xid``, None for anything else."""
    if len(packet) < 240 or packet[0] != 2 or packet[236:240] != _DHCP_MAGIC:
        return None
    if struct.unpack_from("!I", packet, 4)[0] != xid:
        return None
    options: dict[int, bytes] = {}
    at = 240
    while at < len(packet) and packet[at] != _OPT_END:
        if packet[at] == 0:
            at += 1
            continue
        if at + 2 > len(packet):
            return None
        code, length = packet[at], packet[at + 1]
        options[code] = packet[at + 2 : at + 2 + length]
        at += 2 + length
    kind = options.get(_OPT_TYPE, b"\0")[0]
    return kind, packet[16:20], options


def obtain_lease(namespace: str, interface: str, mac: bytes, timeout_s: float = 30) -> Lease:
    """DISCOVER, OFFER, REQUEST, ACK on ``interface`` (which has no address yet).

    Only asks: configuring the address and routes is the caller's job (as a
    DHCP client's script would do it). ``TimeoutError`` when no server answered.
    """
    with inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, interface.encode())
        sock.bind(("0.0.0.0", 68))
    xid = secrets.randbits(32)
    deadline = time.monotonic() + timeout_s
    parameters = {_OPT_PARAMETERS: bytes([_OPT_MASK, _OPT_ROUTER, _OPT_LEASE, _OPT_SERVER])}
    try:
        offer = _exchange(sock, _dhcp_message(_DISCOVER, xid, mac, parameters), xid, deadline,
                          {_OFFER})  # fmt: skip
        kind, offered, options = offer
        request = _dhcp_message(
            _REQUEST, xid, mac,
            {**parameters, _OPT_REQUESTED: offered, _OPT_SERVER: options[_OPT_SERVER]},
        )  # fmt: skip
        kind, address, options = _exchange(sock, request, xid, deadline, {_ACK, _NAK})
        if kind == _NAK:
            raise RuntimeError("the DHCP server refused the address it had offered (NAK)")
    finally:
        sock.close()
    mask = ipaddress.IPv4Address(options.get(_OPT_MASK, b"\xff\xff\xff\x00"))
    router = options.get(_OPT_ROUTER)
    return Lease(
        address=ipaddress.IPv4Interface(f"{ipaddress.IPv4Address(address)}/{mask}"),
        router=ipaddress.IPv4Address(router[:4]) if router else None,
        server=ipaddress.IPv4Address(options[_OPT_SERVER]),
        lease_s=struct.unpack("!I", options.get(_OPT_LEASE, b"\0\0\0\0"))[0],
    )


def _exchange(
    sock: socket.socket, message: bytes, xid: int, deadline: float, wanted: set[int]
) -> tuple[int, bytes, dict[int, bytes]]:
    """Broadcast ``message`` every 2 s until a reply of a ``wanted`` type arrives."""
    while (remaining := deadline - time.monotonic()) > 0:
        sock.sendto(message, ("255.255.255.255", 67))
        resend_at = time.monotonic() + min(2.0, remaining)
        while (wait := resend_at - time.monotonic()) > 0:
            sock.settimeout(wait)
            try:
                packet = sock.recv(4096)
            except TimeoutError:
                break
            parsed = _dhcp_parse(packet, xid)
            if parsed is not None and parsed[0] in wanted:
                return parsed
    raise TimeoutError("no DHCP server answered")


# UDP broadcast, as a game announces its server on the LAN

DISCOVERY_PORT = 27015


@contextmanager
def broadcast_listener(namespace: str, port: int = DISCOVERY_PORT) -> Iterator[socket.socket]:
    """A UDP socket in ``namespace`` on ``port`` of every address, broadcasts included."""
    with inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
    try:
        yield sock
    finally:
        sock.close()


def announce(namespace: str, source: str, message: bytes, port: int = DISCOVERY_PORT) -> None:
    """One datagram to 255.255.255.255 from ``source``: it leaves by that address's interface."""
    with inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind((source, 0))
        sock.sendto(message, ("255.255.255.255", port))


def hear_announcement(
    listener: socket.socket,
    expected: bytes,
    repeat: Callable[[], None],
    *,
    timeout_s: float = 10,
) -> str:
    """Wait for ``expected`` on ``listener``, calling ``repeat`` (the announcer) every 0.5 s.

    Returns the sender's address; ``TimeoutError`` if it never came.
    """
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        repeat()
        listener.settimeout(min(0.5, remaining))
        try:
            while True:
                data, (sender, _) = listener.recvfrom(2048)
                if data == expected:
                    return str(sender)
        except TimeoutError:
            continue
    raise TimeoutError(f"no broadcast {expected!r} within {timeout_s} s")


# TCP, a bulk transfer checked end to end


@attrs.frozen
class Transfer:
    sent_bytes: int
    received_bytes: int
    sent_sha256: str
    received_sha256: str
    seconds: float

    @property
    def intact(self) -> bool:
        return self.sent_bytes == self.received_bytes and self.sent_sha256 == self.received_sha256


def tcp_transfer(
    sender_ns: str, receiver_ns: str, receiver_ip: str, size: int, *, port: int = 5001,
    timeout_s: float = 120, on_progress: Callable[[int], None] | None = None,
) -> Transfer:  # fmt: skip
    """``size`` random bytes over TCP from ``sender_ns`` to ``receiver_ip`` (``receiver_ns``).

    ``on_progress`` is called with the bytes received so far after each read.
    """
    with inside(receiver_ns):
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((receiver_ip, port))
        server.listen(1)
    with inside(sender_ns):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    payload = secrets.token_bytes(size)
    received = hashlib.sha256()
    received_bytes = 0
    failure: list[BaseException] = []

    def send() -> None:
        try:
            client.settimeout(timeout_s)
            client.connect((receiver_ip, port))
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
        except OSError as exc:
            failure.append(exc)

    started = time.monotonic()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        server.settimeout(timeout_s)
        connection, _ = server.accept()
        with connection:
            connection.settimeout(max(1.0, timeout_s - (time.monotonic() - started)))
            while chunk := connection.recv(1 << 20):
                received.update(chunk)
                received_bytes += len(chunk)
                if on_progress is not None:
                    on_progress(received_bytes)
        seconds = time.monotonic() - started
    finally:
        sender.join(timeout=timeout_s)
        client.close()
        server.close()
    if failure:
        raise failure[0]
    return Transfer(
        sent_bytes=size,
        received_bytes=received_bytes,
        sent_sha256=hashlib.sha256(payload).hexdigest(),
        received_sha256=received.hexdigest(),
        seconds=seconds,
    )

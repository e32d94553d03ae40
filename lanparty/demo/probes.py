"""What the demo and the end-to-end tests do across the bridge, from Python sockets.

Each probe makes its sockets inside a namespace (``inside``) and then runs
in the calling thread, bounded in time. No ping, DHCP client or netcat
binary is needed: ICMP echo on raw sockets, a four-message DHCP exchange
(DISCOVER, OFFER, REQUEST, ACK, by the client's own ``lanparty.client.dhcp``)
with the real DHCP server on the LAN, UDP
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

from lanparty.client import dhcp
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


# DHCP: another DHCP client on the TAP, driving the client's own state machine


@attrs.frozen
class Lease:
    address: ipaddress.IPv4Interface
    server: ipaddress.IPv4Address
    dns_servers: tuple[ipaddress.IPv4Address, ...]
    lease_s: float


def obtain_lease(namespace: str, interface: str, mac: bytes, timeout_s: float = 30) -> Lease:
    """DISCOVER, OFFER, REQUEST, ACK on ``interface``, with ``lanparty.client.dhcp``.

    Only asks (the client itself takes the TAP's address; this is for a
    test that wants to see what the LAN's server says). ``TimeoutError``
    when no server answered.
    """
    with inside(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, interface.encode())
        sock.bind(("0.0.0.0", dhcp.CLIENT_PORT))
    client = dhcp.DhcpClient(mac)
    deadline = time.monotonic() + timeout_s
    client.start(time.monotonic())
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            for datagram in client.datagrams_to_send():
                sock.sendto(datagram.payload, (str(datagram.destination), dhcp.SERVER_PORT))
            for event in client.events():
                if isinstance(event, dhcp.LeaseBound):
                    lease = event.lease
                    return Lease(lease.address, lease.server, lease.dns_servers, lease.lease_s)
            timer = client.next_timer()
            sock.settimeout(max(0.01, min(remaining, (timer or deadline) - time.monotonic())))
            try:
                client.receive(sock.recv(4096), time.monotonic())
            except TimeoutError:
                client.handle_timer(time.monotonic())
    finally:
        sock.close()
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

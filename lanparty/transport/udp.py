"""The UDP socket under the QUIC driver: drain on receive, batch on send.

One wake-up reads every datagram the socket holds (up to a cap) and one
flush writes a connection's whole output. Where qh3's quinn-udp binding is
available (Unix), receives use recvmmsg with GRO and sends use GSO; the
plain path uses non-blocking ``recvfrom``/``sendto``. Both never block: a
full socket buffer drops the rest of the batch and counts it, as a router
would, and QUIC recovers what needs recovering.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import socket
from collections.abc import Iterator
from typing import Any

import trio

Address = tuple[Any, ...]
Datagram = tuple[bytes, Address]

# Enough to drain a busy socket without starving other tasks for long.
RECEIVE_BATCH_LIMIT = 256
# Messages one recvmmsg of qh3's quinn-udp binding asks for (qh3 2.1.0):
# fewer back means the socket was empty, so no second call to learn it.
_BATCH_RECEIVE_MESSAGES = 32
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024

_TRANSIENT_SEND_ERRORS = {
    errno.EAGAIN,
    errno.ENOBUFS,
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EMSGSIZE,
}


def runs_by_address(datagrams: list[Datagram]) -> Iterator[tuple[Address, list[bytes]]]:
    """Consecutive datagrams with the same address, as (address, payloads) runs."""
    start = 0
    while start < len(datagrams):
        address = datagrams[start][1]
        end = start + 1
        while end < len(datagrams) and datagrams[end][1] == address:
            end += 1
        yield address, [data for data, _ in datagrams[start:end]]
        start = end


def _load_batch_state() -> Any:
    try:
        return importlib.import_module("qh3._hazmat").UdpSocketState
    except (ImportError, AttributeError):
        return None


def _set_buffer(sock: socket.socket, forced_option: str, option: int) -> None:
    """Ask for big socket buffers; past net.core.rmem_max only root gets them."""
    forced = getattr(socket, forced_option, None)
    if forced is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER_BYTES)
        except OSError:
            pass
        else:
            return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)


class UdpSocket:
    """A bound, non-blocking UDP socket with batched receive and send."""

    def __init__(self, sock: socket.socket, *, batch_io: bool = True) -> None:
        sock.setblocking(False)
        _set_buffer(sock, "SO_RCVBUFFORCE", socket.SO_RCVBUF)
        _set_buffer(sock, "SO_SNDBUFFORCE", socket.SO_SNDBUF)
        self._sock = sock
        state_class = _load_batch_state() if batch_io else None
        self._batch: Any = state_class(sock.fileno()) if state_class is not None else None
        self.send_errors = 0

    @classmethod
    def bind(cls, host: str, port: int, *, batch_io: bool = True) -> UdpSocket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return cls(sock, batch_io=batch_io)

    @property
    def batched(self) -> bool:
        return self._batch is not None

    @property
    def family(self) -> int:
        return int(self._sock.family)

    def local_address(self) -> Address:
        return tuple(self._sock.getsockname())

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self._sock)

    def receive_batch(self) -> list[Datagram]:
        """Every datagram waiting, up to ``RECEIVE_BATCH_LIMIT``; never blocks."""
        if self._batch is not None:
            received: list[Datagram] = []
            while len(received) < RECEIVE_BATCH_LIMIT:
                try:
                    more = self._batch.recv()
                except OSError:
                    break
                received.extend(more)
                if len(more) < _BATCH_RECEIVE_MESSAGES:
                    break
            return received
        batch: list[Datagram] = []
        recvfrom = self._sock.recvfrom
        while len(batch) < RECEIVE_BATCH_LIMIT:
            try:
                data, address = recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # ICMP errors from earlier sends surface here on some systems.
                continue
            batch.append((data, address))
        return batch

    def send_batch(self, datagrams: list[Datagram]) -> int:
        """Send without blocking; return how many datagrams were dropped."""
        if not datagrams:
            return 0
        if self._batch is not None:
            return self._send_batched(datagrams)
        dropped = 0
        sendto = self._sock.sendto
        for index, (data, address) in enumerate(datagrams):
            try:
                sendto(data, address)
            except BlockingIOError:
                return len(datagrams) - index
            except OSError as exc:
                if exc.errno not in _TRANSIENT_SEND_ERRORS:
                    raise
                self.send_errors += 1
                dropped += 1
        return dropped

    def _send_batched(self, datagrams: list[Datagram]) -> int:
        batch = self._batch
        dropped = 0
        # GSO sends one run of datagrams to one address per syscall.
        for address, run in runs_by_address(datagrams):
            try:
                dropped += len(run) - int(batch.send(run, address))
            except OSError as exc:
                if exc.errno not in _TRANSIENT_SEND_ERRORS:
                    raise
                self.send_errors += 1
                dropped += len(run) - int(getattr(exc, "datagrams_sent", 0) or 0)
        return dropped

    def close(self) -> None:
        self._sock.close()

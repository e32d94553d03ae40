"""The gateway's packet I/O: an AF_PACKET raw socket on the wired LAN interface.

Frames move in batches: one Trio wake-up, one ``receive_batch`` of every
frame waiting (up to ``BATCH_FRAMES``). With the C shim (``lanparty._native``,
built from ``native/`` by the package install) a batch is one ``recvmmsg`` or
``sendmmsg`` system call; without it, a loop of ``recvfrom`` / ``send``.

What the socket never returns: frames we sent ourselves (the kernel's
``PACKET_IGNORE_OUTGOING`` where it has it, and the ``PACKET_OUTGOING``
check anyway) and truncated frames (longer than ``MAX_FRAME_BYTES``;
counted in ``truncated_frames``).

Linux only; importing this module elsewhere works, opening a socket raises
``ConfigError``.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import socket
import struct
import sys
from typing import Any

import trio

from lanparty.errors import ConfigError, HostNetworkError

__all__ = ["BATCH_FRAMES", "MAX_FRAME_BYTES", "PacketSocket", "native_available"]

# The largest frame received whole (a 9000-byte jumbo frame with its headers
# and tags fits); a longer one is dropped and counted in truncated_frames.
MAX_FRAME_BYTES = 9216
# Frames per receive_batch call, and per sendmmsg system call.
BATCH_FRAMES = 64
# Kernel socket buffers asked for (SO_RCVBUFFORCE as root, else capped by
# net.core.rmem_max / wmem_max): room for a burst of ~2000 full frames.
BUFFER_BYTES = 4 * 1024 * 1024

# From <linux/if_ether.h>, <linux/if_packet.h>, <asm-generic/socket.h>,
# <linux/if_arp.h>; the socket module lacks most of them.
_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_PROMISC = 1
_PACKET_IGNORE_OUTGOING = 23
_PACKET_OUTGOING = 4
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_ARPHRD_ETHER = 1

# Send errors that refuse one frame (it is skipped; the next ones still go)
# and errors that mean "the queue is full right now" (the rest is dropped).
_FRAME_REFUSED = frozenset({errno.EMSGSIZE, errno.EINVAL})
_QUEUE_FULL = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR})


def _load_native() -> Any | None:
    """The cffi module of the C shim, or None when it was not built."""
    try:
        return importlib.import_module("lanparty._native")
    except ImportError:
        return None


def native_available() -> bool:
    """Whether the C shim was built and can be loaded."""
    return sys.platform == "linux" and _load_native() is not None


class PacketSocket:
    """AF_PACKET raw socket on one interface: promiscuous, batched, never our own sends."""

    interface: str
    ifindex: int
    interface_mac: bytes
    native: bool
    truncated_frames: int

    def __init__(
        self, sock: socket.socket, interface: str, ifindex: int, mac: bytes, shim: Any | None
    ) -> None:
        """Use ``PacketSocket.open``; ``shim`` is the loaded C module, or None."""
        self._sock = sock
        self.interface = interface
        self.ifindex = ifindex
        self.interface_mac = mac
        self.native = shim is not None
        self.truncated_frames = 0
        self._io: _NativeIO | _PythonIO = (
            _NativeIO(sock.fileno(), shim) if shim is not None else _PythonIO(sock)
        )

    @classmethod
    def open(cls, interface: str, *, native: bool | None = None) -> PacketSocket:
        """Open a promiscuous packet socket on ``interface`` (needs root or CAP_NET_RAW).

        ``native``: None uses the C shim if it was built, else pure Python;
        True requires the shim; False forces pure Python.
        """
        if sys.platform != "linux":  # also tells mypy --platform win32 what follows is Linux
            raise ConfigError(
                f"the gateway needs Linux (AF_PACKET raw sockets); this is {sys.platform}"
            )
        module = None
        if native is not False:
            module = _load_native()
            if module is None and native:
                raise ConfigError(
                    "the native packet I/O shim (lanparty._native) is not built: reinstall "
                    "lanparty with a C compiler present (apt-get install gcc libc6-dev; "
                    "pip install -e .), or run without requiring it (--no-native)"
                )
        ifindex = _interface_index(interface)
        sock = _open_raw_socket(interface, socket.AF_PACKET)
        try:
            mac = _configure(sock, interface, ifindex)
        except BaseException:
            sock.close()
            raise
        return cls(sock, interface, ifindex, mac, module)

    def fileno(self) -> int:
        return self._sock.fileno()

    async def wait_readable(self) -> None:
        """Wait until a frame is waiting (or the socket has an error to report)."""
        await trio.lowlevel.wait_readable(self._sock)

    def receive_batch(self) -> list[bytes]:
        """Every frame waiting, up to ``BATCH_FRAMES``; never blocks; [] if none.

        Raises ``HostNetworkError`` when the interface went down or away.
        """
        try:
            frames, truncated = self._io.receive()
        except OSError as exc:
            raise _host_error(self.interface, "receive from", exc) from exc
        self.truncated_frames += truncated
        return frames

    def send_batch(self, frames: list[bytes]) -> int:
        """Send ``frames`` without blocking; return how many went out.

        The others are dropped: all of the rest when the kernel's queue is
        full, or one frame the kernel refuses (longer than the interface's
        MTU) while the ones after it still go. Raises ``HostNetworkError``
        when the interface went down or away.
        """
        if not frames:
            return 0
        sent, error = self._io.send(frames)
        if error and error not in _FRAME_REFUSED and error not in _QUEUE_FULL:
            exc = OSError(error, os.strerror(error))
            raise _host_error(self.interface, "send on", exc) from exc
        return sent

    def close(self) -> None:
        """Close the socket; the kernel drops its promiscuous membership with it."""
        self._sock.close()

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _NativeIO:
    """Batches through the C shim: one recvmmsg / sendmmsg per batch."""

    def __init__(self, fd: int, module: Any) -> None:
        self._fd = fd
        self._lib, ffi = module.lib, module.ffi
        self._ffi = ffi
        batch = min(BATCH_FRAMES, int(self._lib.LP_MAX_BATCH))
        self._batch = batch
        self._buffer = ffi.new("char[]", batch * MAX_FRAME_BYTES)
        self._view = ffi.buffer(self._buffer)
        self._lengths = ffi.new("uint32_t[]", batch)
        self._kinds = ffi.new("uint8_t[]", batch)
        self._stop_errno = ffi.new("int *")

    def receive(self) -> tuple[list[bytes], int]:
        count: int = self._lib.lp_recv_batch(
            self._fd, self._buffer, MAX_FRAME_BYTES, self._batch, self._lengths, self._kinds
        )
        if count <= 0:
            if count < 0:
                raise OSError(-count, os.strerror(-count))
            return [], 0
        view, frames, truncated, offset = self._view, [], 0, 0
        unpack = self._ffi.unpack
        for length, kind in zip(
            unpack(self._lengths, count), unpack(self._kinds, count), strict=True
        ):
            if kind == _PACKET_OUTGOING:
                pass
            elif length > MAX_FRAME_BYTES:
                truncated += 1
            else:
                frames.append(view[offset : offset + length])
            offset += MAX_FRAME_BYTES
        return frames, truncated

    def send(self, frames: list[bytes]) -> tuple[int, int]:
        lengths = self._ffi.new("uint32_t[]", [len(frame) for frame in frames])
        sent: int = self._lib.lp_send_batch(
            self._fd, b"".join(frames), lengths, len(frames), self._stop_errno
        )
        return sent, int(self._stop_errno[0])


class _PythonIO:
    """The same batches as a loop of system calls, when the shim is not built."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def receive(self) -> tuple[list[bytes], int]:
        receive = self._sock.recvfrom
        frames: list[bytes] = []
        truncated = 0
        for _ in range(BATCH_FRAMES):
            try:
                # One byte more than the largest frame kept: a frame that fills it was cut.
                frame, address = receive(MAX_FRAME_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                break
            if address[2] == _PACKET_OUTGOING:
                continue
            if len(frame) > MAX_FRAME_BYTES:
                truncated += 1
            else:
                frames.append(frame)
        return frames, truncated

    def send(self, frames: list[bytes]) -> tuple[int, int]:
        send = self._sock.send
        sent = error = 0
        for frame in frames:
            try:
                send(frame)
            except OSError as exc:
                error = exc.errno or errno.EIO
                if error in _FRAME_REFUSED:
                    continue
                break
            sent += 1
        return sent, error


def _interface_index(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except (OSError, ValueError):
        pass
    try:
        names = sorted(name for _, name in socket.if_nameindex())
    except OSError:
        names = []
    raise ConfigError(
        f"no network interface named {interface!r}; these exist: {', '.join(names) or 'none'}"
    )


def _open_raw_socket(interface: str, family: int) -> socket.socket:
    try:
        return socket.socket(family, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    except PermissionError as exc:
        raise ConfigError(
            f"opening a raw packet socket on {interface} is not allowed: run as root or "
            "grant CAP_NET_RAW (setcap cap_net_raw+ep on the Python interpreter, or "
            "AmbientCapabilities=CAP_NET_RAW in a systemd unit)"
        ) from exc
    except OSError as exc:
        raise HostNetworkError(
            f"cannot open a raw packet socket on {interface}: {exc.strerror}"
        ) from exc


def _configure(sock: socket.socket, interface: str, ifindex: int) -> bytes:
    """Bind, go promiscuous, ignore our own sends, size buffers; return the MAC."""
    try:
        sock.bind((interface, _ETH_P_ALL))
        _, _, _, hardware_type, mac = sock.getsockname()
        if hardware_type != _ARPHRD_ETHER or len(mac) != 6:
            raise ConfigError(
                f"{interface} is not an Ethernet interface (hardware type {hardware_type}); "
                "the gateway needs the wired LAN's interface"
            )
        membership = struct.pack("iHH8s", ifindex, _PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(_SOL_PACKET, _PACKET_ADD_MEMBERSHIP, membership)
        # Before Linux 4.20 the option is missing: the PACKET_OUTGOING check does the work.
        with contextlib.suppress(OSError):
            sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
        for forced, plain in (
            (_SO_RCVBUFFORCE, socket.SO_RCVBUF),
            (_SO_SNDBUFFORCE, socket.SO_SNDBUF),
        ):
            try:
                sock.setsockopt(socket.SOL_SOCKET, forced, BUFFER_BYTES)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER_BYTES)
        sock.setblocking(False)
    except OSError as exc:
        raise _host_error(interface, "set up a packet socket on", exc) from exc
    return bytes(mac)


def _host_error(interface: str, action: str, exc: OSError) -> HostNetworkError:
    if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
        return HostNetworkError(
            f"cannot {action} {interface}: the interface is down or was removed "
            f"({exc.strerror}); bring it up (ip link set {interface} up) and restart"
        )
    return HostNetworkError(f"cannot {action} {interface}: {exc.strerror or exc}")

"""The gateway's packet I/O: an AF_PACKET raw socket on the wired LAN interface.

Frames move in batches (``lanparty.batchio.BatchIO``): one Trio wake-up,
one ``read_batch`` of every frame waiting (up to ``BATCH_FRAMES``). With
the C shim (``lanparty._native``, built from ``native/`` by the package
install) a batch is one ``recvmmsg`` or ``sendmmsg`` system call;
without it, a loop of ``recvfrom_into`` / ``sendmsg``.

Why ``PACKET_VNET_HDR``: a packet socket is handed the kernel's buffers as
the sender built them. A frame from a veth or tap (a container, a VM, a
test namespace) may still wait for work the sending kernel left to a network
card that never ran: its TCP/UDP checksum holds only the pseudo-header sum,
or it is a TSO/GSO super-packet of up to 64 KiB. Bridged as they are, the
far host drops them (bad checksum) or no link carries them. With the option
set, the kernel puts a ``struct virtio_net_hdr`` in front of each packet
that says what is left to do, and the socket does it
(``lanparty.proto.offload``; ``lp_complete_offload`` in the shim): the
checksum is completed, a super-packet is cut into segments. Every frame
sent then needs such a header too (an empty one). Frames from a real NIC
arrive complete and cost what they did before.

What the socket never returns: frames we sent ourselves (the kernel's
``PACKET_IGNORE_OUTGOING`` where it has it, and the ``PACKET_OUTGOING``
check anyway), truncated frames (longer than ``MAX_FRAME_BYTES``, whole or
after segmentation; counted in ``truncated_frames``) and packets whose
offload metadata cannot be honoured (counted by reason in ``offload_drops``).

Linux only; importing this module elsewhere works, opening a socket raises
``ConfigError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import trio

from lanparty._native_loader import native_available
from lanparty.batchio import BATCH_FRAMES, select_shim
from lanparty.capabilities import Capability, lacks, missing_capability
from lanparty.errors import ConfigError, HostNetworkError
from lanparty.proto.offload import (
    NO_OFFLOAD,
    OFFLOAD_DROP_CODES,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VNET_HDR_BYTES,
    OffloadDrop,
    OffloadDropReason,
    VnetHeader,
    complete_offload,
)

__all__ = [
    "BATCH_FRAMES",
    "MAX_FRAME_BYTES",
    "MAX_PACKET_BYTES",
    "PacketSocket",
    "native_available",
]

# The largest frame handed out (a 9000-byte jumbo frame with its headers and
# tags fits); a longer one, whole or a segment, is dropped and counted in
# truncated_frames.
MAX_FRAME_BYTES = 9216
# The largest packet read whole: a GSO super-packet (64 KiB). A longer one
# (BIG TCP) is counted in truncated_frames too.
MAX_PACKET_BYTES = 65536
# BATCH_FRAMES (lanparty.batchio): frames per read_batch call, and per sendmmsg system call.
# Kernel socket buffers asked for (SO_RCVBUFFORCE as root, else capped by
# net.core.rmem_max / wmem_max): room for a burst of ~2000 full frames.
BUFFER_BYTES = 4 * 1024 * 1024

# From <linux/if_ether.h>, <linux/if_packet.h>, <asm-generic/socket.h>,
# <linux/if_arp.h>; the socket module lacks most of them.
_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_PROMISC = 1
_PACKET_VNET_HDR = 15
_PACKET_IGNORE_OUTGOING = 23
_PACKET_OUTGOING = 4
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_ARPHRD_ETHER = 1

# Receive slots of the shim are this far apart: a few cache lines more than
# a packet, so that the frames of a batch do not all start in the same cache set.
_SLOT_STRIDE = MAX_PACKET_BYTES + 5 * 64
# What goes in front of every frame sent: nothing for the kernel to do.
_NO_OFFLOAD_HEADER = NO_OFFLOAD.pack()

# Send errors that refuse one frame (it is skipped; the next ones still go)
# and errors that mean "the queue is full right now" (the rest is dropped).
_FRAME_REFUSED = frozenset({errno.EMSGSIZE, errno.EINVAL})
_QUEUE_FULL = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR})


class PacketSocket:
    """AF_PACKET raw socket on one interface: promiscuous, batched, never our own sends."""

    interface: str
    ifindex: int
    interface_mac: bytes
    native: bool

    def __init__(
        self, sock: socket.socket, interface: str, ifindex: int, mac: bytes, shim: Any | None
    ) -> None:
        """Use ``PacketSocket.open``; ``shim`` is the loaded C module, or None."""
        self._sock = sock
        self.interface = interface
        self.ifindex = ifindex
        self.interface_mac = mac
        self.native = shim is not None
        self._io: _NativeIO | _PythonIO = (
            _NativeIO(sock.fileno(), shim) if shim is not None else _PythonIO(sock)
        )

    @classmethod
    def open(cls, interface: str, *, native: bool | None = None) -> PacketSocket:
        """Open a promiscuous packet socket on ``interface`` (needs CAP_NET_RAW).

        ``native``: None uses the C shim if it was built, else pure Python;
        True requires the shim; False forces pure Python.
        """
        if sys.platform != "linux":  # also tells mypy --platform win32 what follows is Linux
            raise ConfigError(
                f"the gateway needs Linux (AF_PACKET raw sockets); this is {sys.platform}"
            )
        module = select_shim(
            native, device="packet I/O", without="run without requiring it (--no-native)"
        )
        ifindex = _interface_index(interface)
        sock = _open_raw_socket(interface, socket.AF_PACKET)
        try:
            mac = _configure(sock, interface, ifindex)
        except BaseException:
            sock.close()
            raise
        return cls(sock, interface, ifindex, mac, module)

    @property
    def truncated_frames(self) -> int:
        """Frames dropped for being longer than ``MAX_FRAME_BYTES`` (whole or a segment)."""
        return self._io.truncated()

    @property
    def segmented_packets(self) -> int:
        """GSO super-packets received and cut into segments."""
        return self._io.segmented()

    @property
    def checksummed_frames(self) -> int:
        """Frames received whole whose TCP/UDP/SCTP checksum the socket completed."""
        return self._io.checksummed()

    @property
    def offload_drops(self) -> dict[OffloadDropReason, int]:
        """Packets dropped because their offload metadata could not be honoured, by reason."""
        return self._io.offload_drops()

    @property
    def offload_dropped(self) -> int:
        """All of ``offload_drops``."""
        return sum(self._io.offload_drops().values())

    def fileno(self) -> int:
        return self._sock.fileno()

    async def wait_readable(self) -> None:
        """Wait until a frame is waiting (or the socket has an error to report).

        Segments of a packet already read that the last batch had no room
        for count as waiting.
        """
        if self._io.pending():
            await trio.lowlevel.checkpoint()
            return
        await trio.lowlevel.wait_readable(self._sock)

    def read_batch(self) -> list[bytes]:
        """Every frame waiting, up to ``BATCH_FRAMES``; never blocks; [] if none.

        Raises ``HostNetworkError`` when the interface went down or away.
        """
        try:
            return self._io.receive()
        except OSError as exc:
            raise _host_error(self.interface, "receive from", exc) from exc

    def write_batch(self, frames: Sequence[bytes]) -> int:
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
    """Batches through the C shim: one recvmmsg / sendmmsg per batch.

    The shim reads up to ``BATCH_FRAMES`` packets into receive slots of
    ``MAX_PACKET_BYTES`` (one GSO super-packet fits) and hands out frames by
    offset into one buffer: a complete frame where it landed, segments from
    output slots after the receive slots (native/packet_io.c, ``struct lp_rx``).
    """

    def __init__(self, fd: int, module: Any) -> None:
        self._fd = fd
        self._lib, ffi = module.lib, module.ffi
        self._ffi = ffi
        batch = min(BATCH_FRAMES, int(self._lib.LP_MAX_BATCH))
        self._batch = batch
        size = batch * _SLOT_STRIDE + batch * MAX_FRAME_BYTES
        # Not cleared: the kernel only touches the pages packets fill (4 MiB at most).
        self._buffer = ffi.new_allocator(should_clear_after_alloc=False)("char[]", size)
        self._view = ffi.buffer(self._buffer)
        rx = self._rx = ffi.new("struct lp_rx *")
        rx.buffer = self._buffer
        rx.slot_bytes = MAX_PACKET_BYTES
        rx.slot_stride = _SLOT_STRIDE
        rx.slot_count = batch
        rx.frame_max = MAX_FRAME_BYTES
        rx.out_count = batch
        self._offsets = ffi.new("uint32_t[]", batch)
        self._lengths = ffi.new("uint32_t[]", batch)
        self._stop_errno = ffi.new("int *")

    def receive(self) -> list[bytes]:
        count: int = self._lib.lp_recv_batch(
            self._fd, self._rx, self._batch, self._offsets, self._lengths
        )
        if count <= 0:
            if count < 0:
                raise OSError(-count, os.strerror(-count))
            return []
        view, unpack = self._view, self._ffi.unpack
        return [
            view[offset : offset + length]
            for offset, length in zip(
                unpack(self._offsets, count), unpack(self._lengths, count), strict=True
            )
        ]

    def pending(self) -> bool:
        rx = self._rx
        return bool(rx.next < rx.count)

    def truncated(self) -> int:
        return int(self._rx.truncated)

    def segmented(self) -> int:
        return int(self._rx.segmented)

    def checksummed(self) -> int:
        return int(self._rx.checksummed)

    def offload_drops(self) -> dict[OffloadDropReason, int]:
        dropped = self._rx.dropped
        return {
            reason: int(dropped[code])
            for code, reason in OFFLOAD_DROP_CODES.items()
            if dropped[code]
        }

    def send(self, frames: Sequence[bytes]) -> tuple[int, int]:
        lengths = self._ffi.new("uint32_t[]", [len(frame) for frame in frames])
        sent: int = self._lib.lp_send_batch(
            self._fd, b"".join(frames), lengths, len(frames), self._stop_errno
        )
        return sent, int(self._stop_errno[0])


class _PythonIO:
    """The same batches as a loop of system calls, when the shim is not built."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # Segments the last batch had no room for: the next one starts with them.
        self._pending: list[bytes] = []
        self._truncated = 0
        self._segmented = 0
        self._checksummed = 0
        self._drops: Counter[OffloadDropReason] = Counter()

    def receive(self) -> list[bytes]:
        frames = self._pending[:BATCH_FRAMES]
        del self._pending[:BATCH_FRAMES]
        receive = self._sock.recvfrom
        # One byte more than the largest packet kept: a packet that fills it was cut.
        # (recvfrom costs less than recvfrom_into a kept buffer and a copy out of it.)
        limit = VNET_HDR_BYTES + MAX_PACKET_BYTES + 1
        longest = VNET_HDR_BYTES + MAX_FRAME_BYTES
        for _ in range(BATCH_FRAMES - len(frames)):
            try:
                packet, address = receive(limit)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # The kernel dropped a packet whose GSO type it cannot describe.
                self._drops[OffloadDropReason.KERNEL_REFUSED] += 1
                continue
            if address[2] == _PACKET_OUTGOING:
                continue
            size = len(packet)
            if size == limit:
                self._truncated += 1
            elif packet[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM or packet[1]:  # flags, gso_type
                frames += self._complete(packet)
                if len(frames) > BATCH_FRAMES:
                    self._pending = frames[BATCH_FRAMES:]
                    del frames[BATCH_FRAMES:]
                    break
            elif size > longest:
                self._truncated += 1
            else:
                frames.append(packet[VNET_HDR_BYTES:])
        return frames

    def _complete(self, packet: bytes) -> list[bytes]:
        """The frames of one packet with offloads to complete (none if it is dropped)."""
        header = VnetHeader.parse(packet)
        result = complete_offload(header, packet[VNET_HDR_BYTES:])
        if isinstance(result, OffloadDrop):
            self._drops[result.reason] += 1
            return []
        if header.gso_type:
            self._segmented += 1
        else:
            self._checksummed += 1
        kept = [frame for frame in result if len(frame) <= MAX_FRAME_BYTES]
        self._truncated += len(result) - len(kept)
        return kept

    def pending(self) -> bool:
        return bool(self._pending)

    def truncated(self) -> int:
        return self._truncated

    def segmented(self) -> int:
        return self._segmented

    def checksummed(self) -> int:
        return self._checksummed

    def offload_drops(self) -> dict[OffloadDropReason, int]:
        return {reason: count for reason, count in self._drops.items() if count}

    def send(self, frames: Sequence[bytes]) -> tuple[int, int]:
        # The header joined to the frame: a copy, but sendmsg([header, frame]) costs
        # 0.2 us more per frame in CPython (it builds an iovec and a msghdr).
        send, header = self._sock.send, _NO_OFFLOAD_HEADER
        sent = error = 0
        for frame in frames:
            try:
                send(header + frame)
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
        if lacks(Capability.NET_RAW):
            message = missing_capability(
                f"opening a raw packet socket on {interface}",
                Capability.NET_RAW,
                unit_hint="examples/systemd/lanparty-gateway@.service",
            )
        else:
            message = (
                f"opening a raw packet socket on {interface} was refused although this "
                f"process holds CAP_NET_RAW ({exc.strerror}): a security module, or a "
                "sandbox that forbids AF_PACKET?"
            )
        raise ConfigError(message) from exc
    except OSError as exc:
        raise HostNetworkError(
            f"cannot open a raw packet socket on {interface}: {exc.strerror}"
        ) from exc


def _configure(sock: socket.socket, interface: str, ifindex: int) -> bytes:
    """Bind, ask for vnet headers, go promiscuous, ignore our sends, size buffers; the MAC."""
    try:
        sock.bind((interface, _ETH_P_ALL))
        _, _, _, hardware_type, mac = sock.getsockname()
        if hardware_type != _ARPHRD_ETHER or len(mac) != 6:
            raise ConfigError(
                f"{interface} is not an Ethernet interface (hardware type {hardware_type}); "
                "the gateway needs the wired LAN's interface"
            )
        # Each packet read and written starts with a struct virtio_net_hdr (see above).
        sock.setsockopt(_SOL_PACKET, _PACKET_VNET_HDR, 1)
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

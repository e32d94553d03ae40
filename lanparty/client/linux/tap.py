"""The Linux TAP device: the player's PC sees a LAN interface, lanparty sees its frames.

    with TapDevice.open("lanparty0", mac=identity.mac, mtu=session.mtu) as tap:
        frames = await tap.receive_batch()  # what the PC sends onto the LAN
        tap.write_batch(frames_from_relay)  # what the PC receives from the LAN

``open`` creates the device on ``/dev/net/tun`` (``IFF_TAP | IFF_NO_PI``, so
each read or write is one whole Ethernet frame, no FCS), sets its MAC and
MTU and brings it up, all with ioctls (no ``ip`` subprocess). The device is
not persistent: it disappears when ``close`` closes the file descriptor, or
when the process dies. A name already taken by any interface is refused
(``IFF_TUN_EXCL``), never attached to. Needs root or CAP_NET_ADMIN.

Frames move in batches (``lanparty.batchio.BatchIO``): one Trio wake-up,
one ``read_batch`` of every frame waiting (up to ``BATCH_FRAMES``); one
``write_batch`` of what the relay delivered. A tun fd has no system call
for several frames, so a batch is a loop of ``read()`` / ``write()``
either way; with the C shim (``lanparty._native``: ``lp_tap_read_batch``,
``lp_tap_write_batch``) the loop runs in C and Python makes one call per
batch; without it (not built, or ``native=False``), the same loop runs in
Python with ``os.read`` / ``os.write``. Both behave the same.

Reads land in slots sized from the device's MTU (``read_slot_bytes``): room
for the longest frame the MTU allows with an 802.1Q tag, plus one byte to
tell a frame that did not fit (the kernel cuts it silently). Such a frame
(the MTU was raised behind our back, or stacked VLANs) is dropped and
counted in ``truncated_frames``; the room would not carry it anyway.

While no session carries frames, ``set_discarding(True)`` makes every read
throw its frames away (counted in ``discarded_frames``): the kernel keeps
what the PC sends in the device's queue until it is read, and left there it
would reach the next session as a burst of stale frames. The caller keeps
reading (``receive_batch`` does not return while discarding).

Linux only; importing this module elsewhere works, ``open`` raises
``ConfigError``.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Any

import trio

from lanparty.batchio import BATCH_FRAMES, select_shim
from lanparty.errors import ConfigError, HostNetworkError
from lanparty.proto.mac import InvalidMacError, check_endpoint_mac, format_mac
from lanparty.proto.mtu import max_frame

__all__ = [
    "BATCH_FRAMES",
    "DEFAULT_TAP_NAME",
    "READ_BUFFER_BYTES",
    "TapDevice",
    "read_slot_bytes",
]

DEFAULT_TAP_NAME = "lanparty0"
# The largest frame a TAP device of the largest MTU hands us: a 65535-byte
# MTU, the Ethernet header and a VLAN tag. Reads use slots sized from the
# device's own MTU (read_slot_bytes), never longer than this plus one byte
# rounded up.
READ_BUFFER_BYTES = 65535 + 14 + 4
# Read slots are a multiple of this (a cache line): frames start aligned.
_SLOT_ALIGN = 64
MIN_MTU = 68
MAX_MTU = 65535
# IFNAMSIZ is 16 with the terminating NUL.
MAX_NAME_BYTES = 15

# From <linux/if_tun.h>, <linux/sockios.h>, <linux/if.h>, <linux/if_arp.h>.
_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_IFF_TUN_EXCL = 0x8000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCSIFMTU = 0x8922
_SIOCGIFADDR = 0x8915
_SIOCSIFHWADDR = 0x8924
_IFF_UP = 0x1
_ARPHRD_ETHER = 1
_IFREQ_BYTES = 40

# Write errors that refuse one frame (skipped; the next ones still go) and
# errors that mean "no room right now" (the rest of the batch is dropped).
_FRAME_REFUSED = frozenset({errno.EINVAL, errno.EMSGSIZE})
_QUEUE_FULL = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.EINTR})
# EIO: the device is down; EBADFD: it was deleted (the fd is no longer attached).
_EBADFD = 77  # Linux's number; Python's errno module has no EBADFD on Windows
_GONE = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO, errno.ENETDOWN, _EBADFD})
_NEEDS_ADMIN = (
    "run as root or grant CAP_NET_ADMIN (setcap cap_net_admin+ep on the Python "
    "interpreter, or AmbientCapabilities=CAP_NET_ADMIN in a systemd unit)"
)


def read_slot_bytes(mtu: int) -> int:
    """The bytes of one read slot of a TAP device with this MTU.

    Room for its longest frame (MTU, Ethernet header, one 802.1Q tag) and
    one byte more: a read that fills the whole slot was cut. Rounded up to
    a multiple of 64 bytes.
    """
    return (max_frame(mtu) + 1 + _SLOT_ALIGN - 1) // _SLOT_ALIGN * _SLOT_ALIGN


class TapDevice:
    """An open, up TAP device; frames in and out in batches, never blocking."""

    name: str
    mac: bytes
    mtu: int
    # Frames write_batch did not write: refused one by one, or left when the queue was full.
    dropped_frames: int
    # Frames read that were longer than a read slot holds (see read_slot_bytes): dropped.
    truncated_frames: int
    # Frames read and thrown away while discarding (see set_discarding).
    discarded_frames: int
    # Whether batches go through the C shim (else the pure-Python loop).
    native: bool

    def __init__(self, fd: int, name: str, mac: bytes, mtu: int, shim: Any | None = None) -> None:
        """Use ``TapDevice.open``; ``fd`` is the open, configured, non-blocking tun fd.

        ``shim`` is the loaded C module (``lanparty._native``), or None for pure Python.
        """
        self._fd = fd
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.dropped_frames = 0
        self.truncated_frames = 0
        self.discarded_frames = 0
        self._discarding = False
        self.native = shim is not None
        slot = read_slot_bytes(mtu)
        self._io: _NativeIO | _PythonIO = (
            _NativeIO(shim, slot) if shim is not None else _PythonIO(slot)
        )
        # A read error that came after frames of the same batch: raised on the next read.
        self._read_error: OSError | None = None

    @classmethod
    def open(
        cls, name: str = DEFAULT_TAP_NAME, *, mac: bytes, mtu: int, native: bool | None = None
    ) -> TapDevice:
        """Create TAP device ``name`` with ``mac`` and ``mtu`` and bring it up.

        ``native``: None uses the C shim if it was built, else pure Python;
        True requires the shim; False forces pure Python.
        """
        if sys.platform != "linux":  # also tells mypy --platform win32 what follows is Linux
            raise ConfigError(f"the Linux TAP device needs Linux; this is {sys.platform}")
        encoded = _check_name(name)
        try:
            check_endpoint_mac(mac, must_be_local=False)
        except InvalidMacError as exc:
            raise ConfigError(f"cannot give the TAP device {name} that MAC: {exc}") from exc
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise ConfigError(f"a TAP device's MTU is {MIN_MTU} to {MAX_MTU}, not {mtu}")
        shim = select_shim(native, device="TAP I/O", without="open the TAP without requiring it")
        fd = _open_tun(name)
        try:
            flags = struct.pack("16sH", encoded, _IFF_TAP | _IFF_NO_PI | _IFF_TUN_EXCL)
            try:
                answer = _ioctl(fd, _TUNSETIFF, flags)
            except OSError as exc:
                raise _create_error(name, exc) from exc
            actual = answer[:16].split(b"\0", 1)[0].decode()
            _configure(actual, mac, mtu)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, actual, mac, mtu, shim)

    def fileno(self) -> int:
        return self._fd

    @property
    def index(self) -> int:
        """The interface index of the device (what routes and metrics refer to)."""
        try:
            return socket.if_nametoindex(self.name)
        except OSError as exc:
            raise self._host_error("find", exc) from exc

    def ipv4_address(self) -> str | None:
        """The device's (first) IPv4 address, or None when it has none."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                answer = _ioctl(probe, _SIOCGIFADDR, self.name.encode())
            except OSError:
                return None
        return socket.inet_ntoa(answer[20:24])

    async def connect_media(self) -> None:
        """Nothing to do: the device is up from ``open``.

        Windows keeps its TAP's link down until the relay's route is pinned,
        because a TAP-Windows adapter keeps addresses and routes from earlier
        runs. This device is new (a name in use is refused, never attached
        to), so until the client is running it has no route but its IPv6
        link-local one, which cannot draw the relay's traffic.
        """
        await trio.lowlevel.checkpoint()

    @property
    def discarding(self) -> bool:
        return self._discarding

    def set_discarding(self, discarding: bool) -> None:
        """While True, frames read are thrown away and counted in ``discarded_frames``."""
        self._discarding = discarding

    async def receive_batch(self) -> list[bytes]:
        """Wait for at least one frame from the PC; at most ``BATCH_FRAMES``.

        While discarding, it goes on reading and never returns.
        """
        while True:
            await self.wait_readable()
            frames = self.read_batch()
            if frames:
                return frames

    def send_batch(self, frames: Sequence[bytes]) -> int:
        """``write_batch`` for the ``VirtualAdapter`` interface (it never waits)."""
        return self.write_batch(frames)

    async def wait_readable(self) -> None:
        """Wait until the PC has sent a frame (or the device has an error to report)."""
        if self._read_error is not None:
            await trio.lowlevel.checkpoint()
            return
        await trio.lowlevel.wait_readable(self._fd)

    def read_batch(self) -> list[bytes]:
        """Every frame waiting, up to ``BATCH_FRAMES``; never blocks; [] if none.

        Raises ``HostNetworkError`` when the device went away (after handing
        out, in an earlier call, the frames read before that was seen).
        While discarding, the frames read are counted and [] is returned.
        """
        frames = self._read_frames()
        if self._discarding and frames:
            self.discarded_frames += len(frames)
            return []
        return frames

    def _read_frames(self) -> list[bytes]:
        error, self._read_error = self._read_error, None
        if error is None:
            frames, truncated, error = self._io.read(self._fd)
            self.truncated_frames += truncated
            if error is None:
                return frames
            if frames:
                self._read_error = error  # these frames first, the error next time
                return frames
        raise self._host_error("read from", error) from error

    def write_batch(self, frames: Sequence[bytes]) -> int:
        """Write ``frames`` without blocking; return how many were written.

        The others are dropped and counted in ``dropped_frames``: all of the
        rest when the kernel has no room, or one frame it refuses (malformed
        or too long) while the ones after it still go. Raises
        ``HostNetworkError`` when the device is down or went away.
        """
        if not frames:
            return 0
        written, refused, error = self._io.write(self._fd, frames)
        self.dropped_frames += refused
        if error is not None:
            if error.errno not in _QUEUE_FULL:
                raise self._host_error("write to", error) from error
            self.dropped_frames += len(frames) - written - refused
        return written

    def close(self) -> None:
        """Close the device's file descriptor; the kernel removes the device with it."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> TapDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _host_error(self, action: str, exc: OSError) -> HostNetworkError:
        if exc.errno in _GONE:
            return HostNetworkError(
                f"cannot {action} the TAP device {self.name}: it is down or was removed "
                f"({exc.strerror}); restart lanparty"
            )
        return HostNetworkError(f"cannot {action} the TAP device {self.name}: {exc.strerror}")


class _NativeIO:
    """Batches through the C shim: one call per batch, the read()/write() loop in C.

    Reads land in ``BATCH_FRAMES`` slots of one buffer made once per device
    (not cleared: the kernel only touches the bytes frames fill) and are
    handed out as ``bytes``: one copy, which costs the same as handing out
    memoryviews once the session has put its header in front of each frame
    (measured: native/README.md), and the frames stay valid after the next
    batch. Writes pass the frames laid end to end (one ``b"".join``: half the
    cost of an array of pointers to each frame) and their lengths.
    """

    def __init__(self, module: Any, slot: int) -> None:
        self._lib, ffi = module.lib, module.ffi
        self._ffi = ffi
        self._slot = slot
        self._buffer = ffi.new_allocator(should_clear_after_alloc=False)(
            "char[]", BATCH_FRAMES * slot
        )
        self._view = ffi.buffer(self._buffer)
        self._offsets = range(0, BATCH_FRAMES * slot, slot)
        self._lengths = ffi.new("uint32_t[]", BATCH_FRAMES)
        self._refused = ffi.new("uint32_t *")
        self._stop_errno = ffi.new("int *")

    def read(self, fd: int) -> tuple[list[bytes], int, OSError | None]:
        """The frames read, how many were cut (dropped), and the error that stopped it."""
        count: int = self._lib.lp_tap_read_batch(
            fd, self._buffer, self._slot, BATCH_FRAMES, self._lengths, self._stop_errno
        )
        number = self._stop_errno[0]
        error = _os_error(number) if number else None
        if count <= 0:
            return [], 0, error
        slot, view = self._slot, self._view
        lengths: list[int] = self._ffi.unpack(self._lengths, count)
        if slot not in lengths:
            frames = [
                view[offset : offset + length]
                for offset, length in zip(self._offsets, lengths, strict=False)
            ]
            return frames, 0, error
        frames = [
            view[offset : offset + length]
            for offset, length in zip(self._offsets, lengths, strict=False)
            if length != slot
        ]
        return frames, count - len(frames), error

    def write(self, fd: int, frames: Sequence[bytes]) -> tuple[int, int, OSError | None]:
        """How many frames were written and refused, and the error that stopped the rest."""
        lengths = self._ffi.new("uint32_t[]", [len(frame) for frame in frames])
        written: int = self._lib.lp_tap_write_batch(
            fd, b"".join(frames), lengths, len(frames), self._refused, self._stop_errno
        )
        number = self._stop_errno[0]
        return written, int(self._refused[0]), _os_error(number) if number else None


class _PythonIO:
    """The same batches as a loop of ``os.read`` / ``os.write``, when the shim is not built."""

    def __init__(self, slot: int) -> None:
        self._slot = slot

    def read(self, fd: int) -> tuple[list[bytes], int, OSError | None]:
        frames: list[bytes] = []
        truncated = 0
        read, slot = os.read, self._slot
        for _ in range(BATCH_FRAMES):
            try:
                frame = read(fd, slot)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                return frames, truncated, exc
            if len(frame) == slot:
                truncated += 1
            elif frame:
                frames.append(frame)
        return frames, truncated, None

    def write(self, fd: int, frames: Sequence[bytes]) -> tuple[int, int, OSError | None]:
        written = refused = 0
        write = os.write
        for frame in frames:
            try:
                write(fd, frame)
            except OSError as exc:
                if exc.errno in _FRAME_REFUSED:
                    refused += 1
                    continue
                return written, refused, exc
            written += 1
        return written, refused, None


def _os_error(number: int) -> OSError:
    return OSError(number, os.strerror(number))


def _ioctl(target: int | socket.socket, request: int, ifreq: bytes) -> bytes:
    """``fcntl.ioctl`` with a 40-byte ``struct ifreq``; Linux only."""
    if sys.platform != "linux":
        raise ConfigError(f"the Linux TAP device needs Linux; this is {sys.platform}")
    import fcntl  # noqa: PLC0415 (not on Windows, where this module must still import)

    return fcntl.ioctl(target, request, ifreq.ljust(_IFREQ_BYTES, b"\0"))


def _check_name(name: str) -> bytes:
    try:
        encoded = name.encode("ascii")
    except UnicodeEncodeError:
        encoded = b""
    if (
        not encoded
        or len(encoded) > MAX_NAME_BYTES
        or name in (".", "..")
        or any(c in name for c in "/:%")
        or any(c.isspace() for c in name)
        or not name.isprintable()
    ):
        raise ConfigError(
            f"{name!r} cannot name a network interface: 1 to {MAX_NAME_BYTES} ASCII "
            "characters, no spaces, '/', ':' or '%'"
        )
    return encoded


def _open_tun(name: str) -> int:
    if sys.platform != "linux":
        raise ConfigError(f"the Linux TAP device needs Linux; this is {sys.platform}")
    try:
        return os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"cannot create the TAP device {name}: there is no /dev/net/tun. Load the "
            "tun module (modprobe tun); in a container, pass the device in "
            "(docker run --device /dev/net/tun --cap-add NET_ADMIN)"
        ) from exc
    except PermissionError as exc:
        raise ConfigError(
            f"cannot create the TAP device {name}: opening /dev/net/tun is not allowed; "
            "run as root, or make /dev/net/tun read-write for this user (it is usually "
            "mode 0666) and grant CAP_NET_ADMIN"
        ) from exc
    except OSError as exc:
        raise HostNetworkError(f"cannot open /dev/net/tun: {exc.strerror}") from exc


def _create_error(name: str, exc: OSError) -> ConfigError | HostNetworkError:
    if exc.errno == errno.EPERM:
        return ConfigError(f"creating the TAP device {name} is not allowed: " + _NEEDS_ADMIN)
    if exc.errno == errno.EBUSY:
        return ConfigError(
            f"the network interface name {name} is already in use (another lanparty "
            "running, or an interface of that name): stop it, or choose another name"
        )
    return HostNetworkError(f"cannot create the TAP device {name}: {exc.strerror}")


def _configure(name: str, mac: bytes, mtu: int) -> None:
    """Set the MAC and MTU, then bring the device up (ioctls on a throwaway socket)."""
    encoded = name.encode("ascii")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:

        def step(action: str, request: int, ifreq: bytes) -> bytes:
            try:
                return _ioctl(control, request, ifreq)
            except OSError as exc:
                raise _configure_error(name, action, exc) from exc

        mac_request = struct.pack("16sH14s", encoded, _ARPHRD_ETHER, mac)
        step(f"set the MAC {format_mac(mac)} of", _SIOCSIFHWADDR, mac_request)
        step(f"set the MTU {mtu} of", _SIOCSIFMTU, struct.pack("16si", encoded, mtu))
        current = step("read the flags of", _SIOCGIFFLAGS, struct.pack("16sH", encoded, 0))
        (flags,) = struct.unpack_from("H", current, 16)
        step("bring up", _SIOCSIFFLAGS, struct.pack("16sH", encoded, flags | _IFF_UP))


def _configure_error(name: str, action: str, exc: OSError) -> ConfigError | HostNetworkError:
    if exc.errno == errno.EPERM:
        return ConfigError(f"cannot {action} the TAP device {name}: not allowed; " + _NEEDS_ADMIN)
    return HostNetworkError(f"cannot {action} the TAP device {name}: {exc.strerror}")

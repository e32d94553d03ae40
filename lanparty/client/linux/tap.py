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

import trio

from lanparty.errors import ConfigError, HostNetworkError
from lanparty.proto.mac import InvalidMacError, check_endpoint_mac, format_mac

__all__ = ["BATCH_FRAMES", "DEFAULT_TAP_NAME", "READ_BUFFER_BYTES", "TapDevice"]

DEFAULT_TAP_NAME = "lanparty0"
# Frames per read_batch call: one Trio wake-up drains at most this many.
BATCH_FRAMES = 64
# Room for the largest frame a TAP device can hand us: a 65535-byte MTU, the
# Ethernet header and a VLAN tag. A shorter buffer would cut frames silently.
READ_BUFFER_BYTES = 65535 + 14 + 4
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
_GONE = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO, errno.ENETDOWN})
_NEEDS_ADMIN = (
    "run as root or grant CAP_NET_ADMIN (setcap cap_net_admin+ep on the Python "
    "interpreter, or AmbientCapabilities=CAP_NET_ADMIN in a systemd unit)"
)


class TapDevice:
    """An open, up TAP device; frames in and out in batches, never blocking."""

    name: str
    mac: bytes
    mtu: int
    # Frames write_batch did not write: refused one by one, or left when the queue was full.
    dropped_frames: int

    def __init__(self, fd: int, name: str, mac: bytes, mtu: int) -> None:
        """Use ``TapDevice.open``; ``fd`` is the open, configured, non-blocking tun fd."""
        self._fd = fd
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.dropped_frames = 0

    @classmethod
    def open(cls, name: str = DEFAULT_TAP_NAME, *, mac: bytes, mtu: int) -> TapDevice:
        """Create TAP device ``name`` with ``mac`` and ``mtu`` and bring it up."""
        if sys.platform != "linux":  # also tells mypy --platform win32 what follows is Linux
            raise ConfigError(f"the Linux TAP device needs Linux; this is {sys.platform}")
        encoded = _check_name(name)
        try:
            check_endpoint_mac(mac, must_be_local=False)
        except InvalidMacError as exc:
            raise ConfigError(f"cannot give the TAP device {name} that MAC: {exc}") from exc
        if not MIN_MTU <= mtu <= MAX_MTU:
            raise ConfigError(f"a TAP device's MTU is {MIN_MTU} to {MAX_MTU}, not {mtu}")
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
        return cls(fd, actual, mac, mtu)

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

    async def receive_batch(self) -> list[bytes]:
        """Wait for at least one frame from the PC; at most ``BATCH_FRAMES``."""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            frames = self.read_batch()
            if frames:
                return frames

    def send_batch(self, frames: Sequence[bytes]) -> int:
        """``write_batch`` for the ``VirtualAdapter`` interface (it never waits)."""
        return self.write_batch(frames)

    async def wait_readable(self) -> None:
        """Wait until the PC has sent a frame (or the device has an error to report)."""
        await trio.lowlevel.wait_readable(self._fd)

    def read_batch(self) -> list[bytes]:
        """Every frame waiting, up to ``BATCH_FRAMES``; never blocks; [] if none.

        Raises ``HostNetworkError`` when the device went away.
        """
        frames: list[bytes] = []
        read, fd = os.read, self._fd
        for _ in range(BATCH_FRAMES):
            try:
                frame = read(fd, READ_BUFFER_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                raise self._host_error("read from", exc) from exc
            if frame:
                frames.append(frame)
        return frames

    def write_batch(self, frames: Sequence[bytes]) -> int:
        """Write ``frames`` without blocking; return how many were written.

        The others are dropped and counted in ``dropped_frames``: all of the
        rest when the kernel has no room, or one frame it refuses (malformed
        or too long) while the ones after it still go. Raises
        ``HostNetworkError`` when the device is down or went away.
        """
        written = 0
        write, fd = os.write, self._fd
        for index, frame in enumerate(frames):
            try:
                write(fd, frame)
            except OSError as exc:
                if exc.errno in _FRAME_REFUSED:
                    self.dropped_frames += 1
                    continue
                if exc.errno in _QUEUE_FULL:
                    self.dropped_frames += len(frames) - index
                    break
                raise self._host_error("write to", exc) from exc
            written += 1
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

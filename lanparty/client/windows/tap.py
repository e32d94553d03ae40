"""A TAP-Windows6 adapter as the client's ``VirtualAdapter``: frames through Trio's IOCP.

    async with open_windows_tap(adapters_to_try(...), chosen_by_user=False,
                                mac=identity.mac, mtu=room_mtu) as tap:
        frames = await tap.receive_batch()   # what the PC sent onto the LAN
        tap.send_batch(from_relay)           # what the PC receives from the LAN

Opening (windows-facts 1.2, 1.5): ``CreateFileW`` on ``\\\\.\\Global\\{GUID}.tap``
with ``FILE_FLAG_OVERLAPPED``; then, synchronously and *before* the handle
is registered with Trio's I/O completion port (a completion Trio did not
ask for would reach its event loop), the driver's version, MAC and MTU, and
media status "connected" (reads fail until then, facts 1.3). With
``connect_media=False`` the last two steps wait for ``connect_media()``:
until then Windows uses no route through the TAP, so the caller can pin the
relay's route first, as the host reached it before the TAP (issue 13). The driver
passes on only frames addressed to its own MAC (facts 1.3), and has no way
to change it while open (facts 1.4): a driver MAC other than this PC's
identity is refused with the command that fixes it.

Frames (facts 1.3, 1.5): one overlapped ``ReadFile`` returns exactly one
frame, so ``OUTSTANDING_READS`` reader tasks each keep one read pending.
Trio runs the tasks woken by one batch of completions in a random order, so
each read takes a ticket when it is issued (``readinto_overlapped`` calls
``ReadFile`` before it first yields) and ``receive_batch`` hands out frames
in ticket order, i.e. in the order the driver queued them. Writes go the
same way through ``WRITER_TASKS`` writer tasks that take frames from one
queue in order; ``send_batch`` only appends to that queue (bounded by
``MAX_QUEUED_WRITES``; the rest are dropped and counted), so it never waits
for the driver. The reader and writer tasks live in a nursery owned by
``open_windows_tap``'s context and are cancelled when it exits, before the
handle is closed. While no session carries frames, ``set_discarding(True)``
keeps the reads going and throws the frames away: left in the driver, they
would reach the next session as a burst of stale frames.

Windows only: importing this module elsewhere raises ``ImportError``.
"""

from __future__ import annotations

import functools
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import attrs
import structlog
import trio

from lanparty.client.windows._decl_kernel32 import CONSTANTS, ffi, wide_string
from lanparty.client.windows.adapters import (
    TAP_DRIVER_DOWNLOAD,
    TapAdapter,
    format_network_address,
)
from lanparty.errors import ConfigError, HostNetworkError
from lanparty.obs import events
from lanparty.proto.mac import format_mac
from lanparty.proto.mtu import max_frame as room_max_frame

if sys.platform != "win32":
    raise ImportError(f"lanparty.client.windows.tap needs Windows; this is {sys.platform}")

__all__ = [
    "BATCH_FRAMES",
    "MIN_READ_BUFFER_BYTES",
    "DriverInfo",
    "WindowsTap",
    "open_windows_tap",
]

# OpenVPN's PRODUCT_TAP_WIN_MIN_MAJOR/MINOR (facts 1.1).
MIN_DRIVER_VERSION: Final = (9, 9)
# Reads pending in the driver at once. Frames that find none wait in the
# driver's queue, which has no frame limit (TAP6 mem.c leaves its
# PACKET_QUEUE_SIZE of 64 unenforced in the NDIS 6 driver); past 4 MiB
# queued (TAP_BUFFER_SIZE, 9.24.2 and later) the driver stops completing
# the stack's sends (flow control) rather than drop.
OUTSTANDING_READS: Final = 8
# One frame per read; a larger frame fails the read (ERROR_MORE_DATA) and is
# lost. NDIS hands the driver at most 1514 bytes, 1518 with an 802.1Q tag;
# a read buffer is this, or the room's largest frame when that is larger.
MIN_READ_BUFFER_BYTES: Final = 2048
# Frames read but not yet taken by receive_batch: past this, the readers
# stop issuing reads and the frames wait in the driver's queue.
MAX_QUEUED_READS: Final = 256
BATCH_FRAMES: Final = 64
# The driver refuses frames shorter than an Ethernet header. It does not
# check an upper bound (facts 1.3): frames longer than the room's max_frame
# are ours to refuse. It strips an 802.1Q tag, so the room's max_frame (MTU,
# Ethernet header, one tag) fits the adapter whose MTU check_driver passed.
MIN_FRAME_BYTES: Final = 14
WRITER_TASKS: Final = 16
MAX_QUEUED_WRITES: Final = 256

_OPERATION_ABORTED: Final = CONSTANTS["ERROR_OPERATION_ABORTED"]
_MORE_DATA: Final = CONSTANTS["ERROR_MORE_DATA"]
_BUSY: Final = CONSTANTS["ERROR_GEN_FAILURE"]
_GONE: Final = frozenset(
    {_OPERATION_ABORTED, CONSTANTS["ERROR_DEV_NOT_EXIST"], CONSTANTS["ERROR_FILE_NOT_FOUND"]}
)
_MISSING: Final = frozenset({CONSTANTS["ERROR_FILE_NOT_FOUND"], CONSTANTS["ERROR_PATH_NOT_FOUND"]})
_MAC_BYTES: Final = 6

log = structlog.get_logger(component="client")


@attrs.frozen
class DriverInfo:
    """What the driver says about itself once the adapter is open."""

    mac: bytes
    mtu: int
    version: tuple[int, int]
    debug_build: bool

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}" + (" (debug)" if self.debug_build else "")


class FrameDevice(Protocol):
    """Overlapped I/O on the open adapter: one frame per call."""

    async def read_into(self, buffer: bytearray) -> int:
        """Wait for one frame; its length. Must issue the read before its first checkpoint."""
        ...

    async def write(self, frame: bytes) -> int: ...


class WindowsTap:
    """An open, connected TAP-Windows6 adapter; a ``VirtualAdapter``.

    Use ``open_windows_tap``; ``start`` must have been called in a nursery
    before frames move.
    """

    def __init__(
        self,
        device: FrameDevice,
        *,
        adapter: TapAdapter,
        index: int,
        luid: int,
        mtu: int,
        driver: DriverInfo,
        ipv4_lookup: Callable[[int], str | None],
        max_frame: int | None = None,
        connect: Callable[[], None] | None = None,
    ) -> None:
        """``connect``: what connects the media (None: it is connected already)."""
        self.adapter = adapter
        self.luid = luid
        self.driver = driver
        self.max_frame = room_max_frame(mtu) if max_frame is None else max_frame
        """The room's largest frame (``Welcome.max_frame``); longer ones are refused."""
        self._device = device
        self._index = index
        self._mtu = mtu
        self._ipv4_lookup = ipv4_lookup
        self._dropped_frames = 0
        # Frames the driver had to drop because they did not fit a read buffer.
        self.oversized_reads = 0
        self._discarding = False
        self._discarded_frames = 0
        self._failure: HostNetworkError | None = None
        self._next_ticket = 0
        self._next_delivery = 0
        self._completed: dict[int, bytes | None] = {}
        self._read_room = trio.Semaphore(MAX_QUEUED_READS)
        self._frame_completed = trio.lowlevel.ParkingLot()
        self._outgoing: deque[bytes] = deque()
        self._writes_in_flight = 0
        self._frame_queued = trio.lowlevel.ParkingLot()
        self._connect = connect
        self._nursery: trio.Nursery | None = None

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def index(self) -> int:
        """What ``HostNetwork`` knows it by on Windows: its LUID (``routes.py``), which,
        unlike its interface index, stays the same when the adapter restarts."""
        return self.luid

    @property
    def interface_index(self) -> int:
        """Windows' interface index (``route print``, PowerShell's ``-InterfaceIndex``)."""
        return self._index

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def dropped_frames(self) -> int:
        return self._dropped_frames

    @property
    def discarding(self) -> bool:
        return self._discarding

    @property
    def discarded_frames(self) -> int:
        """Frames read and thrown away while ``discarding``."""
        return self._discarded_frames

    def ipv4_address(self) -> str | None:
        return self._ipv4_lookup(self._index)

    def set_discarding(self, discarding: bool) -> None:
        """While True, frames from the PC are still read, but thrown away (and counted).

        For while no session carries them: unread, they would wait in the
        driver's queue (up to 4 MiB, see ``OUTSTANDING_READS``) and flood
        the room, stale, when reading resumes. Turning it on also throws
        away what was read and not yet taken by ``receive_batch``.
        """
        self._discarding = discarding
        if discarding:
            self._discard_completed()

    @property
    def media_connected(self) -> bool:
        return self._connect is None

    def start(self, nursery: trio.Nursery) -> None:
        """Start the reader and writer tasks in ``nursery`` (cancelled to stop them).

        With the media not connected yet, they start when it is.
        """
        self._nursery = nursery
        if self._connect is None:
            self._start_tasks(nursery)

    async def connect_media(self) -> None:
        """Connect the media (link up: Windows starts to use the TAP), then move frames."""
        await trio.lowlevel.checkpoint()
        if self._connect is None:
            return
        if self._nursery is None:
            raise RuntimeError("WindowsTap.start must come before connect_media")
        self._connect()
        self._connect = None
        self._start_tasks(self._nursery)

    def _start_tasks(self, nursery: trio.Nursery) -> None:
        for _ in range(OUTSTANDING_READS):
            nursery.start_soon(self._read_frames)
        for _ in range(WRITER_TASKS):
            nursery.start_soon(self._write_frames)

    async def receive_batch(self) -> list[bytes]:
        """Wait for at least one frame from the PC; at most ``BATCH_FRAMES``, in order.

        ``HostNetworkError`` when the adapter went away (after the frames read before).
        """
        while True:
            if self._next_delivery in self._completed:
                await trio.lowlevel.checkpoint()  # and let completions of the same tick land
                frames = self._take_completed()
                if frames:
                    return frames
                continue
            if self._failure is not None:
                raise self._failure
            await self._frame_completed.park()

    def send_batch(self, frames: Sequence[bytes]) -> int:
        """Queue ``frames`` for the PC; how many were taken. Never waits (no task switch).

        The writer tasks hand them to the driver, in order. Frames longer
        than ``max_frame`` or shorter than an Ethernet header are
        refused, and frames past ``MAX_QUEUED_WRITES`` waiting dropped, all
        counted in ``dropped_frames``.
        """
        if self._failure is not None:
            raise self._failure
        taken = 0
        max_frame = self.max_frame
        for position, frame in enumerate(frames):
            if not MIN_FRAME_BYTES <= len(frame) <= max_frame:
                self._dropped_frames += 1
                continue
            if len(self._outgoing) + self._writes_in_flight >= MAX_QUEUED_WRITES:
                self._dropped_frames += len(frames) - position
                break
            self._outgoing.append(frame)
            taken += 1
        if taken:
            self._frame_queued.unpark(count=taken)
        return taken

    def _take_completed(self) -> list[bytes]:
        frames: list[bytes] = []
        while len(frames) < BATCH_FRAMES and self._next_delivery in self._completed:
            frame = self._completed.pop(self._next_delivery)
            self._next_delivery += 1
            self._read_room.release()
            if frame is not None:
                frames.append(frame)
        return frames

    async def _read_frames(self) -> None:
        buffer = bytearray(max(MIN_READ_BUFFER_BYTES, self.max_frame))
        view = memoryview(buffer)
        while self._failure is None:
            await self._read_room.acquire()
            # Nothing may yield between taking the ticket and issuing the read.
            ticket = self._next_ticket
            self._next_ticket += 1
            try:
                length = await self._device.read_into(buffer)
            except OSError as exc:
                if exc.winerror == _MORE_DATA:  # a frame too large for the buffer, lost
                    self.oversized_reads += 1
                    self._complete(ticket, None)
                    continue
                self._fail(self._io_error("read from", exc))
                return
            except trio.ClosedResourceError:
                self._fail(self._gone_error())
                return
            self._complete(ticket, bytes(view[:length]))

    def _complete(self, ticket: int, frame: bytes | None) -> None:
        self._completed[ticket] = frame
        if self._discarding:
            self._discard_completed()
        elif ticket == self._next_delivery:
            self._frame_completed.unpark_all()

    def _discard_completed(self) -> None:
        # In ticket order, as receive_batch would take them: a later read
        # may not overtake one still pending in the driver.
        while self._next_delivery in self._completed:
            frame = self._completed.pop(self._next_delivery)
            self._next_delivery += 1
            self._read_room.release()
            if frame is not None:
                self._discarded_frames += 1

    async def _write_frames(self) -> None:
        while self._failure is None:
            if not self._outgoing:
                await self._frame_queued.park()
                continue
            # Taken and written in one step, so frames reach the driver in queue order.
            frame = self._outgoing.popleft()
            self._writes_in_flight += 1
            try:
                await self._device.write(frame)
            except OSError as exc:
                if exc.winerror in _GONE:
                    self._fail(self._io_error("write to", exc))
                    return
                self._dropped_frames += 1  # the driver refused this one frame
            except trio.ClosedResourceError:
                self._fail(self._gone_error())
                return
            finally:
                self._writes_in_flight -= 1

    def _fail(self, error: HostNetworkError) -> None:
        if self._failure is None:
            self._failure = error
        self._frame_completed.unpark_all()
        self._frame_queued.unpark_all()

    def _io_error(self, action: str, exc: OSError) -> HostNetworkError:
        if exc.winerror in _GONE:
            return self._gone_error()
        return HostNetworkError(
            f'cannot {action} the TAP-Windows adapter "{self.name}": {exc.strerror} '
            f"(error {exc.winerror}); restart lanparty-client"
        )

    def _gone_error(self) -> HostNetworkError:
        return HostNetworkError(
            f'the TAP-Windows adapter "{self.name}" was disabled or removed: enable it again '
            "(Control Panel > Network Connections, right-click it > Enable) and restart "
            "lanparty-client"
        )


def check_driver(driver: DriverInfo, adapter: TapAdapter, *, mac: bytes, mtu: int) -> None:
    """Refuse, with the fix, a driver too old, a MAC other than ours, an MTU too small."""
    if driver.version < MIN_DRIVER_VERSION:
        raise ConfigError(
            f'the TAP-Windows driver of "{adapter.name}" is version {driver.version_text}; '
            f"lanparty needs {MIN_DRIVER_VERSION[0]}.{MIN_DRIVER_VERSION[1]} or newer. To "
            f"update it, {TAP_DRIVER_DOWNLOAD}"
        )
    if driver.mac != mac:
        raise ConfigError(mac_mismatch_message(adapter, driver_mac=driver.mac, identity_mac=mac))
    if mtu > driver.mtu:
        raise ConfigError(
            f'the TAP-Windows adapter "{adapter.name}" has an MTU of {driver.mtu}, smaller '
            f"than the room's {mtu}: in Device Manager > Network adapters > "
            f"{adapter.description} > Properties > Advanced, set MTU to 1500, then restart "
            "lanparty-client"
        )


def mac_mismatch_message(adapter: TapAdapter, *, driver_mac: bytes, identity_mac: bytes) -> str:
    return (
        f'the TAP-Windows adapter "{adapter.name}" has the MAC {format_mac(driver_mac)}, '
        f"not this PC's lanparty MAC {format_mac(identity_mac)}. The adapter passes on only "
        "frames sent to its own MAC, so they must be the same. To fix it once, run from a "
        f'Command Prompt opened with "Run as administrator": lanparty-client set-adapter-mac '
        f'--tap "{adapter.name}" (add the --identity or --virtual-mac you give '
        "lanparty-client, if any). Or by hand: Device Manager > Network adapters > "
        f"{adapter.description} > Properties > Advanced > MAC Address = "
        f"{format_network_address(identity_mac)}, then disable and enable the adapter"
    )


def open_error(adapter: TapAdapter, code: int, reason: str) -> ConfigError | HostNetworkError:
    """What ``CreateFileW`` failing with ``code`` means for the player."""
    if code == _BUSY:  # only one handle may own the adapter (facts 1.2)
        return ConfigError(
            f'the TAP-Windows adapter "{adapter.name}" is open in another program (another '
            "VPN client, such as OpenVPN, or another lanparty-client): close the other VPN "
            "client, or choose another adapter with --tap NAME"
        )
    if code in _MISSING:
        return ConfigError(
            f'the TAP-Windows adapter "{adapter.name}" is disabled (its device is not there): '
            "enable it in Control Panel > Network Connections (right-click it > Enable)"
        )
    if code == CONSTANTS["ERROR_ACCESS_DENIED"]:
        return ConfigError(
            f'opening the TAP-Windows adapter "{adapter.name}" is not allowed: run '
            'lanparty-client as administrator (a Command Prompt opened with "Run as '
            'administrator")'
        )
    return HostNetworkError(
        f'cannot open the TAP-Windows adapter "{adapter.name}": {reason} (error {code})'
    )


def all_busy_error(adapters: Sequence[TapAdapter]) -> ConfigError:
    names = ", ".join(f'"{adapter.name}"' for adapter in adapters)
    return ConfigError(
        f"every TAP-Windows adapter lanparty could use ({names}) is open in another program "
        "(another VPN client, such as OpenVPN, or another lanparty-client): close the other "
        "VPN client and start lanparty-client again"
    )


@functools.cache
def _kernel32() -> Any:
    return ffi.dlopen("kernel32.dll")


class _OverlappedDevice:
    """``FrameDevice`` over Trio's overlapped I/O (the handle is registered with its IOCP)."""

    def __init__(self, handle: int) -> None:
        self._handle = handle

    async def read_into(self, buffer: bytearray) -> int:
        return await trio.lowlevel.readinto_overlapped(self._handle, buffer)

    async def write(self, frame: bytes) -> int:
        return await trio.lowlevel.write_overlapped(self._handle, frame)


@asynccontextmanager
async def open_windows_tap(
    candidates: Sequence[TapAdapter],
    *,
    chosen_by_user: bool,
    mac: bytes,
    mtu: int,
    max_frame: int | None = None,
    connect_media: bool = True,
) -> AsyncIterator[WindowsTap]:
    """The first of ``candidates`` that opens, checked and connected, carrying frames.

    An adapter open in another program is skipped for the next one unless
    the player chose it (``chosen_by_user``). ``ConfigError`` with what to
    do when none can be used. ``max_frame``: the room's largest frame
    (default: the one a room of ``mtu`` has). ``connect_media=False``: the
    media stays disconnected until ``WindowsTap.connect_media()``.
    """
    adapter, handle = _open_first_free(candidates, chosen_by_user=chosen_by_user)
    try:
        driver = _query_driver(handle, adapter)
        index, luid = _interface_of(adapter)
        log.info(
            events.TAP_ADAPTER_OPENED,
            tap=adapter.name,
            guid=adapter.instance_id,
            driver_mac=format_mac(driver.mac),
            driver_mtu=driver.mtu,
            driver_version=driver.version_text,
            index=index,
            luid=luid,
        )
        check_driver(driver, adapter, mac=mac, mtu=mtu)
        handle_value = int(ffi.cast("uintptr_t", handle))

        def connect() -> None:
            _device_control(handle, adapter, "SET_MEDIA_STATUS", 4, in_value=1)
            trio.lowlevel.register_with_iocp(handle_value)

        tap = WindowsTap(
            _OverlappedDevice(handle_value),
            adapter=adapter,
            index=index,
            luid=luid,
            mtu=mtu,
            driver=driver,
            ipv4_lookup=_interface_ipv4,
            max_frame=max_frame,
            connect=connect,
        )
        async with trio.open_nursery() as nursery:
            tap.start(nursery)
            if connect_media:
                await tap.connect_media()
            try:
                yield tap
            finally:
                nursery.cancel_scope.cancel()
    finally:
        # Closing also sets the media "disconnected" and resets the adapter (facts 1.3).
        _kernel32().CloseHandle(handle)


def _open_first_free(
    candidates: Sequence[TapAdapter], *, chosen_by_user: bool
) -> tuple[TapAdapter, Any]:
    for adapter in candidates:
        path = wide_string(adapter.device_path)
        handle = _kernel32().CreateFileW(
            path,
            CONSTANTS["GENERIC_READ"] | CONSTANTS["GENERIC_WRITE"],
            0,
            ffi.NULL,
            CONSTANTS["OPEN_EXISTING"],
            CONSTANTS["FILE_ATTRIBUTE_SYSTEM"] | CONSTANTS["FILE_FLAG_OVERLAPPED"],
            ffi.NULL,
        )
        if int(ffi.cast("intptr_t", handle)) != CONSTANTS["INVALID_HANDLE_VALUE"]:
            return adapter, handle
        code, reason = ffi.getwinerror()
        if code == _BUSY and not chosen_by_user:
            continue  # another VPN client owns it: the next one may be free
        raise open_error(adapter, code, reason)
    raise all_busy_error(candidates)


def _query_driver(handle: Any, adapter: TapAdapter) -> DriverInfo:
    version = _device_control(handle, adapter, "GET_VERSION", 12)
    mac = _device_control(handle, adapter, "GET_MAC", _MAC_BYTES)
    mtu = _device_control(handle, adapter, "GET_MTU", 4)
    major, minor, debug = (int.from_bytes(version[i : i + 4], "little") for i in (0, 4, 8))
    return DriverInfo(
        mac=mac, mtu=int.from_bytes(mtu, "little"), version=(major, minor), debug_build=bool(debug)
    )


def _device_control(
    handle: Any,
    adapter: TapAdapter,
    request: str,
    output_bytes: int,
    *,
    in_value: int | None = None,
) -> bytes:
    """One synchronous TAP IOCTL (``lpOverlapped`` NULL, as OpenVPN does; facts 1.1, 1.5)."""
    output = ffi.new("uint8_t[]", output_bytes)
    returned = ffi.new("uint32_t *")
    if in_value is None:
        in_buffer, in_bytes = ffi.NULL, 0
    else:
        in_buffer, in_bytes = ffi.new("uint32_t *", in_value), 4
    ok = _kernel32().DeviceIoControl(
        handle,
        CONSTANTS[f"TAP_WIN_IOCTL_{request}"],
        in_buffer,
        in_bytes,
        output,
        output_bytes,
        returned,
        ffi.NULL,
    )
    if not ok:
        code, reason = ffi.getwinerror()
        raise HostNetworkError(
            f'the TAP-Windows driver of "{adapter.name}" refused {request} ({reason}, error '
            f"{code}); reinstall the driver: {TAP_DRIVER_DOWNLOAD}"
        )
    return bytes(ffi.buffer(output, output_bytes))


def _interface_of(adapter: TapAdapter) -> tuple[int, int]:
    """(interface index, LUID) of the adapter, from its GUID (IP Helper)."""
    from lanparty.client.windows import iphlpapi  # noqa: PLC0415 (IP Helper, loaded on use)

    luid = iphlpapi.guid_to_luid(adapter.guid)
    return iphlpapi.luid_to_index(luid), luid


def _interface_ipv4(index: int) -> str | None:
    from lanparty.client.windows import iphlpapi  # noqa: PLC0415

    return iphlpapi.interface_ipv4(index)

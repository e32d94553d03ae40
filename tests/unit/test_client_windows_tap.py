"""The TAP-Windows6 adapter: opening through a fake kernel32, frames through a fake driver.

``tap.py`` is Windows-only; it is imported here as on Windows (see
``test_client_windows_platform.imported_as_on_windows``). The fake driver
behaves as windows-facts 1.3 says the real one does: each pending read
takes one frame, in the order the reads were issued.
"""

from __future__ import annotations

import struct
import sys
import types
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from lanparty.client.windows import _decl_kernel32
from lanparty.client.windows.adapters import TapAdapter
from lanparty.errors import ConfigError, HostNetworkError
from lanparty.obs import events
from tests.unit.test_client_windows_platform import imported_as_on_windows

MAC = bytes.fromhex("02ab12345678")
OTHER_MAC = bytes.fromhex("00ff0000aa01")
ffi = _decl_kernel32.ffi
CONSTANTS = _decl_kernel32.CONSTANTS


class WinError(OSError):
    """An ``OSError`` with ``winerror``, which only Windows' OSError has."""

    def __init__(self, code: int) -> None:
        super().__init__(f"Windows error {code}")
        self.winerror = code


def adapter(name: str = "LAN party") -> TapAdapter:
    guid = uuid.uuid4()
    return TapAdapter(
        instance_id="{" + str(guid).upper() + "}",
        guid=guid,
        name=name,
        description="TAP-Windows Adapter V9 #2",
        class_subkey="0007",
        network_address=None,
    )


def frame(number: int, size: int = 60) -> bytes:
    return MAC + OTHER_MAC + b"\x08\x00" + number.to_bytes(4, "big") + bytes(size - 18)


@pytest.fixture
def tap_module() -> Iterator[types.ModuleType]:
    with imported_as_on_windows("lanparty.client.windows.tap") as module:
        yield module


class PendingRead:
    def __init__(self, buffer: bytearray) -> None:
        self.buffer = buffer
        self.done = trio.Event()
        self.length = 0
        self.error: BaseException | None = None


class FakeDriver:
    """``FrameDevice``: reads wait for ``deliver``; writes are recorded, and can be held.

    ``written`` is what reached the driver, in order (refused frames left out).
    """

    def __init__(self) -> None:
        self.pending: deque[PendingRead] = deque()
        self.written: list[bytes] = []
        self.writes_open = trio.Event()
        self.writes_open.set()
        self.refuse_writes: dict[bytes, BaseException] = {}

    async def read_into(self, buffer: bytearray) -> int:
        read = PendingRead(buffer)
        self.pending.append(read)  # issued before the first checkpoint, as ReadFile is
        await read.done.wait()
        if read.error is not None:
            raise read.error
        return read.length

    async def write(self, data: bytes) -> int:
        # Issued (in this order) before the first checkpoint, as WriteFile is.
        refusal = self.refuse_writes.get(data)
        if refusal is None:
            self.written.append(data)
        await self.writes_open.wait()
        if refusal is not None:
            raise refusal
        return len(data)

    def deliver(self, *frames: bytes, wake_in_reverse: bool = False) -> None:
        """Complete one pending read per frame; a frame its buffer cannot hold is lost."""
        reads = [self.pending.popleft() for _ in frames]
        for read, data in zip(reads, frames, strict=True):
            if len(data) > len(read.buffer):
                read.error = WinError(CONSTANTS["ERROR_MORE_DATA"])
                continue
            read.buffer[: len(data)] = data
            read.length = len(data)
        for read in reversed(reads) if wake_in_reverse else reads:
            read.done.set()

    def fail_next(self, error: BaseException) -> None:
        read = self.pending.popleft()
        read.error = error
        read.done.set()


def windows_tap(module: types.ModuleType, driver: FakeDriver, **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "adapter": adapter(),
        "index": 17,
        "luid": 0x0006_0000_0100_0000,
        "mtu": 1400,
        "driver": module.DriverInfo(mac=MAC, mtu=1500, version=(9, 27), debug_build=False),
        "ipv4_lookup": lambda index: f"192.168.1.{index}",
    }
    arguments.update(changes)
    return module.WindowsTap(driver, **arguments)


async def test_reads_stay_outstanding_and_frames_come_in_driver_order(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert len(driver.pending) == tap_module.OUTSTANDING_READS
        frames = [frame(number) for number in range(5)]
        driver.deliver(*frames, wake_in_reverse=True)
        assert await tap.receive_batch() == frames
        await trio.testing.wait_all_tasks_blocked()
        assert len(driver.pending) == tap_module.OUTSTANDING_READS  # every read re-issued
        nursery.cancel_scope.cancel()


async def test_a_batch_is_everything_read_in_order_up_to_the_batch_size(
    tap_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tap_module, "BATCH_FRAMES", 3)
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        driver.deliver(*(frame(number) for number in range(5)))
        assert await tap.receive_batch() == [frame(0), frame(1), frame(2)]
        assert await tap.receive_batch() == [frame(3), frame(4)]
        nursery.cancel_scope.cancel()


async def test_while_discarding_the_tap_is_drained_and_nothing_stale_is_delivered(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        driver.deliver(frame(0), frame(1))  # read, not yet taken when the session is lost
        tap.set_discarding(True)
        assert tap.discarding
        stale = 0
        for _ in range(2 * tap_module.MAX_QUEUED_READS // tap_module.OUTSTANDING_READS):
            await trio.testing.wait_all_tasks_blocked()
            assert len(driver.pending) == tap_module.OUTSTANDING_READS  # still reading
            driver.deliver(*(frame(100 + stale + i) for i in range(len(driver.pending))))
            stale += tap_module.OUTSTANDING_READS
        await trio.testing.wait_all_tasks_blocked()
        assert tap.discarded_frames == 2 + stale
        tap.set_discarding(False)  # the next session
        driver.deliver(frame(9999))
        assert await tap.receive_batch() == [frame(9999)]
        assert tap.dropped_frames == 0  # discarded frames are not failures to deliver
        nursery.cancel_scope.cancel()


async def test_a_read_completing_out_of_order_is_still_discarded_in_order(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        tap.set_discarding(True)
        driver.deliver(frame(0), frame(1), frame(2), wake_in_reverse=True)
        await trio.testing.wait_all_tasks_blocked()
        assert tap.discarded_frames == 3
        tap.set_discarding(False)
        driver.deliver(frame(3))
        assert await tap.receive_batch() == [frame(3)]
        nursery.cancel_scope.cancel()


async def test_a_frame_too_large_for_the_buffer_is_counted_and_skipped(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        driver.deliver(frame(1))
        driver.fail_next(WinError(CONSTANTS["ERROR_MORE_DATA"]))
        driver.deliver(frame(3))
        assert await tap.receive_batch() == [frame(1), frame(3)]
        assert tap.oversized_reads == 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "error",
    [trio.ClosedResourceError(), WinError(995), WinError(55)],
    ids=["closed by trio", "aborted", "device gone"],
)
async def test_a_disabled_adapter_ends_receive_and_send_with_a_host_network_error(
    tap_module: types.ModuleType, error: BaseException
) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        driver.deliver(frame(1))
        driver.fail_next(error)
        assert await tap.receive_batch() == [frame(1)]  # what came before still arrives
        with pytest.raises(HostNetworkError, match='"LAN party" was disabled or removed'):
            await tap.receive_batch()
        with pytest.raises(HostNetworkError, match="disabled or removed"):
            tap.send_batch([frame(2)])
        nursery.cancel_scope.cancel()


async def test_another_read_error_names_it(tap_module: types.ModuleType) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        driver.fail_next(WinError(CONSTANTS["ERROR_GEN_FAILURE"]))
        with pytest.raises(HostNetworkError, match=r"cannot read from .*\(error 31\)"):
            await tap.receive_batch()
        nursery.cancel_scope.cancel()


async def test_frames_are_written_in_order_and_bad_sizes_refused(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver)
    assert tap.max_frame == 1400 + 18  # the room's: MTU, Ethernet header, one 802.1Q tag
    too_long = frame(99, size=tap.max_frame + 1)
    longest = frame(98, size=tap.max_frame)
    frames = [frame(number) for number in range(40)]
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        taken = tap.send_batch([*frames[:20], too_long, b"\x01" * 13, *frames[20:], longest])
        assert taken == 41
        assert tap.dropped_frames == 2
        await trio.testing.wait_all_tasks_blocked()
        assert driver.written == [*frames, longest]
        nursery.cancel_scope.cancel()


async def test_a_room_of_mtu_1500_carries_tagged_frames_of_1518_bytes(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver, mtu=1500)
    tagged = frame(1, size=1518)  # the driver strips the 802.1Q tag (facts 1.3)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        assert tap.send_batch([tagged, frame(2, size=1519)]) == 1
        await trio.testing.wait_all_tasks_blocked()
        assert driver.written == [tagged]
        assert tap.dropped_frames == 1
        nursery.cancel_scope.cancel()


async def test_read_buffers_hold_the_rooms_largest_frame(tap_module: types.ModuleType) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver, mtu=4000)  # an adapter whose MTU was raised
    largest = frame(1, size=4018)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        driver.deliver(largest)
        assert await tap.receive_batch() == [largest]
        assert tap.oversized_reads == 0
        nursery.cancel_scope.cancel()


async def test_an_explicit_max_frame_bounds_both_ways(tap_module: types.ModuleType) -> None:
    driver = FakeDriver()
    tap = windows_tap(tap_module, driver, mtu=1500, max_frame=1514)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        assert tap.send_batch([frame(1, size=1514), frame(2, size=1518)]) == 1
        nursery.cancel_scope.cancel()


async def test_send_queues_for_the_driver_and_drops_past_the_bound(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    driver.writes_open = trio.Event()  # the driver takes nothing for now
    tap = windows_tap(tap_module, driver)
    bound = tap_module.MAX_QUEUED_WRITES
    frames = [frame(number) for number in range(bound + 10)]
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        await trio.testing.wait_all_tasks_blocked()
        assert tap.send_batch(frames) == bound
        assert tap.send_batch([frame(1000)]) == 0
        assert tap.dropped_frames == 11
        driver.writes_open.set()
        await trio.testing.wait_all_tasks_blocked()
        assert driver.written == frames[:bound]
        assert tap.send_batch([frame(1001)]) == 1
        nursery.cancel_scope.cancel()


async def test_a_frame_the_driver_refuses_is_counted_and_the_rest_go(
    tap_module: types.ModuleType,
) -> None:
    driver = FakeDriver()
    driver.refuse_writes[frame(1)] = WinError(CONSTANTS["ERROR_INVALID_PARAMETER"])
    tap = windows_tap(tap_module, driver)
    async with trio.open_nursery() as nursery:
        tap.start(nursery)
        assert tap.send_batch([frame(0), frame(1), frame(2)]) == 3
        await trio.testing.wait_all_tasks_blocked()
        assert driver.written == [frame(0), frame(2)]
        assert tap.dropped_frames == 1
        nursery.cancel_scope.cancel()


def test_the_adapter_describes_itself(tap_module: types.ModuleType) -> None:
    tap = windows_tap(tap_module, FakeDriver())
    assert (tap.name, tap.mtu, tap.dropped_frames) == ("LAN party", 1400, 0)
    # Routes, metrics and the journal name it by LUID: its index changes when it restarts.
    assert (tap.index, tap.interface_index) == (0x0006_0000_0100_0000, 17)
    assert tap.ipv4_address() == "192.168.1.17"


def driver_info(module: types.ModuleType, **changes: Any) -> Any:
    values: dict[str, Any] = {"mac": MAC, "mtu": 1500, "version": (9, 27), "debug_build": False}
    values.update(changes)
    return module.DriverInfo(**values)


def test_a_driver_older_than_9_9_is_refused(tap_module: types.ModuleType) -> None:
    tap_module.check_driver(driver_info(tap_module, version=(9, 9)), adapter(), mac=MAC, mtu=1400)
    with pytest.raises(ConfigError) as caught:
        tap_module.check_driver(
            driver_info(tap_module, version=(9, 8)), adapter(), mac=MAC, mtu=1400
        )
    assert "version 9.8; lanparty needs 9.9 or newer" in str(caught.value)
    assert "tap-windows6" in str(caught.value)


def test_a_driver_mac_other_than_ours_is_refused_with_the_exact_fix(
    tap_module: types.ModuleType,
) -> None:
    with pytest.raises(ConfigError) as caught:
        tap_module.check_driver(
            driver_info(tap_module, mac=OTHER_MAC), adapter(), mac=MAC, mtu=1400
        )
    message = str(caught.value)
    assert "has the MAC 00:ff:00:00:aa:01, not this PC's lanparty MAC 02:ab:12:34:56:78" in message
    assert 'lanparty-client set-adapter-mac --tap "LAN party"' in message
    assert "Run as administrator" in message
    assert (
        "TAP-Windows Adapter V9 #2 > Properties > Advanced > MAC Address = 02AB12345678" in message
    )


def test_a_room_mtu_above_the_driver_mtu_is_refused(tap_module: types.ModuleType) -> None:
    with pytest.raises(ConfigError, match="MTU of 1300, smaller than the room's 1400"):
        tap_module.check_driver(driver_info(tap_module, mtu=1300), adapter(), mac=MAC, mtu=1400)


@pytest.mark.parametrize(
    ("code", "kind", "says"),
    [
        (31, ConfigError, "close the other VPN client"),
        (2, ConfigError, "is disabled"),
        (5, ConfigError, "as administrator"),
        (1450, HostNetworkError, "Insufficient resources (error 1450)"),
    ],
)
def test_open_errors_say_what_to_do(
    tap_module: types.ModuleType, code: int, kind: type[Exception], says: str
) -> None:
    error = tap_module.open_error(adapter(), code, "Insufficient resources")
    assert type(error) is kind
    assert says in str(error)


class FakeKernel32:
    """CreateFileW, DeviceIoControl and CloseHandle of a TAP-Windows6 driver, recorded."""

    def __init__(self, calls: list[tuple[Any, ...]], *, busy: set[str], driver_mac: bytes) -> None:
        self.calls = calls
        self.busy = busy
        self.driver_mac = driver_mac
        self.last_error = 0
        self.next_handle = 0x100

    def CreateFileW(self, path: Any, *arguments: Any) -> Any:  # noqa: N802 (the Windows name)
        text = ffi.string(ffi.cast("char16_t *", path))
        self.calls.append(("CreateFileW", text, *arguments[:2], *arguments[3:5]))
        if text in self.busy:
            self.last_error = CONSTANTS["ERROR_GEN_FAILURE"]
            return ffi.cast("HANDLE", CONSTANTS["INVALID_HANDLE_VALUE"])
        self.next_handle += 1
        return ffi.cast("HANDLE", self.next_handle)

    def DeviceIoControl(self, *arguments: Any) -> int:  # noqa: N802
        handle, code, in_buffer, in_bytes, out_buffer, out_bytes, returned, overlapped = arguments
        names = {value: name for name, value in CONSTANTS.items() if name.startswith("TAP_")}
        in_value = None if in_bytes == 0 else ffi.cast("uint32_t *", in_buffer)[0]
        self.calls.append(
            (names[code], int(ffi.cast("uintptr_t", handle)), in_value, out_bytes, overlapped)
        )
        answers = {
            "TAP_WIN_IOCTL_GET_VERSION": struct.pack("<3I", 9, 27, 0),
            "TAP_WIN_IOCTL_GET_MAC": self.driver_mac,
            "TAP_WIN_IOCTL_GET_MTU": struct.pack("<I", 1500),
            "TAP_WIN_IOCTL_SET_MEDIA_STATUS": b"\x01",
        }
        answer = answers[names[code]]
        ffi.memmove(out_buffer, answer, len(answer))
        returned[0] = len(answer)
        return 1

    def CloseHandle(self, handle: Any) -> int:  # noqa: N802
        self.calls.append(("CloseHandle", int(ffi.cast("uintptr_t", handle))))
        return 1


class Windows:
    """The Windows side of ``open_windows_tap``, faked: kernel32, IP Helper, Trio's IOCP."""

    def __init__(
        self,
        module: types.ModuleType,
        monkeypatch: pytest.MonkeyPatch,
        *,
        busy: set[str] = frozenset(),  # type: ignore[assignment]
        driver_mac: bytes = MAC,
    ) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.kernel32 = FakeKernel32(self.calls, busy=set(busy), driver_mac=driver_mac)
        self.drivers: list[FakeDriver] = []
        monkeypatch.setattr(module, "_kernel32", lambda: self.kernel32)
        monkeypatch.setattr(
            module.ffi, "getwinerror", lambda: (self.kernel32.last_error, "busy"), raising=False
        )
        monkeypatch.setattr(
            trio.lowlevel,
            "register_with_iocp",
            lambda handle: self.calls.append(("register_with_iocp", handle)),
            raising=False,
        )
        monkeypatch.setattr(module, "_OverlappedDevice", self.device)
        iphlpapi = types.ModuleType("lanparty.client.windows.iphlpapi")
        iphlpapi.guid_to_luid = lambda guid: 0x0006_0000_0100_0000 + guid.int % 7  # type: ignore[attr-defined]
        iphlpapi.luid_to_index = lambda luid: 17  # type: ignore[attr-defined]
        iphlpapi.interface_ipv4 = lambda index: None  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "lanparty.client.windows.iphlpapi", iphlpapi)
        package = sys.modules["lanparty.client.windows"]
        monkeypatch.setattr(package, "iphlpapi", iphlpapi, raising=False)

    def device(self, handle: int) -> FakeDriver:
        self.calls.append(("device", handle))
        driver = FakeDriver()
        self.drivers.append(driver)
        return driver


async def test_opening_asks_the_driver_then_connects_then_registers(
    tap_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    windows = Windows(tap_module, monkeypatch)
    chosen = adapter()
    with structlog.testing.capture_logs() as logs:
        async with tap_module.open_windows_tap(
            [chosen], chosen_by_user=False, mac=MAC, mtu=1400
        ) as tap:
            await trio.testing.wait_all_tasks_blocked()
            assert len(windows.drivers[0].pending) == tap_module.OUTSTANDING_READS
            assert (tap.name, tap.mtu, tap.max_frame) == ("LAN party", 1400, 1418)
            assert (tap.index, tap.interface_index) == (tap.luid, 17)
    handle = 0x101
    access = CONSTANTS["GENERIC_READ"] | CONSTANTS["GENERIC_WRITE"]
    flags = CONSTANTS["FILE_ATTRIBUTE_SYSTEM"] | CONSTANTS["FILE_FLAG_OVERLAPPED"]
    assert windows.calls == [
        ("CreateFileW", chosen.device_path, access, 0, CONSTANTS["OPEN_EXISTING"], flags),
        ("TAP_WIN_IOCTL_GET_VERSION", handle, None, 12, ffi.NULL),
        ("TAP_WIN_IOCTL_GET_MAC", handle, None, 6, ffi.NULL),
        ("TAP_WIN_IOCTL_GET_MTU", handle, None, 4, ffi.NULL),
        ("device", handle),
        # Connected (1), with a 4-byte output buffer as OpenVPN gives it (facts 1.1).
        ("TAP_WIN_IOCTL_SET_MEDIA_STATUS", handle, 1, 4, ffi.NULL),
        ("register_with_iocp", handle),  # after every synchronous IOCTL (facts 1.5)
        ("CloseHandle", handle),
    ]
    (event,) = [log for log in logs if log["event"] == events.TAP_ADAPTER_OPENED]
    assert event["log_level"] == "info"
    assert (event["driver_mac"], event["driver_mtu"], event["driver_version"]) == (
        "02:ab:12:34:56:78",
        1500,
        "9.27",
    )
    assert event["index"] == 17
    assert event["luid"] == 0x0006_0000_0100_0000 + chosen.guid.int % 7


async def test_the_link_can_stay_down_until_the_relay_route_is_pinned(
    tap_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``connect_media=False``: open and checked, media disconnected (no route through it
    is active yet) until ``connect_media()``, which connects it and starts the reads."""
    windows = Windows(tap_module, monkeypatch)
    handle = 0x101
    async with tap_module.open_windows_tap(
        [adapter()], chosen_by_user=False, mac=MAC, mtu=1400, connect_media=False
    ) as tap:
        await trio.testing.wait_all_tasks_blocked()
        names = [call[0] for call in windows.calls]
        assert "TAP_WIN_IOCTL_SET_MEDIA_STATUS" not in names
        assert "register_with_iocp" not in names
        assert not tap.media_connected
        assert tap.send_batch([frame(1)]) == 1  # queued for when the link is up
        assert windows.drivers[0].pending == deque()
        mark = len(windows.calls)
        await tap.connect_media()
        await tap.connect_media()  # once is enough
        await trio.testing.wait_all_tasks_blocked()
        assert tap.media_connected
        assert windows.calls[mark:] == [
            ("TAP_WIN_IOCTL_SET_MEDIA_STATUS", handle, 1, 4, ffi.NULL),
            ("register_with_iocp", handle),
        ]
        assert len(windows.drivers[0].pending) == tap_module.OUTSTANDING_READS
        assert windows.drivers[0].written == [frame(1)]
    assert windows.calls[-1] == ("CloseHandle", handle)


async def test_a_wrong_driver_mac_fails_before_the_link_is_connected(
    tap_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    windows = Windows(tap_module, monkeypatch, driver_mac=OTHER_MAC)
    with pytest.raises(ConfigError, match="set-adapter-mac"):
        async with tap_module.open_windows_tap(
            [adapter()], chosen_by_user=False, mac=MAC, mtu=1400
        ):
            pytest.fail("opened an adapter with another MAC")
    names = [call[0] for call in windows.calls]
    assert "TAP_WIN_IOCTL_SET_MEDIA_STATUS" not in names
    assert "register_with_iocp" not in names
    assert names[-1] == "CloseHandle"


async def test_an_adapter_in_use_is_skipped_when_the_player_did_not_choose_it(
    tap_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy, free = adapter("OpenVPN TAP"), adapter("LAN party")
    windows = Windows(tap_module, monkeypatch, busy={busy.device_path})
    async with tap_module.open_windows_tap(
        [busy, free], chosen_by_user=False, mac=MAC, mtu=1400
    ) as tap:
        assert tap.name == "LAN party"
    opened = [call[1] for call in windows.calls if call[0] == "CreateFileW"]
    assert opened == [busy.device_path, free.device_path]


async def test_an_adapter_in_use_that_the_player_chose_is_an_error(
    tap_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = adapter("OpenVPN TAP")
    Windows(tap_module, monkeypatch, busy={busy.device_path})
    with pytest.raises(ConfigError, match="close the other VPN client"):
        async with tap_module.open_windows_tap([busy], chosen_by_user=True, mac=MAC, mtu=1400):
            pytest.fail("opened a busy adapter")


async def test_every_adapter_in_use_is_an_error_naming_them(
    tap_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = adapter("A"), adapter("B")
    Windows(tap_module, monkeypatch, busy={first.device_path, second.device_path})
    with pytest.raises(ConfigError, match=r'\("A", "B"\) is open in another program'):
        async with tap_module.open_windows_tap(
            [first, second], chosen_by_user=False, mac=MAC, mtu=1400
        ):
            pytest.fail("opened a busy adapter")

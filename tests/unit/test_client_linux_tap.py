"""The Linux TAP device's batch logic, without a TAP: slot sizes, and both I/O paths on pipes.

A pipe in packet mode (``O_DIRECT``) keeps the boundaries of what is
written, as a tun fd does: each read hands out one write, and a read
shorter than the packet gets its start (the rest is discarded). So the C
shim's ``lp_tap_read_batch`` / ``lp_tap_write_batch`` and the pure-Python
loop run here on a pipe, each behind ``TapDevice``, with no root and no
network device. The device-specific cases (refused frames, a device gone)
are in tests/netns/test_client_tap.py.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterator, Sequence

import pytest
import trio
import trio.testing

from lanparty import _native
from lanparty.client.linux.tap import BATCH_FRAMES, TapDevice, read_slot_bytes
from lanparty.errors import HostNetworkError
from lanparty.proto.mtu import max_frame

MAC = bytes.fromhex("02aabbccdd01")
MTU = 1400
F_SETPIPE_SZ = 1031
PAGE = os.sysconf("SC_PAGE_SIZE")


def frame(number: int, size: int = 100) -> bytes:
    head = MAC + bytes.fromhex("02aabbccdd02") + b"\x88\xb5" + struct.pack("!I", number)
    return head + bytes(size - len(head))


@pytest.fixture(params=[True, False], ids=["native", "python"])
def native(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A non-blocking pipe in packet mode: (read end, write end)."""
    read_end, write_end = os.pipe2(os.O_DIRECT | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        yield read_end, write_end
    finally:
        for fd in (read_end, write_end):
            try:
                os.close(fd)
            except OSError as exc:  # closed by the test
                assert exc.errno == errno.EBADF  # noqa: PT017


def device(fd: int, native: bool, mtu: int = MTU) -> TapDevice:
    """A TapDevice on ``fd`` (not closed by it: the fixture does)."""
    return TapDevice(fd, "pipe0", MAC, mtu, _native if native else None)


@pytest.mark.parametrize(
    ("mtu", "slot"), [(68, 128), (576, 640), (1389, 1408), (1390, 1472), (1500, 1536)]
)
def test_a_read_slot_holds_the_longest_frame_and_one_byte_more(mtu: int, slot: int) -> None:
    assert read_slot_bytes(mtu) == slot


@pytest.mark.parametrize("mtu", [68, 576, 1280, 1400, 1500, 9000, 65535])
def test_read_slots_are_cache_lines_and_never_more_than_one_too_many(mtu: int) -> None:
    slot = read_slot_bytes(mtu)
    assert slot % 64 == 0
    assert max_frame(mtu) < slot <= max_frame(mtu) + 64


def test_the_native_flag_says_which_path(pipe: tuple[int, int], native: bool) -> None:
    assert device(pipe[0], native).native is native


def test_frames_are_read_in_batches_of_at_most_batch_frames(
    pipe: tuple[int, int], native: bool
) -> None:
    read_end, write_end = pipe
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 128 * PAGE)  # a packet takes a page: room for 128
    sizes = [18, 19, 60, 100, 1000, max_frame(MTU), read_slot_bytes(MTU) - 1]
    sent = [frame(number, sizes[number % len(sizes)]) for number in range(BATCH_FRAMES + 5)]
    for each in sent:
        os.write(write_end, each)
    tap = device(read_end, native)
    first, second, third = tap.read_batch(), tap.read_batch(), tap.read_batch()
    assert (len(first), len(second), third) == (BATCH_FRAMES, 5, [])
    assert first + second == sent
    assert all(type(each) is bytes for each in first)
    assert tap.truncated_frames == 0


def test_frames_read_stay_intact_after_the_next_batch(pipe: tuple[int, int], native: bool) -> None:
    read_end, write_end = pipe
    tap = device(read_end, native)
    os.write(write_end, frame(1))
    first = tap.read_batch()
    os.write(write_end, frame(2))
    assert tap.read_batch() == [frame(2)]
    assert first == [frame(1)]


def test_while_discarding_frames_are_read_counted_and_thrown_away(
    pipe: tuple[int, int], native: bool
) -> None:
    """While no session carries frames, what the PC sends must not wait for the next one."""
    read_end, write_end = pipe
    tap = device(read_end, native)
    tap.set_discarding(True)
    for number in range(3):
        os.write(write_end, frame(number))
    assert tap.read_batch() == []
    assert tap.discarded_frames == 3
    tap.set_discarding(False)
    os.write(write_end, frame(7))
    assert tap.read_batch() == [frame(7)]
    assert tap.discarded_frames == 3


async def test_receive_batch_keeps_reading_while_discarding(
    pipe: tuple[int, int], native: bool, autojump_clock: trio.testing.MockClock
) -> None:
    read_end, write_end = pipe
    tap = device(read_end, native)
    tap.set_discarding(True)
    stale = [frame(number) for number in range(BATCH_FRAMES + 6)]
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 128 * PAGE)
    for each in stale:
        os.write(write_end, each)
    with trio.move_on_after(1) as waited:
        await tap.receive_batch()  # reads on, hands nothing out
    assert waited.cancelled_caught
    assert tap.discarded_frames == len(stale)
    assert tap.read_batch() == []  # nothing left behind for the next session
    tap.set_discarding(False)
    os.write(write_end, frame(99))
    assert await tap.receive_batch() == [frame(99)]


def test_a_frame_that_fills_its_slot_was_cut_and_is_dropped(
    pipe: tuple[int, int], native: bool
) -> None:
    read_end, write_end = pipe
    slot = read_slot_bytes(MTU)
    sent = [frame(0), frame(1, slot), frame(2, slot - 1), frame(3, slot + 500), frame(4)]
    for each in sent:
        os.write(write_end, each)
    tap = device(read_end, native)
    assert tap.read_batch() == [sent[0], sent[2], sent[4]]
    assert tap.truncated_frames == 2


def test_when_the_queue_is_full_the_rest_is_dropped(pipe: tuple[int, int], native: bool) -> None:
    read_end, write_end = pipe
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4 * PAGE)  # four packets, then EAGAIN
    tap = device(write_end, native)
    frames = [frame(number) for number in range(10)]
    assert tap.write_batch(frames) == 4
    assert tap.dropped_frames == 6
    assert tap.write_batch(frames[:3]) == 0
    assert tap.dropped_frames == 9
    assert tap.write_batch([]) == 0
    reader = device(read_end, native)
    assert reader.read_batch() == frames[:4]


def test_a_write_error_is_a_host_network_error(pipe: tuple[int, int], native: bool) -> None:
    read_end, write_end = pipe
    os.close(read_end)
    tap = device(write_end, native)
    with pytest.raises(HostNetworkError, match="cannot write to the TAP device pipe0: Broken pipe"):
        tap.write_batch([frame(0), frame(1)])
    assert tap.dropped_frames == 0


def test_a_read_error_is_a_host_network_error(pipe: tuple[int, int], native: bool) -> None:
    tap = device(pipe[1], native)  # the write end: reading it fails (EBADF)
    with pytest.raises(HostNetworkError, match="cannot read from the TAP device pipe0: Bad file"):
        tap.read_batch()


class ErrorAfterFrames:
    """Stands in for a path's I/O: two frames, then the device is gone."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, fd: int) -> tuple[list[bytes], int, OSError | None]:
        del fd
        self.reads += 1
        gone = OSError(77, os.strerror(77))  # EBADFD: the device was deleted
        return ([frame(0), frame(1)], 1, gone) if self.reads == 1 else ([], 0, gone)

    def write(self, fd: int, frames: Sequence[bytes]) -> tuple[int, int, OSError | None]:
        raise AssertionError("not written to")


async def test_frames_read_before_an_error_come_first_then_the_error(
    pipe: tuple[int, int],
) -> None:
    read_end, write_end = pipe
    os.write(write_end, frame(9))  # readable, for the first wait
    tap = TapDevice(read_end, "gone0", MAC, MTU)
    io = ErrorAfterFrames()
    tap._io = io  # type: ignore[assignment]
    assert await tap.receive_batch() == [frame(0), frame(1)]
    assert tap.truncated_frames == 1
    expected = "cannot read from the TAP device gone0: it is down or was removed"
    with pytest.raises(HostNetworkError, match=expected):
        await tap.receive_batch()  # the error kept from the first read: no wait, no read
    assert io.reads == 1
    with pytest.raises(HostNetworkError, match=expected):
        tap.read_batch()  # read again: still gone
    assert io.reads == 2

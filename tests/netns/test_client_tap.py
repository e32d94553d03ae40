"""The client's TAP device in a namespace of its own: made, configured, frames both ways, gone.

Each test gets a fresh namespace with IPv6 off (no router solicitations on
the new link); test frames carry ethertype 0x88B5 and anything else the
kernel sends is ignored. Every wait is bounded in time and count. Tests
that move frames run twice: through the C shim (``native``) and through the
pure-Python loop (``python``); both must behave the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from lanparty import _native_loader
from lanparty.client.linux.tap import (
    BATCH_FRAMES,
    DEFAULT_TAP_NAME,
    TapDevice,
    read_slot_bytes,
)
from lanparty.errors import ConfigError, HostNetworkError
from tests.netns.netns import add_veth_pair, inside, ip, new_namespace

pytestmark = pytest.mark.netns

ETHERTYPE = struct.pack("!H", 0x88B5)
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
TAP_MAC = bytes.fromhex("02aabbccdd01")
OTHER_MAC = bytes.fromhex("02aabbccdd02")
MTU = 1389
TIMEOUT_S = 5.0
REPO = Path(__file__).resolve().parents[2]
TUNSETSNDBUF = 0x400454D4  # _IOW('T', 212, int)


def make_frame(destination: bytes, number: int, size: int = 100) -> bytes:
    head = destination + OTHER_MAC + ETHERTYPE + struct.pack("!I", number)
    return head + bytes(size - len(head))


def is_test_frame(frame: bytes) -> bool:
    return frame[12:14] == ETHERTYPE


@pytest.fixture
def namespace() -> Iterator[str]:
    with new_namespace() as name:
        for key in ("all", "default"):
            path = f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6"
            with inside(name), contextlib.suppress(OSError), open(path, "w") as file:
                file.write("1")
        yield name


@pytest.fixture(params=[True, False], ids=["native", "python"])
def native(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.fixture
def tap(namespace: str, native: bool) -> Iterator[TapDevice]:
    with inside(namespace):
        device = TapDevice.open(mac=TAP_MAC, mtu=MTU, native=native)
    assert device.native is native
    try:
        yield device
    finally:
        device.close()


@pytest.fixture
def raw(namespace: str, tap: TapDevice) -> Iterator[socket.socket]:
    """A plain AF_PACKET socket on the TAP's interface: the PC's side of the device."""
    with inside(namespace):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.bind((tap.name, ETH_P_ALL))
        yield sock
    finally:
        sock.close()


def link(namespace: str, name: str) -> dict[str, object]:
    shown: list[dict[str, object]] = json.loads(ip("-j", "link", "show", name, namespace=namespace))
    return shown[0]


def raw_receive(sock: socket.socket, count: int) -> list[bytes]:
    """Test frames the interface received, until ``count`` or the timeout."""
    frames: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(frames) < count and (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        frame, address = sock.recvfrom(65536)
        if address[2] != PACKET_OUTGOING and is_test_frame(frame):
            frames.append(frame)
    return frames


async def tap_receive(tap: TapDevice, count: int) -> list[bytes]:
    """Test frames read from the TAP, until ``count`` or the timeout."""
    frames: list[bytes] = []
    with trio.move_on_after(TIMEOUT_S):
        for _ in range(1000):
            if len(frames) >= count:
                break
            await tap.wait_readable()
            frames += [frame for frame in tap.read_batch() if is_test_frame(frame)]
    return frames


def test_the_device_appears_with_its_mac_mtu_and_up(namespace: str, tap: TapDevice) -> None:
    assert tap.name == DEFAULT_TAP_NAME
    shown = link(namespace, DEFAULT_TAP_NAME)
    assert shown["address"] == "02:aa:bb:cc:dd:01"
    assert shown["mtu"] == MTU
    flags = shown["flags"]
    assert isinstance(flags, list)
    assert "UP" in flags
    details = json.loads(ip("-d", "-j", "link", "show", tap.name, namespace=namespace))[0]
    assert details["linkinfo"]["info_kind"] == "tun"
    assert details["linkinfo"]["info_data"]["type"] == "tap"


def test_frames_written_to_the_tap_reach_the_interface(tap: TapDevice, raw: socket.socket) -> None:
    frames = [make_frame(TAP_MAC, number) for number in range(3)]
    frames.append(make_frame(b"\xff" * 6, 3, size=MTU + 14))
    assert tap.write_batch(frames) == 4
    assert raw_receive(raw, 4) == frames
    assert tap.dropped_frames == 0


def test_a_frame_the_kernel_refuses_is_skipped_and_the_rest_still_go(
    tap: TapDevice, raw: socket.socket
) -> None:
    good = [make_frame(TAP_MAC, 0), make_frame(TAP_MAC, 1)]
    assert tap.write_batch([good[0], b"\x02" * 10, good[1]]) == 2
    assert tap.dropped_frames == 1
    assert raw_receive(raw, 2) == good


async def test_frames_sent_on_the_interface_are_read_from_the_tap(
    tap: TapDevice, raw: socket.socket
) -> None:
    frames = [make_frame(OTHER_MAC, number) for number in range(5)]
    frames.append(make_frame(OTHER_MAC, 5, size=MTU + 14))
    for frame in frames:
        raw.send(frame)
    assert await tap_receive(tap, len(frames)) == frames


async def test_while_discarding_frames_are_read_and_thrown_away(
    tap: TapDevice, raw: socket.socket
) -> None:
    """No session: what the PC sends is drained, not kept for the next session."""
    tap.set_discarding(True)
    stale = [make_frame(OTHER_MAC, number) for number in range(BATCH_FRAMES + 10)]
    for frame in stale:
        raw.send(frame)
    with trio.move_on_after(TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tap.receive_batch)  # reads on while discarding, never returns
            while tap.discarded_frames < len(stale):
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert tap.discarded_frames >= len(stale)
    tap.set_discarding(False)
    fresh = make_frame(OTHER_MAC, 1000)
    raw.send(fresh)
    assert await tap_receive(tap, 1) == [fresh]


async def test_a_read_batch_is_capped(tap: TapDevice, raw: socket.socket) -> None:
    total = BATCH_FRAMES + 20
    for number in range(total):
        raw.send(make_frame(OTHER_MAC, number))
    with trio.fail_after(TIMEOUT_S):
        await tap.wait_readable()
    deadline = time.monotonic() + TIMEOUT_S
    batches: list[list[bytes]] = []
    while sum(map(len, batches)) < total and time.monotonic() < deadline and len(batches) < 50:
        batch = [frame for frame in tap.read_batch() if is_test_frame(frame)]
        assert len(batch) <= BATCH_FRAMES
        batches.append(batch)
    numbers = [struct.unpack_from("!I", frame, 14)[0] for batch in batches for frame in batch]
    assert numbers == list(range(total))
    assert len(batches) >= 2


def test_closing_removes_the_device(namespace: str, native: bool) -> None:
    with inside(namespace):
        device = TapDevice.open("lp-close", mac=TAP_MAC, mtu=MTU, native=native)
    assert link(namespace, "lp-close")["ifname"] == "lp-close"
    device.close()
    device.close()  # twice is harmless
    deadline = time.monotonic() + TIMEOUT_S
    gone = False
    while not gone and time.monotonic() < deadline:
        try:
            link(namespace, "lp-close")
        except RuntimeError:
            gone = True
        else:
            time.sleep(0.05)
    assert gone


def test_a_name_in_use_is_a_clear_error(namespace: str, tap: TapDevice, native: bool) -> None:
    with inside(namespace), pytest.raises(ConfigError, match="already in use"):
        TapDevice.open(tap.name, mac=OTHER_MAC, mtu=MTU, native=native)
    add_veth_pair(namespace, "taken0", "taken1")
    with inside(namespace), pytest.raises(ConfigError, match="taken0 is already in use"):
        TapDevice.open("taken0", mac=OTHER_MAC, mtu=MTU, native=native)
    assert link(namespace, "taken0")["ifname"] == "taken0"  # left alone
    assert link(namespace, tap.name)["address"] == "02:aa:bb:cc:dd:01"


@pytest.mark.parametrize(
    ("name", "mac", "mtu", "reason"),
    [
        ("", TAP_MAC, MTU, "cannot name"),
        ("a" * 16, TAP_MAC, MTU, "cannot name"),
        ("a b", TAP_MAC, MTU, "cannot name"),
        ("a/b", TAP_MAC, MTU, "cannot name"),
        ("lp0", bytes.fromhex("03aabbccdd01"), MTU, "multicast"),
        ("lp0", bytes(6), MTU, "not allowed"),
        ("lp0", TAP_MAC, 67, "MTU"),
        ("lp0", TAP_MAC, 65536, "MTU"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_made(
    namespace: str, native: bool, *, name: str, mac: bytes, mtu: int, reason: str
) -> None:
    with inside(namespace), pytest.raises(ConfigError, match=reason):
        TapDevice.open(name, mac=mac, mtu=mtu, native=native)
    assert "lp0" not in ip("link", "show", namespace=namespace)


def test_without_privileges_the_error_says_what_is_needed(namespace: str, native: bool) -> None:
    program = (
        "from lanparty.client.linux.tap import TapDevice\n"
        "from lanparty.errors import ConfigError\n"
        "try:\n"
        "    TapDevice.open('lp-nobody', mac=bytes.fromhex('020000000001'), mtu=1400,\n"
        f"                   native={native})\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        # Still uid 0 (so the checkout stays readable wherever CI cloned it),
        # but with no capabilities at all: CAP_NET_ADMIN is what is missing.
        ["ip", "netns", "exec", namespace, "setpriv", "--bounding-set=-all", "--inh-caps=-all",
         sys.executable, "-c", program],
        capture_output=True, text=True, timeout=30, check=False, cwd="/",
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "not allowed" in result.stdout
    assert "root" in result.stdout
    assert "lp-nobody" not in ip("link", "show", namespace=namespace)


# ------------------------------------------------------------ batches, limits, errors


async def test_a_full_read_batch_holds_batch_frames_and_the_rest_follow(
    tap: TapDevice, raw: socket.socket
) -> None:
    # The TAP queues what the interface sends (up to its txqueuelen, 1000) in
    # the send call itself: all of them wait before the first read.
    total = BATCH_FRAMES + 20
    for number in range(total):
        raw.send(make_frame(OTHER_MAC, number))
    with trio.fail_after(TIMEOUT_S):
        await tap.wait_readable()
    first, second, third = tap.read_batch(), tap.read_batch(), tap.read_batch()
    assert [len(first), len(second), third] == [BATCH_FRAMES, 20, []]
    numbers = [struct.unpack_from("!I", frame, 14)[0] for frame in first + second]
    assert numbers == list(range(total))
    assert all(type(frame) is bytes for frame in first)
    assert tap.truncated_frames == 0


def test_a_write_batch_is_not_capped(tap: TapDevice, raw: socket.socket) -> None:
    frames = [make_frame(TAP_MAC, number) for number in range(3 * BATCH_FRAMES)]
    assert tap.write_batch(frames) == len(frames)
    assert raw_receive(raw, len(frames)) == frames
    assert tap.write_batch([]) == 0
    assert tap.dropped_frames == 0


def test_refused_frames_are_counted_and_the_others_go(tap: TapDevice, raw: socket.socket) -> None:
    good = [make_frame(TAP_MAC, number) for number in range(3)]
    short = [b"", b"\x02" * 10, b"\x02" * 13]  # shorter than an Ethernet header: EINVAL
    batch = [short[0], good[0], short[1], short[2], good[1], short[1], good[2]]
    assert tap.write_batch(batch) == 3
    assert tap.dropped_frames == 4
    assert tap.write_batch([short[1]]) == 0
    assert tap.dropped_frames == 5
    assert raw_receive(raw, 3) == good


def test_when_the_queue_is_full_the_rest_of_the_batch_is_dropped(
    namespace: str, tap: TapDevice
) -> None:
    # Frames written to the TAP are forwarded by a bridge to a port whose
    # queue (tbf at 8 bit/s) keeps them: they stay charged to the TAP's send
    # buffer, made small here, until the kernel refuses more (EAGAIN).
    ip("link", "add", "br0", "type", "bridge", namespace=namespace)
    ip("link", "add", "slow0", "type", "veth", "peer", "name", "slow1", namespace=namespace)
    ip("link", "set", tap.name, "master", "br0", namespace=namespace)
    ip("link", "set", "slow0", "master", "br0", namespace=namespace)
    subprocess.run(
        ["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "slow0", "root", "tbf",
         "rate", "8bit", "burst", "1600", "limit", "10000000"],
        check=True, timeout=10,
    )  # fmt: skip
    for name in ("slow1", "slow0", "br0"):
        ip("link", "set", name, "up", namespace=namespace)
    fcntl.ioctl(tap.fileno(), TUNSETSNDBUF, struct.pack("i", 16384))
    stranger = bytes.fromhex("02aabbccdd09")  # unknown to the bridge: flooded to slow0
    frames = [make_frame(stranger, number) for number in range(400)]
    written = tap.write_batch(frames)
    assert 0 < written < len(frames)
    assert tap.dropped_frames == len(frames) - written
    assert tap.write_batch(frames[:10]) == 0
    assert tap.dropped_frames == len(frames) - written + 10


async def test_a_frame_longer_than_a_read_slot_is_dropped_and_counted(
    namespace: str, tap: TapDevice, raw: socket.socket
) -> None:
    # Only when the MTU was raised behind the TAP's back can a frame be
    # longer than the slots made for its MTU.
    slot = read_slot_bytes(MTU)
    ip("link", "set", tap.name, "mtu", "9000", namespace=namespace)
    frames = [
        make_frame(OTHER_MAC, 0, size=slot - 1),  # the longest a slot keeps
        make_frame(OTHER_MAC, 1, size=slot),  # fills the slot: cut
        make_frame(OTHER_MAC, 2, size=9000),
        make_frame(OTHER_MAC, 3),
    ]
    for frame in frames:
        raw.send(frame)
    received = await tap_receive(tap, 2)
    assert received == [frames[0], frames[3]]
    assert tap.truncated_frames == 2


def test_writing_to_a_device_that_is_down_is_a_clear_error(namespace: str, tap: TapDevice) -> None:
    ip("link", "set", tap.name, "down", namespace=namespace)
    with pytest.raises(HostNetworkError, match=r"write to the TAP device lanparty0: it is down"):
        tap.write_batch([make_frame(TAP_MAC, 0)])


async def test_a_deleted_device_is_a_clear_error(namespace: str, tap: TapDevice) -> None:
    ip("link", "delete", tap.name, namespace=namespace)
    expected = r"the TAP device lanparty0: it is down or was removed"
    with trio.fail_after(TIMEOUT_S), pytest.raises(HostNetworkError, match="read from " + expected):
        await tap.receive_batch()
    with pytest.raises(HostNetworkError, match="read from " + expected):
        tap.read_batch()
    with pytest.raises(HostNetworkError, match="write to " + expected):
        tap.write_batch([make_frame(TAP_MAC, 0)])


def test_by_default_the_shim_is_used(namespace: str) -> None:
    assert _native_loader.native_available(), "pip install -e . did not build lanparty._native"
    with inside(namespace), TapDevice.open(mac=TAP_MAC, mtu=MTU) as device:
        assert device.native is True


def test_without_the_shim_the_python_path_is_used(
    namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lanparty._native", None)  # makes the import fail
    with inside(namespace), pytest.raises(ConfigError, match=r"lanparty\._native\) is not built"):
        TapDevice.open(mac=TAP_MAC, mtu=MTU, native=True)
    assert DEFAULT_TAP_NAME not in ip("link", "show", namespace=namespace)
    with inside(namespace), TapDevice.open(mac=TAP_MAC, mtu=MTU) as device:
        assert device.native is False

"""The client's TAP device in a namespace of its own: made, configured, frames both ways, gone.

Each test gets a fresh namespace with IPv6 off (no router solicitations on
the new link); test frames carry ethertype 0x88B5 and anything else the
kernel sends is ignored. Every wait is bounded in time and count.
"""

from __future__ import annotations

import contextlib
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

from lanparty.client.linux.tap import BATCH_FRAMES, DEFAULT_TAP_NAME, TapDevice
from lanparty.errors import ConfigError
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


@pytest.fixture
def tap(namespace: str) -> Iterator[TapDevice]:
    with inside(namespace):
        device = TapDevice.open(mac=TAP_MAC, mtu=MTU)
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


def test_closing_removes_the_device(namespace: str) -> None:
    with inside(namespace):
        device = TapDevice.open("lp-close", mac=TAP_MAC, mtu=MTU)
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


def test_a_name_in_use_is_a_clear_error(namespace: str, tap: TapDevice) -> None:
    with inside(namespace), pytest.raises(ConfigError, match="already in use"):
        TapDevice.open(tap.name, mac=OTHER_MAC, mtu=MTU)
    add_veth_pair(namespace, "taken0", "taken1")
    with inside(namespace), pytest.raises(ConfigError, match="taken0 is already in use"):
        TapDevice.open("taken0", mac=OTHER_MAC, mtu=MTU)
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
    namespace: str, name: str, mac: bytes, mtu: int, reason: str
) -> None:
    with inside(namespace), pytest.raises(ConfigError, match=reason):
        TapDevice.open(name, mac=mac, mtu=mtu)
    assert "lp0" not in ip("link", "show", namespace=namespace)


def test_without_privileges_the_error_says_what_is_needed(namespace: str) -> None:
    program = (
        "from lanparty.client.linux.tap import TapDevice\n"
        "from lanparty.errors import ConfigError\n"
        "try:\n"
        "    TapDevice.open('lp-nobody', mac=bytes.fromhex('020000000001'), mtu=1400)\n"
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

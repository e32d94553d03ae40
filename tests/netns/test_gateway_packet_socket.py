"""PacketSocket on a real veth pair in a namespace of its own, with the shim and without.

Each test gets a fresh namespace with ``lan0`` (our socket's interface) and
``peer0`` (the wire: a plain AF_PACKET socket sends and receives there).
Test frames carry ethertype 0x88B5 (local experimental); anything else the
kernel puts on the link is ignored. Every wait is bounded in time.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from lanparty.errors import ConfigError, HostNetworkError
from lanparty.gateway import packet_socket
from lanparty.gateway.packet_socket import BATCH_FRAMES, MAX_FRAME_BYTES, PacketSocket
from tests.netns.netns import add_veth_pair, inside, ip, new_namespace, promiscuity

pytestmark = pytest.mark.netns

ETHERTYPE = struct.pack("!H", 0x88B5)
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
BROADCAST = b"\xff" * 6
STRANGER = bytes.fromhex("020000000099")  # a unicast MAC nobody on the link has
PEER_MAC = bytes.fromhex("020000000002")
LINK_MTU = 9500  # room for jumbo frames, and for one longer than MAX_FRAME_BYTES
TIMEOUT_S = 5.0
REPO = Path(__file__).resolve().parents[2]


def make_frame(destination: bytes, number: int, size: int, source: bytes = PEER_MAC) -> bytes:
    """A test frame of ``size`` bytes whose payload starts with its number."""
    head = destination + source + ETHERTYPE + struct.pack("!I", number)
    body = bytes((number + i) % 251 for i in range(size - len(head)))
    return head + body


def is_make_frame(frame: bytes) -> bool:
    return frame[12:14] == ETHERTYPE


@dataclass
class Lan:
    namespace: str
    peer: socket.socket  # raw socket on peer0, the other end of lan0's wire

    def open(self, native: bool | None) -> PacketSocket:
        with inside(self.namespace):
            return PacketSocket.open("lan0", native=native)

    def peer_send(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.peer.send(frame)

    def peer_receive(self, count: int, timeout_s: float = TIMEOUT_S) -> list[bytes]:
        """Test frames that reached peer0 from the wire, until ``count`` or the timeout."""
        frames: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(frames) < count and (left := deadline - time.monotonic()) > 0:
            if not select.select([self.peer], [], [], left)[0]:
                break
            frame, address = self.peer.recvfrom(65536)
            if address[2] != PACKET_OUTGOING and is_make_frame(frame):
                frames.append(frame)
        return frames


@pytest.fixture(params=[True, False], ids=["native", "python"])
def native(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.fixture
def lan() -> Iterator[Lan]:
    with new_namespace() as namespace:
        add_veth_pair(namespace, "lan0", "peer0", mtu=LINK_MTU)
        ip("link", "set", "peer0", "address", PEER_MAC.hex(":"), namespace=namespace)
        with inside(namespace):
            peer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        with peer:
            peer.bind(("peer0", ETH_P_ALL))
            yield Lan(namespace, peer)


async def receive_test_frames(
    sock: PacketSocket, count: int, timeout_s: float = TIMEOUT_S
) -> tuple[list[bytes], list[int]]:
    """Test frames received until ``count`` or the timeout, and the size of each batch."""
    frames: list[bytes] = []
    batch_sizes: list[int] = []
    with trio.move_on_after(timeout_s):
        while len(frames) < count:
            await sock.wait_readable()
            batch = sock.receive_batch()
            batch_sizes.append(len(batch))
            frames += [frame for frame in batch if is_make_frame(frame)]
    return frames, batch_sizes


def test_the_install_built_the_shim() -> None:
    assert packet_socket.native_available(), "pip install -e . did not build lanparty._native"


async def test_frames_from_the_wire_arrive_in_order_and_intact(lan: Lan, native: bool) -> None:
    sizes = [60, 61, 64, 100, 128, 333, 512, 1000, 1499, 1500, 1514, 9014, MAX_FRAME_BYTES]
    with lan.open(native) as sock:
        assert sock.native is native
        destinations = [sock.interface_mac, BROADCAST, STRANGER]
        sent = [make_frame(destinations[n % 3], n, size) for n, size in enumerate(sizes)]
        lan.peer_send(sent)
        received, _ = await receive_test_frames(sock, len(sent))
        assert received == sent
        assert sock.truncated_frames == 0


async def test_a_burst_of_500_is_received_across_calls_with_none_lost(
    lan: Lan, native: bool
) -> None:
    with lan.open(native) as sock:
        sent = [make_frame(sock.interface_mac, n, 60 + n % 1455) for n in range(500)]
        lan.peer_send(sent)
        received, batch_sizes = await receive_test_frames(sock, len(sent))
        assert len(received) == len(sent)
        assert received == sent
        assert max(batch_sizes) <= BATCH_FRAMES
        assert len(batch_sizes) >= len(sent) // BATCH_FRAMES


async def test_our_sends_reach_the_peer_and_never_come_back(lan: Lan, native: bool) -> None:
    with lan.open(native) as sock:
        ours = [
            make_frame(STRANGER, n, size, source=sock.interface_mac)
            for n, size in enumerate([60, 100, 1514, 9014, 200])
        ]
        assert sock.send_batch(ours) == len(ours)
        assert lan.peer_receive(len(ours)) == ours
        # Everything queued for our socket before the peer's sentinel is in front of it.
        sentinel = make_frame(sock.interface_mac, 999, 60)
        lan.peer_send([sentinel])
        received, _ = await receive_test_frames(sock, 1)
        assert received == [sentinel]
        assert sock.receive_batch() == []


@pytest.mark.parametrize("kernel_filter", [True, False], ids=["ignore-outgoing", "pkttype-check"])
async def test_frames_the_host_sends_on_the_interface_are_not_received(
    lan: Lan, native: bool, kernel_filter: bool
) -> None:
    with lan.open(native) as sock:
        if not kernel_filter:  # leave it to the PACKET_OUTGOING check
            with socket.socket(fileno=os.dup(sock.fileno())) as same_socket:
                same_socket.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 0)
        with inside(lan.namespace):
            host = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        with host:
            host.bind(("lan0", 0))
            outgoing = [make_frame(STRANGER, n, 100, source=sock.interface_mac) for n in range(3)]
            for frame in outgoing:
                host.send(frame)
            assert lan.peer_receive(len(outgoing)) == outgoing
        sentinel = make_frame(sock.interface_mac, 999, 60)
        lan.peer_send([sentinel])
        received, _ = await receive_test_frames(sock, 1)
        assert received == [sentinel]


async def test_a_frame_the_kernel_refuses_is_skipped_and_the_rest_still_go(
    lan: Lan, native: bool
) -> None:
    with lan.open(native) as sock:
        first, after = (make_frame(STRANGER, n, 100, source=sock.interface_mac) for n in (1, 2))
        too_long = make_frame(STRANGER, 3, LINK_MTU + 100, source=sock.interface_mac)
        assert sock.send_batch([first, too_long, after]) == 2
        assert lan.peer_receive(2) == [first, after]
        assert sock.send_batch([]) == 0


async def test_promiscuous_while_open_and_not_after_close(lan: Lan, native: bool) -> None:
    assert promiscuity(lan.namespace, "lan0") == 0
    sock = lan.open(native)
    try:
        assert promiscuity(lan.namespace, "lan0") == 1
        to_stranger = [make_frame(STRANGER, n, 200) for n in range(3)]
        lan.peer_send(to_stranger)
        received, _ = await receive_test_frames(sock, len(to_stranger))
        assert received == to_stranger
    finally:
        sock.close()
    assert promiscuity(lan.namespace, "lan0") == 0


async def test_a_truncated_frame_is_dropped_and_counted(lan: Lan, native: bool) -> None:
    with lan.open(native) as sock:
        too_long = make_frame(sock.interface_mac, 1, MAX_FRAME_BYTES + 1)
        whole = make_frame(sock.interface_mac, 2, 1514)
        lan.peer_send([too_long, whole])
        received, _ = await receive_test_frames(sock, 1)
        assert received == [whole]
        assert sock.truncated_frames == 1


async def test_the_interface_going_down_is_a_host_network_error(lan: Lan, native: bool) -> None:
    with lan.open(native) as sock:
        ip("link", "set", "lan0", "down", namespace=lan.namespace)
        with trio.fail_after(TIMEOUT_S), pytest.raises(HostNetworkError, match="down"):
            await receive_until_an_error(sock)


async def receive_until_an_error(sock: PacketSocket) -> None:
    for _ in range(100):
        await sock.wait_readable()
        sock.receive_batch()


def test_the_socket_knows_its_interface(lan: Lan, native: bool) -> None:
    with lan.open(native) as sock:
        assert sock.interface == "lan0"
        with inside(lan.namespace):
            assert sock.ifindex == socket.if_nametoindex("lan0")
        address = ip("link", "show", "lan0", namespace=lan.namespace)
        assert sock.interface_mac.hex(":") in address
        assert sock.fileno() >= 0
        assert sock.receive_batch() == []


def test_a_missing_interface_is_a_clear_error(lan: Lan, native: bool) -> None:
    expected = r"no network interface named 'nope0'; these exist: .*lan0"
    with inside(lan.namespace), pytest.raises(ConfigError, match=expected):
        PacketSocket.open("nope0", native=native)


def test_a_non_ethernet_interface_is_a_clear_error(lan: Lan, native: bool) -> None:
    with inside(lan.namespace), pytest.raises(ConfigError, match="not an Ethernet interface"):
        PacketSocket.open("lo", native=native)


def test_requiring_the_shim_when_it_is_missing_is_a_clear_error(
    lan: Lan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "lanparty._native", None)  # makes the import fail
    assert not packet_socket.native_available()
    with pytest.raises(ConfigError, match=r"lanparty\._native\) is not built"):
        lan.open(native=True)
    with lan.open(native=None) as sock:
        assert sock.native is False


def test_by_default_the_shim_is_used(lan: Lan) -> None:
    with lan.open(native=None) as sock:
        assert sock.native is True


def test_without_cap_net_raw_the_error_says_what_to_do() -> None:
    code = (
        "from lanparty.gateway.packet_socket import PacketSocket\n"
        "from lanparty.errors import ConfigError\n"
        "try:\n"
        "    PacketSocket.open('lo')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    drop = ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw"]
    result = subprocess.run(
        [*drop, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert "run as root or grant CAP_NET_RAW" in result.stdout


def test_elsewhere_than_linux_opening_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert not packet_socket.native_available()
    with pytest.raises(ConfigError, match="the gateway needs Linux"):
        PacketSocket.open("lan0")

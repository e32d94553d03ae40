"""PacketSocket on a real veth pair in a namespace of its own, with the shim and without.

Each test gets a fresh namespace with ``lan0`` (our socket's interface) and
``peer0`` (the wire: a plain AF_PACKET socket sends and receives there).
Test frames carry ethertype 0x88B5 (local experimental); anything else the
kernel puts on the link is ignored. Every wait is bounded in time.

The offload tests put ``peer0`` in a second namespace with an address, so
that the kernel there sends real TCP and UDP over the veth with its
offloads on (a veth's default): checksums left partial, TSO/GSO
super-packets. What the socket hands out must be complete frames.
"""

from __future__ import annotations

import errno
import functools
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from lanparty.errors import ConfigError, HostNetworkError
from lanparty.gateway import packet_socket
from lanparty.gateway.packet_socket import BATCH_FRAMES, MAX_FRAME_BYTES, PacketSocket
from lanparty.proto.offload import OffloadDropReason
from tests.netns.netns import add_veth_pair, inside, ip, new_namespace, promiscuity

pytestmark = pytest.mark.netns

ETHERTYPE = struct.pack("!H", 0x88B5)
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6
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
            batch = sock.read_batch()
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
        assert sock.write_batch(ours) == len(ours)
        assert lan.peer_receive(len(ours)) == ours
        # Everything queued for our socket before the peer's sentinel is in front of it.
        sentinel = make_frame(sock.interface_mac, 999, 60)
        lan.peer_send([sentinel])
        received, _ = await receive_test_frames(sock, 1)
        assert received == [sentinel]
        assert sock.read_batch() == []


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
        assert sock.write_batch([first, too_long, after]) == 2
        assert lan.peer_receive(2) == [first, after]
        assert sock.write_batch([]) == 0


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
        sock.read_batch()


def test_the_socket_knows_its_interface(lan: Lan, native: bool) -> None:
    with lan.open(native) as sock:
        assert sock.interface == "lan0"
        with inside(lan.namespace):
            assert sock.ifindex == socket.if_nametoindex("lan0")
        address = ip("link", "show", "lan0", namespace=lan.namespace)
        assert sock.interface_mac.hex(":") in address
        assert sock.fileno() >= 0
        assert sock.read_batch() == []


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
    assert "needs the capability CAP_NET_RAW, which this process does not hold" in result.stdout


def test_elsewhere_than_linux_opening_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    assert not packet_socket.native_available()
    with pytest.raises(ConfigError, match="the gateway needs Linux"):
        PacketSocket.open("lan0")


# ---------------------------------------------------------------- offloads

GATEWAY_IP = "198.18.99.2"  # lan0's, in the namespace of our socket
FAR_IP = "198.18.99.1"  # peer0's, in the namespace whose kernel sends
INNER_GATEWAY_IP = "198.19.99.2"  # in a VXLAN between the two
TCP_PORT = 5001
UDP_PORT = 5002
SOL_UDP = 17
UDP_SEGMENT = 103
TRANSFER_BYTES = 2 * 1024 * 1024


@dataclass
class KernelLink:
    """lan0 (our socket, GATEWAY_IP) wired to peer0 (FAR_IP) in another namespace."""

    namespace: str
    far: str
    mtu: int

    def open(self, native: bool | None) -> PacketSocket:
        with inside(self.namespace):
            return PacketSocket.open("lan0", native=native)

    def socket(self, namespace: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
        with inside(namespace):
            sock = socket.socket(socket.AF_INET, kind)
        sock.settimeout(TIMEOUT_S)
        return sock


@pytest.fixture(params=[1500, 576], ids=["mtu1500", "mtu576"])
def kernel_link(request: pytest.FixtureRequest) -> Iterator[KernelLink]:
    """At MTU 576 one 64 KiB TSO packet has more segments than a batch holds."""
    mtu: int = request.param
    with new_namespace() as namespace, new_namespace() as far:
        add_veth_pair(namespace, "lan0", "peer0", mtu=mtu)
        ip("link", "set", "peer0", "netns", far, namespace=namespace)
        with inside(far), open("/proc/sys/net/ipv6/conf/all/disable_ipv6", "w") as file:
            file.write("1")
        ip("addr", "add", f"{GATEWAY_IP}/24", "dev", "lan0", namespace=namespace)
        ip("addr", "add", f"{FAR_IP}/24", "dev", "peer0", namespace=far)
        ip("link", "set", "peer0", "up", namespace=far)
        yield KernelLink(namespace, far, mtu)


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def far_ipv4(frame: bytes) -> tuple[int, bytes] | None:
    """(protocol, L4 bytes) of an IPv4 packet from FAR_IP to GATEWAY_IP, its checksums checked."""
    if frame[12:14] != b"\x08\x00" or frame[26:30] != socket.inet_aton(FAR_IP):
        return None
    if struct.unpack_from("!H", frame, 20)[0] & 0x3FFF:  # a fragment: nothing to check
        return None
    assert frame[30:34] == socket.inet_aton(GATEWAY_IP)
    header_bytes = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    assert len(frame) >= 14 + total
    assert ones_sum(frame[14 : 14 + header_bytes]) == 0xFFFF, "bad IPv4 header checksum"
    protocol = frame[23]
    l4 = frame[14 + header_bytes : 14 + total]
    pseudo = frame[26:34] + bytes([0, protocol]) + struct.pack("!H", len(l4))
    if protocol != 17 or l4[6:8] != b"\0\0":  # UDP may go without (VXLAN does)
        assert ones_sum(pseudo + l4) == 0xFFFF, f"bad checksum, protocol {protocol}"
    return protocol, l4


async def collect_while(sock: PacketSocket, done: trio.Event) -> tuple[list[bytes], list[int]]:
    """Frames until ``done`` is set and nothing more comes; and the size of each batch."""
    frames: list[bytes] = []
    batch_sizes: list[int] = []
    with trio.fail_after(60):
        quiet = 0
        while not done.is_set() or quiet < 3:
            with trio.move_on_after(0.2):
                await sock.wait_readable()
            batch = sock.read_batch()
            batch_sizes.append(len(batch))
            frames += batch
            quiet = 0 if batch else quiet + 1
    return frames, batch_sizes


def kernel_drops(sock: PacketSocket) -> int:
    """Packets the kernel dropped for our socket (queue full), from PACKET_STATISTICS."""
    with socket.socket(fileno=os.dup(sock.fileno())) as same_socket:
        statistics = same_socket.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    _, drops = struct.unpack("II", statistics)
    return int(drops)


def tcp_transfer(link: KernelLink, data: bytes, address: str = GATEWAY_IP) -> bytes:
    """Send ``data`` from the far kernel to a server beside lan0; what the server got."""
    with link.socket(link.namespace) as server, link.socket(link.far) as client:
        server.bind((address, TCP_PORT))
        server.listen(1)
        client.connect((address, TCP_PORT))
        connection, _ = server.accept()
        received = bytearray()

        def read() -> None:
            while chunk := connection.recv(1 << 16):
                received.extend(chunk)

        with connection:
            connection.settimeout(TIMEOUT_S)
            reader = threading.Thread(target=read)
            reader.start()
            client.sendall(data)
            client.shutdown(socket.SHUT_WR)
            reader.join(timeout=30)
    return bytes(received)


def udp_sends(link: KernelLink) -> list[bytes]:
    """Datagrams from the far kernel: plain ones, then one with UDP GSO; their payloads."""
    payloads = [b"a", bytes(range(200)), os.urandom(link.mtu - 28)]
    segment = 300 if link.mtu > 576 else 200
    gso_payload = os.urandom(segment * 5 + 17)
    with link.socket(link.far, socket.SOCK_DGRAM) as sender:
        for payload in payloads:
            sender.sendto(payload, (GATEWAY_IP, UDP_PORT))
        sender.setsockopt(SOL_UDP, UDP_SEGMENT, segment)
        sender.sendto(gso_payload, (GATEWAY_IP, UDP_PORT))
    cut = [gso_payload[i : i + segment] for i in range(0, len(gso_payload), segment)]
    return payloads + cut


async def test_kernel_tcp_and_udp_arrive_as_complete_frames(
    kernel_link: KernelLink, native: bool
) -> None:
    data = os.urandom(TRANSFER_BYTES)
    with kernel_link.open(native) as sock:
        done = trio.Event()
        results: list[object] = []

        async def traffic() -> None:
            results.append(await trio.to_thread.run_sync(tcp_transfer, kernel_link, data))
            results.append(await trio.to_thread.run_sync(udp_sends, kernel_link))
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic)
            frames, batch_sizes = await collect_while(sock, done)
        received, udp_payloads = results
        assert received == data

        assert max(batch_sizes) <= BATCH_FRAMES
        assert all(len(frame) <= 14 + kernel_link.mtu for frame in frames)
        tcp: list[bytes] = []
        udp: list[bytes] = []
        for frame in frames:  # every IPv4 packet from the far kernel: checksums valid
            found = far_ipv4(frame)
            if found is not None:
                (tcp if found[0] == 6 else udp).append(found[1])
        # Every TCP payload captured is the data at its sequence number.
        syn = next(segment for segment in tcp if segment[13] & 0x02)
        first = struct.unpack_from("!I", syn, 4)[0] + 1
        carried = 0
        for segment in tcp:
            body = segment[(segment[12] >> 4) * 4 :]
            offset = (struct.unpack_from("!I", segment, 4)[0] - first) % 2**32
            assert body == data[offset : offset + len(body)]
            carried += len(body)
        if kernel_drops(sock) == 0:  # none lost to a full socket buffer: all were captured
            assert carried >= len(data)
        assert [segment[8:] for segment in udp] == udp_payloads
        assert sock.segmented_packets >= 2  # TSO and UDP GSO packets
        assert sock.checksummed_frames >= 4  # the SYN, the plain datagrams
        assert sock.offload_dropped == 0
        assert sock.truncated_frames == 0


async def test_segments_beyond_a_batch_come_in_the_next_one(
    kernel_link: KernelLink, native: bool
) -> None:
    """One UDP GSO packet of 100 segments: 64 in a batch, the rest at once in the next."""
    with kernel_link.open(native) as sock:
        mac = sock.interface_mac.hex(":")
        ip("neigh", "replace", GATEWAY_IP, "lladdr", mac, "dev", "peer0", "nud", "permanent",
           namespace=kernel_link.far)  # fmt: skip
        payload = os.urandom(100 * 50)
        with kernel_link.socket(kernel_link.far, socket.SOCK_DGRAM) as sender:
            sender.setsockopt(SOL_UDP, UDP_SEGMENT, 50)
            sender.sendto(payload, (GATEWAY_IP, UDP_PORT))
        with trio.fail_after(TIMEOUT_S):
            await sock.wait_readable()
        first = sock.read_batch()
        assert len(first) == BATCH_FRAMES
        with trio.fail_after(1):  # nothing new arrives: the rest is already read
            await sock.wait_readable()
        frames = first + sock.read_batch()
        assert sock.read_batch() == []
        datagrams = [far_ipv4(frame) for frame in frames]
        assert [found[1][8:] for found in datagrams if found] == [
            payload[i : i + 50] for i in range(0, len(payload), 50)
        ]
        assert sock.segmented_packets == 1


class RefusingOnce:
    """A packet socket whose next receive fails as packet_recvmsg does for a GSO type
    a virtio_net_hdr cannot express (EINVAL: that packet is gone, the next ones are not)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.refused = False

    def recvfrom(self, size: int) -> tuple[bytes, object]:
        if not self.refused:
            self.refused = True
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return self.sock.recvfrom(size)


async def test_a_packet_the_kernel_cannot_describe_is_counted_and_receiving_goes_on(
    lan: Lan,
) -> None:
    with lan.open(native=False) as sock:
        io = sock._io
        assert isinstance(io, packet_socket._PythonIO)
        io._sock = RefusingOnce(io._sock)  # type: ignore[assignment]
        sent = [make_frame(sock.interface_mac, n, 100) for n in range(3)]
        lan.peer_send(sent)
        received, _ = await receive_test_frames(sock, len(sent))
        assert received == sent
        assert sock.offload_drops == {OffloadDropReason.KERNEL_REFUSED: 1}
        assert sock.offload_dropped == 1


@pytest.mark.parametrize("kernel_link", [1500], indirect=True, ids=["mtu1500"])
async def test_a_tunnelled_gso_packet_is_dropped_and_counted(
    kernel_link: KernelLink, native: bool
) -> None:
    """TCP in VXLAN: the kernel's header cannot say how to cut the tunnel's headers."""
    for namespace, local, remote, inner in (
        (kernel_link.namespace, GATEWAY_IP, FAR_IP, INNER_GATEWAY_IP),
        (kernel_link.far, FAR_IP, GATEWAY_IP, "198.19.99.1"),
    ):
        ip("link", "add", "vx0", "mtu", "1450", "type", "vxlan", "id", "42", "dstport", "4789",
           "local", local, "remote", remote, namespace=namespace)  # fmt: skip
        ip("addr", "add", f"{inner}/24", "dev", "vx0", namespace=namespace)
        ip("link", "set", "vx0", "up", namespace=namespace)
    data = os.urandom(TRANSFER_BYTES // 4)
    with kernel_link.open(native) as sock:
        done = trio.Event()
        results: list[bytes] = []

        async def traffic() -> None:
            transfer = functools.partial(tcp_transfer, kernel_link, data, INNER_GATEWAY_IP)
            results.append(await trio.to_thread.run_sync(transfer))
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic)
            frames, _ = await collect_while(sock, done)
        assert results == [data]  # the namespace's own stack is not affected
        assert sock.offload_drops.get(OffloadDropReason.ENCAPSULATED, 0) >= 1
        assert all(len(frame) <= 14 + kernel_link.mtu for frame in frames)
        for frame in frames:
            far_ipv4(frame)

"""Switch benchmark: microseconds per frame of ``Switch.forward`` (switch + filters).

Not a test. One room with a gateway and four clients; each mix sends one
datagram over and over through ``forward`` on a fake clock that advances
10 ms per frame (100 frames/s, inside every default rate limit), so every
call takes the full path and none is rate-limited.

    python -m benchmarks.switch [--calls 200000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable

from benchmarks._common import client_credentials, gateway_credentials, machine_summary
from lanparty.endpoint.session import hello_for
from lanparty.proto import DropReason
from lanparty.proto.fragments import fragment_frame
from lanparty.relay.switch import Member, RelayLimits, Switch

GATEWAY_MAC = bytes.fromhex("001122334455")
LAN_HOST_MAC = bytes.fromhex("001122334466")
CLIENT_MACS = [bytes.fromhex(f"02000000000{n}") for n in range(1, 5)]
BROADCAST = b"\xff" * 6
STEP_S = 0.01


def ipv4_udp(source_port: int, destination_port: int, payload_bytes: int) -> bytes:
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + payload_bytes, 0)
    udp += bytes(payload_bytes)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes(4), bytes(4)
    )
    return header + udp


def ipv6_udp_behind_options(payload_bytes: int) -> bytes:
    udp = struct.pack("!HHHH", 5000, 5001, 8 + payload_bytes, 0) + bytes(payload_bytes)
    hop_by_hop = bytes([60, 0]) + bytes(6)
    destination_options = bytes([17, 0]) + bytes(6)
    payload = hop_by_hop + destination_options + udp
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), 0, 64, bytes(16), bytes(16)) + payload


def datagram(destination: bytes, source: bytes, ethertype: int, payload: bytes) -> bytes:
    return b"\x10" + destination + source + struct.pack("!H", ethertype) + payload


def build() -> tuple[Switch, Member, list[Member]]:
    switch = Switch(RelayLimits())
    gateway = switch.admit(
        hello_for(gateway_credentials(), mac=GATEWAY_MAC.hex(":"), max_datagram=1419, software=""),
        None,
        0.0,
        datagram_budget=1419,
    ).member
    clients = [
        switch.admit(
            hello_for(client_credentials(mac), mac=mac.hex(":"), max_datagram=1419, software=""),
            None,
            0.0,
            datagram_budget=1419,
        ).member
        for mac in CLIENT_MACS
    ]
    return switch, gateway, clients


def measure(
    forward: Callable[[Member, bytes, float], object],
    sender: Member,
    data: bytes,
    calls: int,
    repeats: int,
) -> float:
    """The best of ``repeats`` runs of ``calls`` calls, in microseconds per call."""
    best_s = float("inf")
    for repeat in range(repeats):
        nows = [(repeat * calls + index) * STEP_S for index in range(calls)]
        started = time.perf_counter()
        for now in nows:
            forward(sender, data, now)
        best_s = min(best_s, time.perf_counter() - started)
    return best_s / calls * 1e6


def _nothing(sender: Member, data: bytes, now: float) -> None:
    pass


def shell_path(switch: Switch) -> Callable[[Member, bytes, float], object]:
    """What the relay's shell does per datagram: ``ingress``, then ``forward`` a whole frame."""
    ingress, forward = switch.ingress, switch.forward

    def step(sender: Member, data: bytes, now: float) -> object:
        whole = ingress(sender, data, now)
        return None if whole is None else forward(sender, whole, now)

    return step


def measure_fragmented(calls: int, repeats: int, size: int, budget: int) -> float:
    """Microseconds per whole frame of ``size`` bytes arriving in fragments of ``budget``."""
    frame = datagram(CLIENT_MACS[1], CLIENT_MACS[0], 0x8137, bytes(size - 14))[1:]
    pieces = [fragment_frame(frame, frame_id, budget) for frame_id in range(1 << 16)]
    best_s = float("inf")
    for repeat in range(repeats):
        switch, _, clients = build()
        step = shell_path(switch)
        sender = clients[0]
        started = time.perf_counter()
        for index in range(calls):
            now = (repeat * calls + index) * STEP_S
            for piece in pieces[index & 0xFFFF] or ():
                step(sender, piece, now)
        best_s = min(best_s, time.perf_counter() - started)
    return best_s / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5, help="report the best run")
    args = parser.parse_args()

    arp = bytes(28)
    ipx = b"\xff\xff\x00\x1e\x00\x04" + bytes(24)
    game_udp = ipv4_udp(27015, 27015, 200)
    full_udp = ipv4_udp(5000, 5001, 1400 - 28)
    ipv6_udp = ipv6_udp_behind_options(200)
    one, two = CLIENT_MACS[0], CLIENT_MACS[1]
    lan = LAN_HOST_MAC
    mixes = [
        ("client unicast to a client (IPX)", datagram(two, one, 0x8137, ipx)),
        ("client broadcast (ARP)", datagram(BROADCAST, one, 0x0806, arp)),
        ("client IPv4 UDP 228 B to a client *", datagram(two, one, 0x0800, game_udp)),
        ("client IPv4 UDP 228 B broadcast *", datagram(BROADCAST, one, 0x0800, game_udp)),
        ("client IPv4 UDP 1400 B to a LAN host *", datagram(lan, one, 0x0800, full_udp)),
        ("client IPv6 UDP behind 2 ext. headers *", datagram(two, one, 0x86DD, ipv6_udp)),
        ("gateway IPv4 UDP 1400 B to a client", datagram(two, lan, 0x0800, full_udp)),
        ("gateway broadcast (ARP)", datagram(BROADCAST, lan, 0x0806, arp)),
        ("client with a spoofed source (dropped)", datagram(two, lan, 0x0806, arp)),
    ]

    print(machine_summary())
    print(
        f"Switch.forward (and the shell's path, Switch.ingress + forward): best of "
        f"{args.repeats} runs of {args.calls} calls per mix, fake clock +{STEP_S * 1000:g} ms "
        "per call"
    )
    loop_us = measure(_nothing, build()[1], b"", args.calls, args.repeats)
    print(f"{'mix':<42} {'forward us':>10} {'+ingress us':>11} {'result':>22}")
    for name, data in mixes:
        switch, gateway, clients = build()
        sender = gateway if name.startswith("gateway") else clients[0]
        # The gateway must have been heard from for its LAN hosts to be known.
        switch.forward(gateway, datagram(BROADCAST, LAN_HOST_MAC, 0x0806, arp), 0.0)
        forward = switch.forward
        result = forward(sender, data, 0.0)
        shown = str(result) if isinstance(result, DropReason) else f"{len(result)} target(s)"
        per_frame_us = measure(forward, sender, data, args.calls, args.repeats) - loop_us
        # A fresh switch: the fake clock starts again, and rate limits must not have run dry.
        switch, gateway, clients = build()
        sender = gateway if name.startswith("gateway") else clients[0]
        switch.forward(gateway, datagram(BROADCAST, LAN_HOST_MAC, 0x0806, arp), 0.0)
        shell_us = measure(shell_path(switch), sender, data, args.calls, args.repeats) - loop_us
        print(f"{name:<42} {per_frame_us:>10.2f} {shell_us:>11.2f} {shown:>22}")
    fragmented_us = measure_fragmented(args.calls // 4, args.repeats, 1518, 1408) - 2 * loop_us
    print(f"{'client 1518 B frame in 2 fragments':<42} {'':>10} {fragmented_us:>11.2f}")
    print("* classified by the client filters")
    print(f"(loop and call overhead of {loop_us:.2f} us per call subtracted)")


if __name__ == "__main__":
    main()

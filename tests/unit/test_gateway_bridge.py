"""The gateway's loop and size checks."""

from __future__ import annotations

from lanparty.gateway.bridge import LOOP, GatewayBridge
from lanparty.proto import DropReason

LAN_HOST, REMOTE = bytes.fromhex("00163e000099"), bytes.fromhex("02000000000a")
BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, size: int = 60) -> bytes:
    return (dst + src + b"\x88\xb5").ljust(size, b"\x00")


def test_lan_frames_pass_unless_too_big_or_from_a_remote_mac() -> None:
    bridge = GatewayBridge(max_frame=1418)
    assert bridge.learn_remote_sources([frame(LAN_HOST, REMOTE)]) == [REMOTE]
    ok, big, looped = (
        frame(BROADCAST, LAN_HOST),
        frame(BROADCAST, LAN_HOST, 1419),
        frame(BROADCAST, REMOTE),
    )
    assert bridge.from_lan([ok, big, looped, ok]) == [ok, ok]
    assert bridge.lan_counters.drops == {DropReason.JUMBO: 1, LOOP: 1}
    assert bridge.lan_counters.rx_frames == 4


def test_remote_sources_are_learned_once_and_multicast_never() -> None:
    bridge = GatewayBridge(max_frame=1418)
    frames = [frame(LAN_HOST, REMOTE), frame(LAN_HOST, REMOTE), frame(LAN_HOST, b"\x03" + bytes(5))]
    assert bridge.learn_remote_sources(frames) == [REMOTE]
    assert bridge.learn_remote_sources(frames) == []
    bridge.forget(REMOTE)
    assert bridge.from_lan([frame(BROADCAST, REMOTE)]) == [frame(BROADCAST, REMOTE)]

"""The CAM refresher's schedule and frames, on a fake clock."""

from __future__ import annotations

import pytest

from lanparty.gateway.cam import (
    CAM_REFRESH_ETHERTYPE,
    CamRefresher,
    is_refresh_frame,
    refresh_frame,
)

GATEWAY = bytes.fromhex("00163e000001")
A, B = bytes.fromhex("02000000000a"), bytes.fromhex("02000000000b")


def sources(frames: list[bytes]) -> list[bytes]:
    return [f[6:12] for f in frames]


def test_refresh_frame_is_addressed_to_the_gateway_itself() -> None:
    frame = refresh_frame(A, GATEWAY)
    assert frame[0:6] == GATEWAY
    assert frame[6:12] == A
    assert int.from_bytes(frame[12:14], "big") == CAM_REFRESH_ETHERTYPE
    assert len(frame) == 60
    assert is_refresh_frame(frame)
    assert not is_refresh_frame(bytes(60))


def test_a_new_mac_is_refreshed_at_once_then_every_interval() -> None:
    cam = CamRefresher(GATEWAY, interval_s=30)
    assert cam.add(A, now=100.0)
    assert not cam.add(A, now=101.0)
    # The batch starts with the gateway's own announcement.
    assert sources(cam.due_frames(100.0)) == [GATEWAY, A]
    assert cam.due_frames(129.9) == []
    assert cam.next_due_at() == 130.0
    assert sources(cam.due_frames(130.0)) == [GATEWAY, A]


def test_each_mac_keeps_its_own_schedule() -> None:
    cam = CamRefresher(GATEWAY, interval_s=10)
    cam.add(A, now=0.0)
    cam.due_frames(0.0)
    cam.add(B, now=4.0)
    assert sources(cam.due_frames(4.0)) == [GATEWAY, B]
    assert sources(cam.due_frames(10.0)) == [GATEWAY, A]
    assert sources(cam.due_frames(14.0)) == [GATEWAY, B]


def test_a_removed_mac_is_no_longer_refreshed() -> None:
    cam = CamRefresher(GATEWAY, interval_s=10)
    cam.add(A, now=0.0)
    cam.add(B, now=0.0)
    cam.due_frames(0.0)
    cam.remove(A)
    assert cam.macs == {B}
    assert sources(cam.due_frames(10.0)) == [GATEWAY, B]
    assert cam.next_due_at() == 20.0
    cam.remove(B)
    assert cam.next_due_at() is None
    assert cam.due_frames(100.0) == []


def test_re_adding_after_removal_refreshes_at_once() -> None:
    cam = CamRefresher(GATEWAY, interval_s=10)
    cam.add(A, now=0.0)
    cam.due_frames(0.0)
    cam.remove(A)
    cam.add(A, now=3.0)
    assert sources(cam.due_frames(3.0)) == [GATEWAY, A]


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        CamRefresher(GATEWAY, interval_s=0)

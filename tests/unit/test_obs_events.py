"""Shared event names."""

from __future__ import annotations

import re

from lanparty.obs import events


def test_every_event_constant_is_listed_and_named_after_its_value() -> None:
    constants = {
        name: value
        for name, value in vars(events).items()
        if name.isupper() and name != "ALL_EVENTS"
    }
    assert set(constants.values()) == events.ALL_EVENTS
    for name, value in constants.items():
        assert value == name.lower()
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", value)


def test_the_events_roles_share_are_present() -> None:
    assert {
        "peer_joined",
        "peer_left",
        "peer_rejected",
        "peer_evicted",
        "frame_path_failed",
        "waiting_for_gateway",
        "invite_rotated",
        "frame_forwarded",
        "frame_dropped",
        "connection_opened",
        "connection_closed",
        "handshake_failed",
        "relay_listening",
        "stats",
    } <= events.ALL_EVENTS

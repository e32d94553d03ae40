"""Event names every role logs under, so that one search finds an event in any role's log.

Pass them as structlog's event: ``log.info(PEER_JOINED, room=..., peer_id=...)``.
"""

from __future__ import annotations

from typing import Final

# relay lifecycle
RELAY_LISTENING: Final = "relay_listening"
RELAY_STOPPED: Final = "relay_stopped"

# QUIC connections, seen from either end
CONNECTION_OPENED: Final = "connection_opened"
CONNECTION_CLOSED: Final = "connection_closed"
HANDSHAKE_FAILED: Final = "handshake_failed"

# endpoint sessions with a relay
SESSION_STARTED: Final = "session_started"
SESSION_RECONNECTING: Final = "session_reconnecting"

# control stream
HELLO_RECEIVED: Final = "hello_received"
PEER_JOINED: Final = "peer_joined"
PEER_LEFT: Final = "peer_left"
PEER_REJECTED: Final = "peer_rejected"
PEER_EVICTED: Final = "peer_evicted"
FRAME_PATH_FAILED: Final = "frame_path_failed"
WAITING_FOR_GATEWAY: Final = "waiting_for_gateway"
INVITE_ROTATED: Final = "invite_rotated"
CONTROL_MESSAGE_IGNORED: Final = "control_message_ignored"
CONTROL_PROTOCOL_ERROR: Final = "control_protocol_error"
STATS: Final = "stats"

# frames (debug level on the hot path)
FRAME_FORWARDED: Final = "frame_forwarded"
FRAME_DROPPED: Final = "frame_dropped"

# the client
CLIENT_STARTED: Final = "client_started"
CLIENT_STATUS: Final = "client_status"
RELAY_ROUTE_REPAIRED: Final = "relay_route_repaired"
WATCHDOG_FAILED: Final = "watchdog_failed"
ROOM_MTU_CHANGED: Final = "room_mtu_changed"
TAP_ADAPTER_OPENED: Final = "tap_adapter_opened"

# host network changes made by the guards
HOST_CHANGE_APPLIED: Final = "host_change_applied"
HOST_CHANGE_RESTORED: Final = "host_change_restored"

ALL_EVENTS: Final = frozenset(
    {
        RELAY_LISTENING,
        RELAY_STOPPED,
        CONNECTION_OPENED,
        CONNECTION_CLOSED,
        HANDSHAKE_FAILED,
        SESSION_STARTED,
        SESSION_RECONNECTING,
        HELLO_RECEIVED,
        PEER_JOINED,
        PEER_LEFT,
        PEER_REJECTED,
        PEER_EVICTED,
        FRAME_PATH_FAILED,
        WAITING_FOR_GATEWAY,
        INVITE_ROTATED,
        CONTROL_MESSAGE_IGNORED,
        CONTROL_PROTOCOL_ERROR,
        STATS,
        FRAME_FORWARDED,
        FRAME_DROPPED,
        CLIENT_STARTED,
        CLIENT_STATUS,
        RELAY_ROUTE_REPAIRED,
        WATCHDOG_FAILED,
        ROOM_MTU_CHANGED,
        TAP_ADAPTER_OPENED,
        HOST_CHANGE_APPLIED,
        HOST_CHANGE_RESTORED,
    }
)

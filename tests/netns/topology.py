"""The namespaces of the end-to-end tests: ``lanparty.demo.world`` (shared with the demo)."""

from lanparty.demo.netns import run
from lanparty.demo.world import (
    CLIENT_UPLINK,
    GATEWAY_UPLINK,
    LAN_HOST_IP,
    LAN_PREFIX,
    RELAY_FOR_CLIENT,
    RELAY_FOR_GATEWAY,
    RELAY_PORT,
    Topology,
    topology,
)

__all__ = [
    "CLIENT_UPLINK",
    "GATEWAY_UPLINK",
    "LAN_HOST_IP",
    "LAN_PREFIX",
    "RELAY_FOR_CLIENT",
    "RELAY_FOR_GATEWAY",
    "RELAY_PORT",
    "Topology",
    "run",
    "topology",
]

"""The relay: rooms, the learning switch, safety filters and rate limits.

- ``switch.py``: admission by room state and ``Switch.forward``, where each
  frame's fate is decided (sans-I/O);
- ``filters.py``: the safety filters; ``ratelimit.py``: token buckets;
- ``service.py``: the Trio shell that moves frames and messages;
- ``cli.py``: ``lanparty-relay`` / ``python -m lanparty.relay``;
- ``metrics.py``: Prometheus text for ``--metrics``.
"""

from lanparty.relay.service import Relay, RelayConfig
from lanparty.relay.switch import Member, RelayLimits, Room, Switch

__all__ = ["Member", "Relay", "RelayConfig", "RelayLimits", "Room", "Switch"]

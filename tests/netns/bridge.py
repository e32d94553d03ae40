"""The relay and gateway as real processes on a topology: ``lanparty.demo.world``.

with running_bridge(tmp_path, "--stats-interval-s", "0.5") as bridge:
    bridge.pin            # the relay's pin, for endpoints
    bridge.topo.client    # the namespace an endpoint runs in
"""

from lanparty.demo.world import Bridge, running_bridge

__all__ = ["Bridge", "running_bridge"]

"""Receive offloads that would break the bridge, off while the gateway runs.

With GRO or LRO on, the kernel merges a TCP flow's segments into one
packet of up to 64 KiB before a packet socket sees it; the gateway would
have to drop it as truncated, and TCP through the bridge would stall on a
real network card. ``receive_offloads_off`` turns both off on the LAN
interface and puts back what it found, on every way out of the block (a
SIGKILL leaves them off, which costs the host some CPU and breaks nothing).
Changing them needs CAP_NET_ADMIN; without it, an offload that is on stops
the gateway with a sentence that names the capability.
"""

from __future__ import annotations

import array
import contextlib
import socket
import struct
import sys
from collections.abc import Iterator

import structlog

from lanparty.capabilities import Capability, lacks, missing_capability
from lanparty.errors import ConfigError, HostNetworkError

log = structlog.get_logger(component="gateway")

SIOCETHTOOL = 0x8946
ETHTOOL_GGRO = 0x2B
ETHTOOL_SGRO = 0x2C
ETHTOOL_GFLAGS = 0x25
ETHTOOL_SFLAGS = 0x26
ETH_FLAG_LRO = 1 << 15
_IFREQ_BYTES = 40


def _ethtool(interface: str, command: int, data: int = 0) -> int:
    """One legacy ethtool get/set (struct ethtool_value); returns its data field."""
    if sys.platform != "linux":
        raise HostNetworkError(f"the gateway needs Linux (ethtool); this is {sys.platform}")
    value = array.array("I", [command, data])
    address = value.buffer_info()[0]
    request = struct.pack("16sP", interface.encode(), address).ljust(_IFREQ_BYTES, b"\0")
    import fcntl  # noqa: PLC0415 (Linux only)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
    return int(value[1])


def gro_enabled(interface: str) -> bool:
    return bool(_ethtool(interface, ETHTOOL_GGRO))


def lro_enabled(interface: str) -> bool:
    return bool(_ethtool(interface, ETHTOOL_GFLAGS) & ETH_FLAG_LRO)


def _set_gro(interface: str, enabled: bool) -> None:
    _ethtool(interface, ETHTOOL_SGRO, int(enabled))


def _set_lro(interface: str, enabled: bool) -> None:
    flags = _ethtool(interface, ETHTOOL_GFLAGS)
    flags = flags | ETH_FLAG_LRO if enabled else flags & ~ETH_FLAG_LRO
    _ethtool(interface, ETHTOOL_SFLAGS, flags)


_OFFLOADS = {"gro": (gro_enabled, _set_gro), "lro": (lro_enabled, _set_lro)}


@contextlib.contextmanager
def receive_offloads_off(interface: str) -> Iterator[None]:
    """GRO and LRO off on ``interface`` inside the block, as they were after it."""
    turned_off: list[str] = []
    try:
        for name, (enabled, set_enabled) in _OFFLOADS.items():
            try:
                if enabled(interface):
                    set_enabled(interface, False)
                    turned_off.append(name)
                    log.info("offload_disabled", interface=interface, offload=name)
            except OSError as exc:
                if isinstance(exc, PermissionError) and lacks(Capability.NET_ADMIN):
                    raise ConfigError(
                        missing_capability(
                            f"turning {name.upper()} off on {interface} (merged packets "
                            "would stall TCP through the bridge)",
                            Capability.NET_ADMIN,
                            unit_hint="examples/systemd/lanparty-gateway@.service",
                        )
                        + f"; or turn it off first: ethtool -K {interface} {name} off"
                    ) from exc
                # A driver without the setting, or one that cannot change it.
                log.warning("offload_unchanged", interface=interface, offload=name, error=str(exc))
        yield
    finally:
        for name in reversed(turned_off):
            try:
                _OFFLOADS[name][1](interface, True)
            except OSError as exc:
                raise HostNetworkError(
                    f"could not turn {name.upper()} back on for {interface} ({exc}); "
                    f"run: ethtool -K {interface} {name} on"
                ) from exc

"""The Linux capabilities this process holds, so a refusal can name the one that is missing.

Neither the relay nor the gateway needs root. The relay needs
``CAP_NET_BIND_SERVICE`` for a port below 1024 (443/udp); the gateway needs
``CAP_NET_RAW`` for its packet socket and ``CAP_NET_ADMIN`` to turn GRO and
LRO off. What decides is the effective set (``CapEff`` in
``/proc/self/status``), not the user id: root in a unit with a bounding set
may lack a capability, and an unprivileged user may hold one in its ambient
set (``AmbientCapabilities=`` in a systemd unit, ``setpriv --ambient-caps``).
"""

from __future__ import annotations

import enum
from pathlib import Path

__all__ = ["Capability", "effective_capabilities", "lacks", "missing_capability"]

STATUS_PATH = Path("/proc/self/status")


class Capability(enum.IntEnum):
    """The capabilities lanparty uses, by bit number (<linux/capability.h>)."""

    NET_BIND_SERVICE = 10
    NET_ADMIN = 12
    NET_RAW = 13

    @property
    def label(self) -> str:
        return f"CAP_{self.name}"


def effective_capabilities(status_path: Path = STATUS_PATH) -> int | None:
    """The effective capability mask (``CapEff``); None where there is no such file (not Linux)."""
    try:
        text = status_path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


def lacks(capability: Capability, status_path: Path = STATUS_PATH) -> bool:
    """True when this process is known not to hold ``capability`` (False if unknown)."""
    mask = effective_capabilities(status_path)
    return mask is not None and not mask >> capability & 1


def missing_capability(action: str, capability: Capability, *, unit_hint: str = "") -> str:
    """The sentence for a refusal: ``action`` needs ``capability``, which we do not hold.

    ``unit_hint`` names where to grant it (e.g. the example unit's file name).
    """
    where = f" (as in {unit_hint})" if unit_hint else ""
    return (
        f"{action} needs the capability {capability.label}, which this process does not "
        f"hold: grant it with AmbientCapabilities={capability.label} in its systemd unit"
        f"{where}, with setpriv --inh-caps=+{capability.name.lower()} "
        f"--ambient-caps=+{capability.name.lower()}, or run as root"
    )

"""Frame devices that move Ethernet frames in batches, and the choice of their I/O path.

Two devices do: the gateway's packet socket on the LAN
(``lanparty.gateway.packet_socket``) and the client's Linux TAP
(``lanparty.client.linux.tap``). Both have the shape ``BatchIO`` gives:
one Trio wake-up (``wait_readable``), one ``read_batch`` of every frame
waiting, one ``write_batch`` of what is to go out, neither ever blocking.

Each moves a batch with the C shim (``lanparty._native``, built from
``native/``) when it can, else with a loop of system calls in Python; the
two paths behave the same. ``select_shim`` makes that choice for both the
same way. What is particular to a device (completing offloads on the
packet socket, discarding on the TAP) stays with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from lanparty._native_loader import load_native
from lanparty.errors import ConfigError

__all__ = ["BATCH_FRAMES", "BatchIO", "select_shim"]

# Frames per read_batch call: one wake-up drains at most this many.
BATCH_FRAMES = 64


@runtime_checkable
class BatchIO(Protocol):
    """A device that reads and writes frames in batches, never blocking.

    Both methods raise ``lanparty.errors.HostNetworkError`` when the device
    or its interface is down or went away. A frame the kernel refuses
    (malformed, longer than the MTU) is skipped and the ones after it still
    go; when the kernel's queue is full, the rest of the batch is dropped.
    """

    def fileno(self) -> int:
        """The file descriptor the device reads and writes."""
        ...

    async def wait_readable(self) -> None:
        """Wait until ``read_batch`` has something to hand out (or an error to raise)."""
        ...

    def read_batch(self) -> list[bytes]:
        """Every frame waiting, up to ``BATCH_FRAMES``; [] when none waits."""
        ...

    def write_batch(self, frames: Sequence[bytes]) -> int:
        """Write ``frames`` and return how many went; the others are dropped."""
        ...


def select_shim(native: bool | None, *, device: str, without: str) -> Any | None:
    """The C shim module a device should use, or None for the pure-Python path.

    ``native``: None uses the shim if it was built, else pure Python; False
    forces pure Python; True requires the shim, and its absence raises
    ``ConfigError`` naming ``device`` (what does the I/O: "packet I/O") and
    ``without`` (how to do without the shim).
    """
    if native is False:
        return None
    shim = load_native()
    if shim is None and native:
        raise ConfigError(
            f"the native {device} shim (lanparty._native) is not built: reinstall "
            "lanparty with a C compiler present (apt-get install gcc libc6-dev; "
            f"pip install -e .), or {without}"
        )
    return shim

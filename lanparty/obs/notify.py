"""Readiness for systemd (``Type=notify``): ``READY=1`` when serving, ``STOPPING=1`` when leaving.

systemd gives a ``Type=notify`` service ``$NOTIFY_SOCKET``: the path of an
AF_UNIX datagram socket, or, when it starts with ``@``, a name in the
abstract namespace (the ``@`` stands for a leading NUL byte). One datagram
of ``KEY=value`` lines is one notification (sd_notify(3)). Without the
variable (not started by systemd, or not ``Type=notify``) nothing is sent,
so the calls cost nothing outside a unit. A send that fails is logged and
otherwise ignored: a relay that serves but cannot say so is still better
than one that stops.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

import structlog

__all__ = ["NOTIFY_SOCKET_VARIABLE", "notify", "notify_ready", "notify_stopping"]

NOTIFY_SOCKET_VARIABLE = "NOTIFY_SOCKET"

log = structlog.get_logger(component="notify")


def _socket_address(text: str) -> str | bytes | None:
    """Where ``$NOTIFY_SOCKET`` points: a path, an abstract name (bytes), None if unusable."""
    if text.startswith("@"):
        return b"\0" + text[1:].encode()
    if text.startswith("/"):
        return text
    return None  # vsock (vsock:CID:PORT) and relative paths: not for services on this host


def notify(*assignments: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``assignments`` (``"READY=1"``, ``"STATUS=..."``) in one datagram.

    True if it was sent; False without ``$NOTIFY_SOCKET`` or when the send failed.
    """
    target = (os.environ if environ is None else environ).get(NOTIFY_SOCKET_VARIABLE, "")
    if sys.platform == "win32" or not target or not assignments:
        return False
    address = _socket_address(target)
    if address is None:
        log.warning("notify_failed", socket=target, error="not an AF_UNIX socket path")
        return False
    message = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as exc:
        log.warning("notify_failed", socket=target, error=exc.strerror or str(exc))
        return False
    return True


def notify_ready(status: str | None = None, *, environ: Mapping[str, str] | None = None) -> bool:
    """``READY=1`` (and ``STATUS=`` for ``systemctl status``): the service is serving."""
    lines = ["READY=1"] if status is None else ["READY=1", f"STATUS={_one_line(status)}"]
    return notify(*lines, environ=environ)


def notify_stopping(*, environ: Mapping[str, str] | None = None) -> bool:
    """``STOPPING=1``: shutting down (peers are being told, state put back)."""
    return notify("STOPPING=1", "STATUS=stopping", environ=environ)


def _one_line(text: str) -> str:
    return " ".join(text.split())

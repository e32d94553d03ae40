"""The project's exception hierarchy: every error has a clear owner.

- ``ProtocolError``: the peer broke the wire protocol (PROTOCOL.md).
- ``ConfigError``: the user gave us something we cannot use.
- ``TransportError``: the QUIC/UDP layer failed; library exceptions are
  mapped to it at the transport edge and never leak upward.
- ``HostNetworkError``: the operating system refused a network change.

Messages are sentences a user can act on. ``ExitCode`` is what the
programs (relay, gateway, client, demo) end with.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit codes of every lanparty program; README.md and the systemd units rely on them."""

    # Stopped by Ctrl+C or SIGTERM (the host restored), or a command that did its work.
    OK = 0
    # Any other failure: a restart may help.
    FAILED = 1
    # A configuration error (a missing capability included), also argparse's code
    # for bad arguments: no restart can help (RestartPreventExitStatus=2).
    CONFIG = 2
    # The relay refused us for good (a stale invite, no operator token it accepts,
    # our place taken by another gateway with our keys).
    REFUSED = 3


class LanpartyError(Exception):
    """Base of every error lanparty raises on purpose."""


class ProtocolError(LanpartyError):
    """The peer sent something the wire protocol does not allow."""


class ConfigError(LanpartyError):
    """A setting, file or argument given by the user cannot be used."""


class TransportError(LanpartyError):
    """The QUIC connection or its UDP socket failed."""


class HostNetworkError(LanpartyError):
    """The operating system refused a change to the host's network state."""


def find_error(
    exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first ``kinds`` error in ``exc`` or, depth first, in its exception groups.

    Nurseries wrap what their tasks raise; a command line shows the user
    the error inside, not the group.
    """
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_error(inner, kinds)
            if found is not None:
                return found
    return None

"""Ctrl+C and SIGTERM become a cancellation, so every ``finally`` runs.

Each role starts ``cancel_on_termination`` first in its main nursery; the
signal cancels the nursery, guards restore the host and connections close,
and the program exits 0.
"""

from __future__ import annotations

import signal

import trio

TERMINATION_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def cancel_on_termination(
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Cancel ``scope`` at the first SIGINT or SIGTERM; return that signal's number."""
    with trio.open_signal_receiver(*TERMINATION_SIGNALS) as received:
        task_status.started()
        async for signal_number in received:
            scope.cancel()
            return int(signal_number)
    raise AssertionError("a signal receiver does not end by itself")

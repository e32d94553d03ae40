"""Ctrl+C and SIGTERM as events a role can act on.

A role either shuts down gracefully first (``wait_for_termination``, then
say goodbye to peers, then cancel) or just cancels its main nursery
(``cancel_on_termination``); either way every ``finally`` runs, guards
restore the host, and the program exits 0.
"""

from __future__ import annotations

import signal

import trio

TERMINATION_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def wait_for_termination(
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> int:
    """Return the number of the first SIGINT or SIGTERM received."""
    with trio.open_signal_receiver(*TERMINATION_SIGNALS) as received:
        task_status.started()
        async for signal_number in received:
            return int(signal_number)
    raise AssertionError("a signal receiver does not end by itself")


async def cancel_on_termination(
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Cancel ``scope`` at the first SIGINT or SIGTERM; return that signal's number."""
    signal_number = await wait_for_termination(task_status=task_status)
    scope.cancel()
    return signal_number

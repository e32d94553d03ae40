"""Tasks that end together: the first to end says why, and the others are cancelled.

A session's tasks at a gateway or a client, a member's loops at the relay:
each is a group whose first task to end (it returns, or fails with a
``LanpartyError``) decides the outcome, typed by the caller. A synchronous
callback (a frame handler inside the transport's pump) ends the group the
same way, with ``end``: no task waits for it to fail.

    async with open_tasks_that_end_together(outcome_of_error) as tasks:
        tasks.start_soon(control_loop)
        handler = ...  # calls tasks.end(outcome) when it cannot go on
    outcome = tasks.outcome  # None: cancelled from outside
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

import trio

from lanparty.errors import LanpartyError

Outcome = TypeVar("Outcome")


class TasksThatEndTogether(Generic[Outcome]):
    def __init__(
        self, nursery: trio.Nursery, outcome_of_error: Callable[[LanpartyError], Outcome]
    ) -> None:
        self._nursery = nursery
        self._outcome_of_error = outcome_of_error
        self.outcome: Outcome | None = None

    def end(self, outcome: Outcome) -> None:
        """Record ``outcome`` (unless one is already) and cancel the tasks; never waits."""
        if self.outcome is None:
            self.outcome = outcome
        self._nursery.cancel_scope.cancel()

    def start_soon(self, task: Callable[[], Awaitable[Outcome]]) -> None:
        self._nursery.start_soon(self._until_ended, task)

    async def _until_ended(self, task: Callable[[], Awaitable[Outcome]]) -> None:
        try:
            outcome = await task()
        except LanpartyError as exc:  # the connection closed, the peer broke the protocol...
            outcome = self._outcome_of_error(exc)
        self.end(outcome)


@asynccontextmanager
async def open_tasks_that_end_together(
    outcome_of_error: Callable[[LanpartyError], Outcome],
) -> AsyncIterator[TasksThatEndTogether[Outcome]]:
    """A nursery whose tasks end together; ``outcome_of_error`` types a task's failure
    (it may re-raise an error it does not expect)."""
    async with trio.open_nursery() as nursery:
        yield TasksThatEndTogether(nursery, outcome_of_error)

"""Tasks that end together: the first outcome wins, the others are cancelled."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from lanparty.errors import HostNetworkError, LanpartyError, TransportError
from lanparty.tasks import open_tasks_that_end_together


def closed(error: LanpartyError) -> str:
    if isinstance(error, TransportError):
        return f"closed: {error}"
    raise error


async def test_the_first_task_to_end_decides_and_the_others_are_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled: list[str] = []

    async def ends_after(seconds: float, outcome: str) -> str:
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            cancelled.append(outcome)
            raise
        return outcome

    async with open_tasks_that_end_together(closed) as tasks:
        tasks.start_soon(lambda: ends_after(2, "second"))
        tasks.start_soon(lambda: ends_after(1, "first"))
        tasks.start_soon(lambda: ends_after(3, "third"))
    assert tasks.outcome == "first"
    assert sorted(cancelled) == ["second", "third"]


async def test_a_failure_is_typed_by_the_caller() -> None:
    async def fails() -> str:
        await trio.lowlevel.checkpoint()
        raise TransportError("idle timeout")

    async with open_tasks_that_end_together(closed) as tasks:
        tasks.start_soon(fails)
        tasks.start_soon(trio.sleep_forever)
    assert tasks.outcome == "closed: idle timeout"


async def test_an_error_the_caller_does_not_expect_propagates() -> None:
    async def fails() -> str:
        await trio.lowlevel.checkpoint()
        raise HostNetworkError("a bug")

    with pytest.RaisesGroup(HostNetworkError):
        async with open_tasks_that_end_together(closed) as tasks:
            tasks.start_soon(fails)


async def test_a_synchronous_callback_ends_them_and_the_first_outcome_stays() -> None:
    async with open_tasks_that_end_together(closed) as tasks:
        tasks.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        tasks.end("the device went away")  # as from a frame handler in the pump
        tasks.end("later")
    assert tasks.outcome == "the device went away"

"""Termination signals cancel the given scope."""

from __future__ import annotations

import os
import signal

import pytest
import trio

from lanparty.signals import cancel_on_termination


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
async def test_a_termination_signal_cancels_the_scope(signal_number: int) -> None:
    got: list[int] = []
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            got.append(await cancel_on_termination(nursery.cancel_scope))

        nursery.start_soon(watch)
        await trio.sleep(0.05)
        os.kill(os.getpid(), signal_number)
        await trio.sleep_forever()
    assert nursery.cancel_scope.cancelled_caught
    assert got == [signal_number]

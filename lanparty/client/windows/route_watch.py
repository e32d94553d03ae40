"""Route change notifications (NotifyRouteChange2) handed from Windows' thread to Trio.

Windows calls the callback that ``iphlpapi.route_changes`` registers on a
thread of its own, one call at a time (windows-facts 2.3), with a row that
lives only for the call. ``RouteChanges.from_windows`` runs there: it
copies the row into a ``Route`` at once (``routes.added_route``) and hands
it to the Trio thread with the run's ``TrioToken`` (thread-safe,
``run_sync_soon``), where ``added_routes`` waits for it. Nothing else
happens on Windows' thread, and nothing of it raises: an error there has
nowhere to go.

No DLL here: this module imports on any OS, and the unit tests call
``from_windows`` from a thread of their own.
"""

from __future__ import annotations

import contextlib
from typing import Any

import trio

from lanparty.client.hostnet import Route
from lanparty.client.windows import routes

__all__ = ["MAX_PENDING_ROUTES", "RouteChanges"]

MAX_PENDING_ROUTES = 4096
"""Routes kept for Trio to judge; past that, Trio is told it lost track (and sweeps)."""


class RouteChanges:
    """``RouteWatch`` fed by Windows' route change callback (see the module docstring)."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self._pending: list[Route] | None = []
        self._arrived = trio.Event()

    def from_windows(self, context: Any, row: Any, notification_type: int) -> None:
        """The callback's body, on Windows' thread."""
        del context
        added = routes.added_route(row, notification_type)
        if added is None:
            return
        with contextlib.suppress(trio.RunFinishedError):  # the client is gone
            self._token.run_sync_soon(self._tell, added.route_by_luid)

    def _tell(self, route: Route) -> None:
        if self._pending is not None:
            if len(self._pending) < MAX_PENDING_ROUTES:
                self._pending.append(route)
            else:
                self._pending = None
        self._arrived.set()

    async def added_routes(self) -> list[Route] | None:
        await self._arrived.wait()
        added, self._pending, self._arrived = self._pending, [], trio.Event()
        return added

"""The journal: how to undo each host-network change, written before the change is made.

A guard records the undo (``Journal.record``), applies its change, and
marks the entry done once the change is restored (``Journal.done``). A
process killed in between leaves the entry in the file; the next start
calls ``restore_pending`` before changing anything, so nothing is left
behind. Every undo is idempotent, so replaying an entry whose change was
never applied, or was already restored, is harmless.

The file is small JSON, replaced atomically (temporary file, fsync,
``os.replace``); it is removed when no entry is pending. A journal that
cannot be read is an error that says where it is and what to do: it is
never deleted silently, because the changes it recorded may still be in
place.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import structlog

from lanparty.client.hostnet import (
    Family,
    HostNetwork,
    InterfaceNotFoundError,
    InterfaceUnavailableError,
    Route,
    RouteNotFoundError,
)
from lanparty.errors import HostNetworkError
from lanparty.obs.events import HOST_CHANGE_RESTORED

log = structlog.get_logger(component="client")

JOURNAL_VERSION = 1
JOURNAL_FILE_NAME = "client-journal.json"


@attrs.frozen
class RestoreMtu:
    """Put the interface's MTU for ``family`` back to ``mtu``."""

    interface_index: int
    family: Family
    mtu: int


@attrs.frozen
class RestoreMetric:
    """Put the interface metric for ``family`` back to ``metric`` (None: automatic)."""

    interface_index: int
    family: Family
    metric: int | None


@attrs.frozen
class DeleteRoute:
    """Delete a route the client added."""

    route: Route


Undo = RestoreMtu | RestoreMetric | DeleteRoute


@attrs.frozen
class PendingUndo:
    """A journal entry: its id and what undoes its change."""

    entry_id: int
    undo: Undo


class JournalCorruptError(HostNetworkError):
    """The journal file exists but cannot be understood."""


def default_journal_path() -> Path:
    """Where the journal lives unless told otherwise: the user's state directory."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "lanparty" / JOURNAL_FILE_NAME


async def undo_change(hostnet: HostNetwork, undo: Undo) -> None:
    """Undo one change; a change whose interface or route is already gone counts as undone."""
    try:
        match undo:
            case RestoreMtu(interface_index=index, family=family, mtu=mtu):
                await hostnet.set_mtu(index, family, mtu)
            case RestoreMetric(interface_index=index, family=family, metric=metric):
                await hostnet.set_metric(index, family, metric)
            case DeleteRoute(route=route):
                await hostnet.delete_route(route)
    except (InterfaceNotFoundError, RouteNotFoundError):
        # the TAP went away with its settings, or the route with its interface
        pass


class Journal:
    """The journal file at ``path`` and its pending entries (read once, at construction)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = default_journal_path() if path is None else path
        self._entries: list[PendingUndo] = []
        self._next_id = 1
        self._load()

    def record(self, undo: Undo) -> int:
        """Write ``undo`` to the file (before its change is made); returns the entry's id."""
        entry = PendingUndo(self._next_id, undo)
        self._write([*self._entries, entry], self._next_id + 1)
        return entry.entry_id

    def done(self, entry_id: int) -> None:
        """Forget an entry whose change is restored."""
        remaining = [entry for entry in self._entries if entry.entry_id != entry_id]
        if len(remaining) != len(self._entries):
            self._write(remaining, self._next_id)

    def pending(self) -> list[PendingUndo]:
        """The entries not yet restored, oldest (first applied) first."""
        return list(self._entries)

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise HostNetworkError(
                f"cannot read the journal of host network changes {self.path}: {exc.strerror}"
            ) from exc
        try:
            entries, next_id = _parse_journal(text)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise JournalCorruptError(
                f"the journal of host network changes {self.path} is unreadable ({exc}). "
                "The changes it recorded (TAP MTU and metric, the host route to the relay) "
                "may still be in place: check them, then delete that file and start again"
            ) from exc
        self._entries = entries
        self._next_id = max([next_id, *(entry.entry_id + 1 for entry in entries)])

    def _write(self, entries: list[PendingUndo], next_id: int) -> None:
        # the in-memory state changes only once the file does
        try:
            if entries:
                self._replace_file(entries, next_id)
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise HostNetworkError(
                f"cannot write the journal of host network changes {self.path}: {exc}; "
                "check that its directory is writable"
            ) from exc
        self._entries = entries
        self._next_id = next_id

    def _replace_file(self, entries: list[PendingUndo], next_id: int) -> None:
        document = {
            "version": JOURNAL_VERSION,
            "next_id": next_id,
            "entries": [{"id": entry.entry_id, **_undo_to_json(entry.undo)} for entry in entries],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            with temporary.open("w", encoding="utf-8") as file:
                json.dump(document, file, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(self.path.parent)


def _parse_journal(text: str) -> tuple[list[PendingUndo], int]:
    document = json.loads(text)
    if document.get("version") != JOURNAL_VERSION:
        raise ValueError(f"unknown version {document.get('version')!r}")
    entries = [
        PendingUndo(_integer(item["id"]), _undo_from_json(item)) for item in document["entries"]
    ]
    return entries, _integer(document["next_id"])


def _fsync_directory(directory: Path) -> None:
    if sys.platform == "win32":
        return  # directories cannot be opened for fsync there; os.replace is enough
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


async def restore_pending(journal: Journal, hostnet: HostNetwork) -> int:
    """Undo every pending entry, newest first, forgetting each one restored; returns how many.

    An entry that cannot be undone stays in the journal. One whose interface
    is unavailable (``InterfaceUnavailableError``: a disabled adapter) is
    logged and waits for a later start, so that the client still starts;
    after trying all of them, the first other failure is raised.
    """
    failures: list[HostNetworkError] = []
    restored = 0
    for entry in reversed(journal.pending()):
        try:
            await undo_change(hostnet, entry.undo)
        except InterfaceUnavailableError as exc:
            log.warning(
                HOST_CHANGE_RESTORED,
                change=_describe(entry.undo),
                after_crash=True,
                ok=False,
                pending=True,
                error=str(exc),
                journal=str(journal.path),
            )
            continue
        except HostNetworkError as exc:
            failures.append(exc)
            continue
        journal.done(entry.entry_id)
        restored += 1
        log.info(HOST_CHANGE_RESTORED, change=_describe(entry.undo), after_crash=True)
    if failures:
        raise failures[0]
    return restored


def _describe(undo: Undo) -> str:
    match undo:
        case RestoreMtu():
            return "mtu"
        case RestoreMetric():
            return "metric"
        case DeleteRoute():
            return "route"


def _route_to_json(route: Route) -> dict[str, Any]:
    return {
        "destination": str(route.destination),
        "gateway": None if route.gateway is None else str(route.gateway),
        "interface_index": route.interface_index,
        "metric": route.metric,
    }


def _route_from_json(item: dict[str, Any]) -> Route:
    gateway = item["gateway"]
    return Route(
        destination=ipaddress.ip_network(item["destination"]),
        gateway=None if gateway is None else ipaddress.ip_address(gateway),
        interface_index=_integer(item["interface_index"]),
        metric=_integer(item["metric"]),
    )


def _integer(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _undo_to_json(undo: Undo) -> dict[str, Any]:
    match undo:
        case RestoreMtu(interface_index=index, family=family, mtu=mtu):
            return {"kind": "mtu", "interface_index": index, "family": family.value, "mtu": mtu}
        case RestoreMetric(interface_index=index, family=family, metric=metric):
            return {
                "kind": "metric",
                "interface_index": index,
                "family": family.value,
                "metric": metric,
            }
        case DeleteRoute(route=route):
            return {"kind": "delete_route", "route": _route_to_json(route)}


def _undo_from_json(item: dict[str, Any]) -> Undo:
    kind = item["kind"]
    if kind == "mtu":
        return RestoreMtu(
            _integer(item["interface_index"]), Family(item["family"]), _integer(item["mtu"])
        )
    if kind == "metric":
        metric = item["metric"]
        return RestoreMetric(
            _integer(item["interface_index"]),
            Family(item["family"]),
            None if metric is None else _integer(metric),
        )
    if kind == "delete_route":
        return DeleteRoute(_route_from_json(item["route"]))
    raise ValueError(f"unknown entry kind {kind!r}")

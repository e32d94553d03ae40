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

The journal is replayed with the rights that change the host's network,
so nobody else may write it: it lives where only root (Windows: only
administrators) can write (``default_journal_path``), and a file or
directory owned by another user, or writable by other users (a directory
above it too, unless sticky like /tmp), is refused with what to do
(``JournalUnsafeError``). It is read through ``O_NOFOLLOW`` (a symlink is
refused) and written into a fresh temporary file (``O_CREAT | O_EXCL |
O_NOFOLLOW``, mode 0600, a name nobody could have prepared), then renamed
over the old one.

Entries name interfaces by number (``HostNetwork``'s) and, where the OS
gives it, by a name that survives a change of number
(``HostNetwork.interface_name``: Linux's interface name; on Windows the
number is a LUID, which does not change). An entry is undone on the
interface that has its name now: when its number now belongs to an
interface of another name and no interface has that name, the change went
with its interface.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import secrets
import stat
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
    IPAddress,
    Route,
    RouteNotFoundError,
    RouterTrust,
)
from lanparty.client.tap_dns import DnsRegistration, InterfaceDns, tap_dns_host
from lanparty.errors import HostNetworkError
from lanparty.obs.events import HOST_CHANGE_RESTORED

log = structlog.get_logger(component="client")

JOURNAL_VERSION = 1
JOURNAL_FILE_NAME = "client-journal.json"


_MAX_JOURNAL_BYTES = 1 << 20
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


@attrs.frozen
class RestoreMtu:
    """Put the interface's MTU for ``family`` back to ``mtu``."""

    interface_index: int
    family: Family
    mtu: int
    interface_name: str | None = None
    """The interface's name when the change was made (see the module docstring)."""


@attrs.frozen
class RestoreMetric:
    """Put the interface metric for ``family`` back to ``metric`` (None: automatic)."""

    interface_index: int
    family: Family
    metric: int | None
    interface_name: str | None = None


@attrs.frozen
class RestoreRouterTrust:
    """Put back what the interface took from routers for ``family`` (``RouterTrust``)."""

    interface_index: int
    family: Family
    trust: RouterTrust
    interface_name: str | None = None


@attrs.frozen
class DeleteRoute:
    """Delete a route the client added."""

    route: Route
    interface_name: str | None = None
    """The name of the route's interface when it was added."""


@attrs.frozen
class RestoreDns:
    """Put back the interface's DNS setting for ``family`` (``tap_dns``; Windows only)."""

    interface_index: int
    family: Family
    dns: InterfaceDns
    interface_name: str | None = None


Undo = RestoreMtu | RestoreMetric | RestoreRouterTrust | RestoreDns | DeleteRoute


@attrs.frozen
class PendingUndo:
    """A journal entry: its id and what undoes its change."""

    entry_id: int
    undo: Undo


class JournalCorruptError(HostNetworkError):
    """The journal file exists but cannot be understood."""


class JournalUnsafeError(HostNetworkError):
    """The journal, or a directory it is in, could be written by someone else."""


def default_journal_path() -> Path:
    """Where the journal lives unless told otherwise: a directory only root (or, on
    Windows, administrators) can write."""
    if sys.platform == "win32":
        base = Path(os.environ.get("PROGRAMDATA") or "C:\\ProgramData") / "lanparty"
    else:
        base = Path("/var/lib/lanparty/client")
    return base / JOURNAL_FILE_NAME


def interface_of(undo: Undo) -> tuple[int, str | None]:
    """The interface ``undo`` acts on: its number and its name (see the module docstring)."""
    match undo:
        case DeleteRoute(route=route, interface_name=name):
            return route.interface_index, name
        case RestoreMtu() | RestoreMetric() | RestoreRouterTrust() | RestoreDns():
            return undo.interface_index, undo.interface_name


async def _current_index(hostnet: HostNetwork, index: int, name: str | None) -> int:
    """The number the interface journaled as (``index``, ``name``) has now."""
    if name is None:
        return index
    try:
        if await hostnet.interface_name(index) == name:
            return index
    except InterfaceNotFoundError:
        pass
    found = await hostnet.find_interface(name)
    if found is None:
        raise InterfaceNotFoundError(f"no interface is called {name} any more")
    return found


async def undo_change(hostnet: HostNetwork, undo: Undo) -> None:
    """Undo one change; a change whose interface or route is already gone counts as undone."""
    try:
        index = await _current_index(hostnet, *interface_of(undo))
        match undo:
            case RestoreMtu(family=family, mtu=mtu):
                await hostnet.set_mtu(index, family, mtu)
            case RestoreMetric(family=family, metric=metric):
                await hostnet.set_metric(index, family, metric)
            case RestoreRouterTrust(family=family, trust=trust):
                await hostnet.set_router_trust(index, family, trust)
            case RestoreDns(family=family, dns=dns):
                dns_host = tap_dns_host(hostnet)
                if dns_host is None:
                    raise HostNetworkError(
                        "the journal asks to put back a TAP's DNS servers, which this "
                        "operating system's back end does not set"
                    )
                await dns_host.set_dns(index, family, dns)
            case DeleteRoute(route=route):
                await hostnet.delete_route(attrs.evolve(route, interface_index=index))
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
        text = _read_checked(self.path)
        if text is None:
            return
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
        _make_directory(self.path.parent)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        descriptor = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=1)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(self.path.parent)


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _owner_ok(uid: int) -> bool:
    """Root's, or this process's own (a client run with CAP_NET_ADMIN as a user)."""
    if sys.platform == "win32":
        raise AssertionError("on Windows, owners are judged by windows.acl")
    return uid in (0, os.geteuid())


def _unsafe(path: Path, what: str, fix: str) -> JournalUnsafeError:
    who = "administrators" if sys.platform == "win32" else "root"
    return JournalUnsafeError(
        f"the journal of host network changes {path}: {what}. lanparty replays it with the "
        f"rights that change this PC's network, so only {who} may write it: {fix}"
    )


def _check_directories(directory: Path) -> None:
    """``directory`` and those above it: ours or root's, closed to others' writes.

    Above it, a directory others can write is accepted when it is sticky
    (/tmp): nobody else can move ours out of it.
    """
    if sys.platform == "win32":
        _check_windows_directory(directory)
        return
    resolved = directory.resolve()
    for at, current in enumerate((resolved, *resolved.parents)):
        try:
            info = current.stat()
        except OSError as exc:
            raise HostNetworkError(f"cannot look at {current}: {exc.strerror}") from exc
        if not _owner_ok(info.st_uid):
            raise _unsafe(
                current, f"the directory belongs to another user (uid {info.st_uid})",
                f"give it to root (chown root {current}) or choose another --journal",
            )  # fmt: skip
        others_may_write = info.st_mode & _OTHERS_WRITE
        if others_may_write and (at == 0 or not info.st_mode & stat.S_ISVTX):
            raise _unsafe(
                current,
                f"the directory is writable by other users (mode {stat.S_IMODE(info.st_mode):04o})",
                f"run chmod go-w {current}",
            )


def _check_windows_directory(directory: Path) -> None:
    """Windows: the journal's directory is owned by administrators (or SYSTEM, or the
    elevated user running the client), and nobody else may change it
    (``windows.acl.judge``).

    The directories above it are not judged: %ProgramData% lets Users make
    directories in it by design, but not take one of Administrators' away.
    """
    problem = _windows_write_access_problem(directory)
    if problem is not None:
        raise _unsafe(
            directory,
            problem,
            "check what the journal in it says, then remove the directory "
            f'(rmdir /s "{directory}") and start again: lanparty makes it anew, for '
            "administrators only",
        )


def _windows_write_access_problem(path: Path) -> str | None:
    if sys.platform != "win32":
        raise AssertionError("the Windows checks run on Windows")
    from lanparty.client.windows.file_security import write_access_problem  # noqa: PLC0415

    return write_access_problem(path)


def _make_directory(directory: Path) -> None:
    try:
        if sys.platform == "win32":
            from lanparty.client.windows.file_security import (  # noqa: PLC0415
                make_admin_only_directory,
            )

            make_admin_only_directory(directory)
        else:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise HostNetworkError(f"cannot create the directory {directory}: {exc.strerror}") from exc
    _check_directories(directory)


def _read_checked(path: Path) -> str | None:
    """The journal's text (None: there is none), once it and its directories are safe."""
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _unsafe(
                path, "it is a symbolic link", f"remove it (rm {path}) and start again"
            ) from exc
        raise HostNetworkError(
            f"cannot read the journal of host network changes {path}: {exc.strerror}"
        ) from exc
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise _unsafe(path, "it is not a regular file", "remove it and start again")
        _check_directories(path.parent)
        if sys.platform == "win32":
            # st_uid is 0 and st_mode says 0o666 for every writable file there
            problem = _windows_write_access_problem(path)
            if problem is not None:
                raise _unsafe(path, problem, "check what it says, then delete it and start again")
        elif not _owner_ok(info.st_uid):
            raise _unsafe(
                path, f"it belongs to another user (uid {info.st_uid})",
                "check what it says, then delete it and start again",
            )  # fmt: skip
        elif info.st_mode & _OTHERS_WRITE:
            raise _unsafe(
                path,
                f"it is writable by other users (mode {stat.S_IMODE(info.st_mode):04o})",
                "check what it says, then delete it and start again",
            )
        data = os.read(descriptor, _MAX_JOURNAL_BYTES + 1)
    except OSError as exc:
        raise HostNetworkError(
            f"cannot read the journal of host network changes {path}: {exc.strerror}"
        ) from exc
    finally:
        os.close(descriptor)
    if len(data) > _MAX_JOURNAL_BYTES:
        raise JournalCorruptError(
            f"the journal of host network changes {path} is too large to be one: check it, "
            "then delete that file and start again"
        )
    return data.decode("utf-8", errors="replace")


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
        case RestoreRouterTrust():
            return "router_trust"
        case RestoreDns():
            return "dns"
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
    name = {"interface_name": undo.interface_name} if undo.interface_name is not None else {}
    match undo:
        case RestoreMtu(interface_index=index, family=family, mtu=mtu):
            fields: dict[str, Any] = {"kind": "mtu", "interface_index": index, "mtu": mtu}
            return {**fields, "family": family.value, **name}
        case RestoreMetric(interface_index=index, family=family, metric=metric):
            fields = {"kind": "metric", "interface_index": index, "metric": metric}
            return {**fields, "family": family.value, **name}
        case RestoreRouterTrust(interface_index=index, family=family, trust=trust):
            fields = {
                "kind": "router_trust",
                "interface_index": index,
                "router_discovery": trust.router_discovery,
                "default_routes": trust.default_routes,
            }
            return {**fields, "family": family.value, **name}
        case RestoreDns(interface_index=index, family=family, dns=dns):
            fields = {
                "kind": "dns",
                "interface_index": index,
                "servers": None if dns.servers is None else [str(s) for s in dns.servers],
                "registration": dns.registration.value,
            }
            return {**fields, "family": family.value, **name}
        case DeleteRoute(route=route):
            return {"kind": "delete_route", "route": _route_to_json(route), **name}


def _name(item: dict[str, Any]) -> str | None:
    name = item.get("interface_name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"expected an interface name, got {name!r}")
    return name


def _servers(value: object) -> tuple[IPAddress, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(server, str) for server in value):
        raise TypeError(f"expected a list of DNS server addresses, got {value!r}")
    return tuple(ipaddress.ip_address(server) for server in value)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _undo_from_json(item: dict[str, Any]) -> Undo:
    kind = item["kind"]
    if kind == "mtu":
        return RestoreMtu(
            _integer(item["interface_index"]),
            Family(item["family"]),
            _integer(item["mtu"]),
            _name(item),
        )
    if kind == "metric":
        metric = item["metric"]
        return RestoreMetric(
            _integer(item["interface_index"]),
            Family(item["family"]),
            None if metric is None else _integer(metric),
            _name(item),
        )
    if kind == "router_trust":
        trust = RouterTrust(_integer(item["router_discovery"]), _boolean(item["default_routes"]))
        return RestoreRouterTrust(
            _integer(item["interface_index"]), Family(item["family"]), trust, _name(item)
        )
    if kind == "dns":
        return RestoreDns(
            _integer(item["interface_index"]),
            Family(item["family"]),
            InterfaceDns(_servers(item["servers"]), DnsRegistration(item["registration"])),
            _name(item),
        )
    if kind == "delete_route":
        return DeleteRoute(_route_from_json(item["route"]), _name(item))
    raise ValueError(f"unknown entry kind {kind!r}")

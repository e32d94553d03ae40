"""The console window the client runs in: closing it, and does it close when we exit?

**Closing the window** (and logging off, shutting down: ``CTRL_CLOSE_EVENT``,
``CTRL_LOGOFF_EVENT``, ``CTRL_SHUTDOWN_EVENT``) ends the process with no
restore by default: Python handles only Ctrl+C. ``interrupt_on_close``
installs a console control handler (``SetConsoleCtrlHandler``) that turns
those events, and Ctrl+Break, into a Ctrl+C for the main thread
(``_thread.interrupt_main``), so the client stops as after Ctrl+C: guards
restored newest first (IP Helper calls, milliseconds), then the network
category (a PowerShell, about a second), then the TAP closed. Windows runs
the handler in a thread of its own and ends the process when it returns or
after its timeout, 5 s by default (SPI_GETHUNGAPPTIMEOUT for a close,
SPI_GETWAITTOKILLTIMEOUT for logoff and shutdown; microsoft/terminal
doc/ConsoleCtrlEvent.md): so the handler returns only once the block is
left, i.e. the restore done. What does not fit stays in the journal for the
next start. Windows does not call a console handler at logoff and shutdown
in a process that has loaded user32.dll (Microsoft's SetConsoleCtrlHandler
page); those then end the process as before.

**Does the window close when we exit?** A failed client must leave its error on screen (``elevation.
keep_window_open_on_error`` waits for Enter then). Whether the window would
vanish is decided from the processes attached to the console
(``GetConsoleProcessList``) and the process tree (a ``Toolhelp32``
snapshot): it goes with us when every other process on it is an ancestor
of ours that waits for us, such as pip's ``lanparty-client.exe`` launcher
(distlib's: it starts python.exe on its own console and waits) or a
virtual environment's ``python.exe`` (a redirector to the real one). It
stays when a shell that started us holds it (cmd.exe, PowerShell, the shell
in a Windows Terminal tab), or when a process that is not our ancestor
shares it. Counting the processes alone cannot tell a launcher from a
shell: the shortcut's window has two, and closed with the error in it.

Imports anywhere (the decision and the snapshot reading are tested on
Linux against a fake kernel32); the DLL is opened on first use, Windows
only.
"""

from __future__ import annotations

import _thread
import functools
import signal
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import attrs
import structlog

from lanparty.client.windows._decl_kernel32 import CONSTANTS, ffi
from lanparty.obs.events import HOST_CHANGE_RESTORED

__all__ = [
    "CLOSE_WAIT_S",
    "SHELLS",
    "CloseHandler",
    "ProcessEntry",
    "console_processes",
    "interrupt_on_close",
    "process_table",
    "window_closes_when_we_exit",
    "window_closes_with_us",
]

log = structlog.get_logger(component="client")

CLOSE_WAIT_S = 20.0
"""The longest the handler holds the process for the restore. Windows' own timeout
(5 s unless changed) usually ends it first; this only bounds a handler that would
otherwise never return."""
_ENDING: Final = frozenset(
    CONSTANTS[name] for name in ("CTRL_CLOSE_EVENT", "CTRL_LOGOFF_EVENT", "CTRL_SHUTDOWN_EVENT")
)
# The C runtime's handler, after ours, turns Ctrl+C into Python's SIGINT.
_LEFT_TO_PYTHON: Final = frozenset({CONSTANTS["CTRL_C_EVENT"]})
# Callbacks Windows may still call (a handler thread outlives the block): never freed.
_CALLBACKS: list[Any] = []

SHELLS: Final = frozenset(
    {
        "cmd.exe",
        "powershell.exe",
        "powershell_ise.exe",
        "pwsh.exe",
        "bash.exe",
        "sh.exe",
        "zsh.exe",
        "fish.exe",
        "nu.exe",
        "wsl.exe",
        "tcc.exe",
        "far.exe",
    }
)
"""Programs that outlive the command they ran, keeping its window (lower case)."""

_FIRST_GUESS_PROCESSES: Final = 16


@attrs.frozen
class ProcessEntry:
    """One process of the snapshot: its id, its parent's id, its executable's file name."""

    pid: int
    parent_pid: int
    exe_name: str


def window_closes_with_us(
    own_pid: int, on_console: Collection[int], processes: Mapping[int, ProcessEntry]
) -> bool:
    """Whether the console window goes away when ``own_pid`` exits.

    ``on_console``: the processes attached to the console; ``processes``:
    the process tree by pid. Our ancestors are followed while they share
    the console (a parent off it, or whose pid now names another process
    off it, ends the walk); a shell among them keeps the window, and so does
    any other process on it.
    """
    others = set(on_console) - {own_pid}
    ancestors: set[int] = set()
    pid = own_pid
    while pid in processes:
        parent = processes[pid].parent_pid
        if parent not in others or parent in ancestors or parent not in processes:
            break
        if processes[parent].exe_name.casefold() in SHELLS:
            return False
        ancestors.add(parent)
        pid = parent
    return others <= ancestors


@functools.cache
def _kernel32() -> Any:
    return ffi.dlopen("kernel32.dll")


def console_processes() -> list[int]:
    """The ids of the processes attached to this console ([] without one)."""
    size = _FIRST_GUESS_PROCESSES
    while True:
        pids = ffi.new("uint32_t[]", size)
        count = int(_kernel32().GetConsoleProcessList(pids, size))
        if count <= size:
            return [int(pids[i]) for i in range(count)]
        size = count  # too small a buffer: it was left unfilled, and count says what is needed


def process_table() -> dict[int, ProcessEntry]:
    """Every process, by pid (``OSError`` when no snapshot can be taken)."""
    kernel32 = _kernel32()
    snapshot = kernel32.CreateToolhelp32Snapshot(CONSTANTS["TH32CS_SNAPPROCESS"], 0)
    if int(ffi.cast("intptr_t", snapshot)) == CONSTANTS["INVALID_HANDLE_VALUE"]:
        code, reason = ffi.getwinerror()
        raise OSError(f"cannot list the processes ({reason}, error {code})")
    try:
        entry = ffi.new("PROCESSENTRY32W *")
        entry.dwSize = ffi.sizeof("PROCESSENTRY32W")
        processes: dict[int, ProcessEntry] = {}
        more = kernel32.Process32FirstW(snapshot, entry)
        while more:
            name = bytes(ffi.buffer(entry.szExeFile)).decode("utf-16-le", errors="replace")
            pid = int(entry.th32ProcessID)
            processes[pid] = ProcessEntry(
                pid, int(entry.th32ParentProcessID), name.partition("\0")[0]
            )
            more = kernel32.Process32NextW(snapshot, entry)
        return processes
    finally:
        kernel32.CloseHandle(snapshot)


def window_closes_when_we_exit() -> bool:
    """Whether this process's console window goes away with it (see the module docstring).

    Without a process snapshot, only a console of our own is known to close.
    """
    own_pid = int(_kernel32().GetCurrentProcessId())
    on_console = console_processes()
    try:
        processes = process_table()
    except OSError:
        return set(on_console) <= {own_pid}
    return window_closes_with_us(own_pid, on_console, processes)


def _interrupt_main() -> None:
    _thread.interrupt_main(signal.SIGINT)


class CloseHandler:
    """The console control handler's logic (Windows calls ``handle`` in a thread of its own)."""

    def __init__(self, interrupt: Callable[[], None]) -> None:
        self._interrupt = interrupt
        self._interrupted = threading.Lock()
        self._restored = threading.Event()
        self.closing = False
        """Whether a close, logoff or shutdown arrived."""

    def handle(self, ctrl_type: int) -> int:
        """TRUE (1) when handled; FALSE (0) passes the event to the next handler."""
        if ctrl_type in _LEFT_TO_PYTHON:
            return 0
        if ctrl_type in _ENDING:
            self.closing = True
        # Once: a second Ctrl+C would interrupt the restore the first one started.
        if self._interrupted.acquire(blocking=False):
            self._interrupt()
        if self.closing:
            # Windows ends the process as soon as this returns.
            self._restored.wait(CLOSE_WAIT_S)
        return 1

    def restored(self) -> None:
        """The restore is over: a waiting handler may return and let Windows end us."""
        self._restored.set()


@contextmanager
def interrupt_on_close(interrupt: Callable[[], None] = _interrupt_main) -> Iterator[CloseHandler]:
    """Inside the block, closing the window stops the client as Ctrl+C does (see the module).

    Leave the block once everything is restored. A handler Windows refuses
    is logged, and the block runs without it.
    """
    handler = CloseHandler(interrupt)
    callback = ffi.callback("PHANDLER_ROUTINE", handler.handle, onerror=_handler_failed)
    _CALLBACKS.append(callback)
    if not _kernel32().SetConsoleCtrlHandler(callback, 1):
        code, reason = ffi.getwinerror()
        log.warning(
            HOST_CHANGE_RESTORED,
            ok=False,
            error=f"closing this window will not put the host's network back ({reason}, "
            f"error {code}): stop lanparty-client with Ctrl+C",
        )
        yield handler
        return
    try:
        yield handler
    finally:
        handler.restored()
        _kernel32().SetConsoleCtrlHandler(callback, 0)


def _handler_failed(exc_type: object, exc: object, traceback: object) -> int:
    return 0  # the next handler (in the end, Windows' own: the process ends)

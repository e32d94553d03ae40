"""The console window the client runs in: does it close when we exit?

A failed client must leave its error on screen (``elevation.
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

import functools
from collections.abc import Collection, Mapping
from typing import Any, Final

import attrs

from lanparty.client.windows._decl_kernel32 import CONSTANTS, ffi

__all__ = [
    "SHELLS",
    "ProcessEntry",
    "console_processes",
    "process_table",
    "window_closes_when_we_exit",
    "window_closes_with_us",
]

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

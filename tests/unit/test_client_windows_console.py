"""The console window: does it close when we exit (the process tree decides), and its close.

``console.py`` imports anywhere; its kernel32 calls go to a fake here that
answers ``GetConsoleProcessList`` and walks a process table the way
``CreateToolhelp32Snapshot``/``Process32FirstW``/``Process32NextW`` do,
filling the real cffi ``PROCESSENTRY32W``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import structlog.testing

from lanparty.client.windows import _decl_kernel32, console
from lanparty.client.windows.console import ProcessEntry, window_closes_with_us

ffi = _decl_kernel32.ffi
CONSTANTS = _decl_kernel32.CONSTANTS

EXPLORER = ProcessEntry(100, 4, "explorer.exe")
US = 500


def tree(*chain: str, start: int = 200) -> tuple[dict[int, ProcessEntry], list[int]]:
    """Explorer starts ``chain[0]``, which starts ``chain[1]``, ..., which starts us.

    Every process of the chain and we are on one console (explorer is not).
    """
    processes = {EXPLORER.pid: EXPLORER}
    parent = EXPLORER.pid
    on_console = []
    for offset, name in enumerate(chain):
        pid = start + offset
        processes[pid] = ProcessEntry(pid, parent, name)
        on_console.append(pid)
        parent = pid
    processes[US] = ProcessEntry(US, parent, "python.exe")
    return processes, [*on_console, US]


@pytest.mark.parametrize(
    ("chain", "closes"),
    [
        # The shortcut: pip's launcher owns the console and waits for python.exe.
        (["lanparty-client.exe"], True),
        # The same through a virtual environment's python.exe, a redirector too.
        (["lanparty-client.exe", "python.exe"], True),
        # The elevated relaunch: python.exe in a console of its own.
        ([], True),
        (["python.exe"], True),
        # Started from a shell: the shell keeps the window.
        (["cmd.exe", "lanparty-client.exe"], False),
        (["cmd.exe"], False),
        (["PowerShell.exe", "lanparty-client.exe", "python.exe"], False),
        (["pwsh.exe", "lanparty-client.exe"], False),  # Windows Terminal's shell
        (["py.exe"], True),
    ],
)
def test_the_window_closes_with_us_unless_a_shell_holds_it(chain: list[str], closes: bool) -> None:
    processes, on_console = tree(*chain)
    assert window_closes_with_us(US, on_console, processes) is closes


def test_a_process_on_the_console_that_is_not_our_ancestor_keeps_it() -> None:
    processes, on_console = tree("lanparty-client.exe")
    processes[300] = ProcessEntry(300, EXPLORER.pid, "monitor.exe")
    assert window_closes_with_us(US, [*on_console, 300], processes) is False


def test_a_parent_pid_reused_by_another_process_is_not_followed() -> None:
    """The launcher exited and its pid went to an unrelated process off this console."""
    processes = {US: ProcessEntry(US, 200, "python.exe"), 200: ProcessEntry(200, 4, "cmd.exe")}
    assert window_closes_with_us(US, [US], processes) is True


class FakeToolhelp:
    """kernel32's console process list and process snapshot, over a table of processes."""

    def __init__(
        self,
        processes: Sequence[ProcessEntry],
        on_console: Sequence[int],
        *,
        snapshot_fails: bool = False,
    ) -> None:
        self.processes = list(processes)
        self.on_console = list(on_console)
        self.snapshot_fails = snapshot_fails
        self.snapshots_open = 0
        self._position = 0

    def GetConsoleProcessList(self, pids: Any, size: int) -> int:  # noqa: N802
        if len(self.on_console) <= size:
            for index, pid in enumerate(self.on_console):
                pids[index] = pid
        return len(self.on_console)

    def GetCurrentProcessId(self) -> int:  # noqa: N802
        return US

    def CreateToolhelp32Snapshot(self, flags: int, pid: int) -> Any:  # noqa: N802
        assert (flags, pid) == (CONSTANTS["TH32CS_SNAPPROCESS"], 0)
        if self.snapshot_fails:
            return ffi.cast("HANDLE", CONSTANTS["INVALID_HANDLE_VALUE"])
        self.snapshots_open += 1
        self._position = 0
        return ffi.cast("HANDLE", 0x77)

    def _fill(self, entry: Any) -> int:
        assert entry.dwSize == ffi.sizeof("PROCESSENTRY32W")
        if self._position == len(self.processes):
            return 0
        process = self.processes[self._position]
        self._position += 1
        entry.th32ProcessID = process.pid
        entry.th32ParentProcessID = process.parent_pid
        name = process.exe_name.encode("utf-16-le") + b"\0\0"
        ffi.memmove(entry.szExeFile, name, len(name))
        return 1

    def Process32FirstW(self, snapshot: Any, entry: Any) -> int:  # noqa: N802
        self._position = 0
        return self._fill(entry)

    def Process32NextW(self, snapshot: Any, entry: Any) -> int:  # noqa: N802
        return self._fill(entry)

    def CloseHandle(self, handle: Any) -> int:  # noqa: N802
        assert int(ffi.cast("uintptr_t", handle)) == 0x77
        self.snapshots_open -= 1
        return 1


def test_the_process_table_is_read_from_a_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    processes, _ = tree("lanparty-client.exe", "python.exe")
    processes[300] = ProcessEntry(300, 100, "Ünïcode-tool.exe")
    fake = FakeToolhelp(list(processes.values()), [])
    monkeypatch.setattr(console, "_kernel32", lambda: fake)
    assert console.process_table() == processes
    assert fake.snapshots_open == 0


def test_many_processes_on_the_console_are_all_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeToolhelp([], list(range(1000, 1100)))
    monkeypatch.setattr(console, "_kernel32", lambda: fake)
    assert console.console_processes() == list(range(1000, 1100))


@pytest.mark.parametrize(
    ("chain", "closes"),
    [(["lanparty-client.exe"], True), (["cmd.exe", "lanparty-client.exe"], False)],
)
def test_the_window_is_judged_from_this_process_tree(
    monkeypatch: pytest.MonkeyPatch, chain: list[str], closes: bool
) -> None:
    processes, on_console = tree(*chain)
    fake = FakeToolhelp(list(processes.values()), on_console)
    monkeypatch.setattr(console, "_kernel32", lambda: fake)
    assert console.window_closes_when_we_exit() is closes


@pytest.mark.parametrize(("on_console", "closes"), [([US], True), ([200, US], False)])
def test_without_a_process_snapshot_only_a_console_of_our_own_counts(
    monkeypatch: pytest.MonkeyPatch, on_console: list[int], closes: bool
) -> None:
    fake = FakeToolhelp([], on_console, snapshot_fails=True)
    monkeypatch.setattr(console, "_kernel32", lambda: fake)
    monkeypatch.setattr(ffi, "getwinerror", lambda: (5, "Access is denied."), raising=False)
    assert console.window_closes_when_we_exit() is closes


class FakeConsoleControl:
    """SetConsoleCtrlHandler, recorded; ``signal`` calls the handler as Windows does."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.handlers: list[Any] = []
        self.calls: list[tuple[str, int]] = []

    def SetConsoleCtrlHandler(self, handler: Any, add: int) -> int:  # noqa: N802
        self.calls.append(("add" if add else "remove", id(handler)))
        if self.refuse:
            return 0
        if add:
            self.handlers.append(handler)
        else:
            self.handlers.remove(handler)
        return 1

    def signal(self, ctrl_type: int) -> threading.Thread:
        """The event in a new thread of ours, as Windows does; the thread's result in .result."""
        (handler,) = self.handlers

        def run() -> None:
            thread.result = int(handler(ctrl_type))  # type: ignore[attr-defined]

        thread = threading.Thread(target=run)
        thread.start()
        return thread


@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch) -> FakeConsoleControl:
    fake = FakeConsoleControl()
    monkeypatch.setattr(console, "_kernel32", lambda: fake)
    monkeypatch.setattr(ffi, "getwinerror", lambda: (6, "The handle is invalid."), raising=False)
    return fake


@pytest.mark.parametrize("event", ["CTRL_CLOSE_EVENT", "CTRL_LOGOFF_EVENT", "CTRL_SHUTDOWN_EVENT"])
def test_closing_the_window_stops_the_client_and_waits_for_its_restore(
    control: FakeConsoleControl, event: str
) -> None:
    """Windows ends the process once the handler returns: it returns once restored."""
    interrupts: list[str] = []
    with console.interrupt_on_close(lambda: interrupts.append("Ctrl+C")) as handler:
        thread = control.signal(CONSTANTS[event])
        thread.join(0.2)
        assert interrupts == ["Ctrl+C"]  # what Ctrl+C does: the guards restore
        assert thread.is_alive()  # holding the process for the restore
        assert handler.closing
    thread.join(5)
    assert not thread.is_alive()
    assert thread.result == 1  # type: ignore[attr-defined]
    assert control.handlers == []
    assert [what for what, _ in control.calls] == ["add", "remove"]


def test_ctrl_c_is_left_to_python(control: FakeConsoleControl) -> None:
    interrupts: list[str] = []
    with console.interrupt_on_close(lambda: interrupts.append("Ctrl+C")):
        thread = control.signal(CONSTANTS["CTRL_C_EVENT"])
        thread.join(5)
        assert thread.result == 0  # type: ignore[attr-defined]  # the next handler: Python's
    assert interrupts == []


def test_ctrl_break_stops_the_client_as_ctrl_c_does(control: FakeConsoleControl) -> None:
    interrupts: list[str] = []
    with console.interrupt_on_close(lambda: interrupts.append("Ctrl+C")):
        thread = control.signal(CONSTANTS["CTRL_BREAK_EVENT"])
        thread.join(5)
        assert thread.result == 1  # type: ignore[attr-defined]  # handled: the process goes on
    assert interrupts == ["Ctrl+C"]


def test_the_client_is_stopped_once_however_many_events_come(
    control: FakeConsoleControl,
) -> None:
    interrupts: list[str] = []
    with console.interrupt_on_close(lambda: interrupts.append("Ctrl+C")):
        threads = [
            control.signal(CONSTANTS["CTRL_BREAK_EVENT"]),
            control.signal(CONSTANTS["CTRL_CLOSE_EVENT"]),
            control.signal(CONSTANTS["CTRL_CLOSE_EVENT"]),
        ]
        threads[0].join(5)
    for thread in threads:
        thread.join(5)
        assert thread.result == 1  # type: ignore[attr-defined]
    assert interrupts == ["Ctrl+C"]


def test_the_handler_gives_up_waiting_after_the_budget(
    control: FakeConsoleControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "CLOSE_WAIT_S", 0.05)
    with console.interrupt_on_close(lambda: None):
        thread = control.signal(CONSTANTS["CTRL_CLOSE_EVENT"])
        thread.join(5)
        assert thread.result == 1  # type: ignore[attr-defined]


def test_a_handler_windows_refuses_leaves_the_client_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeConsoleControl(refuse=True)
    monkeypatch.setattr(console, "_kernel32", lambda: fake)
    monkeypatch.setattr(ffi, "getwinerror", lambda: (6, "The handle is invalid."), raising=False)
    with structlog.testing.capture_logs() as logs, console.interrupt_on_close(lambda: None):
        pass
    assert [what for what, _ in fake.calls] == ["add"]
    assert "The handle is invalid." in logs[0]["error"]

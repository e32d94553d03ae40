"""Elevation: the token check and the "runas" relaunch, through fake advapi32/kernel32/shell32.

``elevation.py`` is Windows-only; it is imported here as on Windows (see
``test_client_windows_platform.imported_as_on_windows``).
"""

from __future__ import annotations

import os
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lanparty.client.windows import _decl_advapi32, _decl_shell32
from lanparty.errors import ConfigError
from tests.unit.test_client_windows_console import FakeToolhelp, tree
from tests.unit.test_client_windows_platform import imported_as_on_windows

ERROR_CANCELLED = _decl_shell32.CONSTANTS["ERROR_CANCELLED"]


@pytest.fixture
def elevation() -> Iterator[types.ModuleType]:
    with imported_as_on_windows("lanparty.client.windows.elevation") as module:
        yield module


def wide(pointer: Any) -> str:
    text: str = _decl_shell32.ffi.string(_decl_shell32.ffi.cast("char16_t *", pointer))
    return text


def test_the_command_is_the_same_python_running_the_client_module(
    elevation: types.ModuleType,
) -> None:
    argv = ["--invite", "lanparty://relay.example.net:5000/lan party?pin=x", "--tap", "LAN"]
    program, parameters = elevation.elevated_command("/opt/python/python.exe", argv)
    assert program == "/opt/python/python.exe"
    assert parameters == (
        '-m lanparty.client --invite "lanparty://relay.example.net:5000/lan party?pin=x" --tap LAN'
    )
    assert parameters == subprocess.list2cmdline(["-m", "lanparty.client", *argv])


def test_the_windowless_python_becomes_the_console_one_beside_it(
    elevation: types.ModuleType, tmp_path: Path
) -> None:
    windowless = tmp_path / "pythonw.exe"
    assert elevation.elevated_command(str(windowless), [])[0] == str(windowless)
    (tmp_path / "python.exe").touch()
    assert elevation.elevated_command(str(windowless), [])[0] == str(tmp_path / "python.exe")


class FakeShell32:
    def __init__(self, *, error: int | None, marker: str) -> None:
        self.error = error
        self.marker = marker
        self.seen: dict[str, Any] = {}

    def ShellExecuteExW(self, info: Any) -> int:  # noqa: N802 (the Windows name)
        self.seen = {
            "cbSize": info.cbSize,
            "fMask": info.fMask,
            "verb": wide(info.lpVerb),
            "file": wide(info.lpFile),
            "parameters": wide(info.lpParameters),
            "directory": wide(info.lpDirectory),
            "nShow": info.nShow,
            "marker": os.environ.get(self.marker),
        }
        return 0 if self.error else 1


def use_shell32(
    elevation: types.ModuleType, monkeypatch: pytest.MonkeyPatch, *, error: int | None
) -> FakeShell32:
    shell32 = FakeShell32(error=error, marker=elevation.RELAUNCH_MARKER)
    monkeypatch.setattr(elevation, "_shell32", lambda: shell32)
    monkeypatch.setattr(
        _decl_shell32.ffi, "getwinerror", lambda: (error, "the reason"), raising=False
    )
    return shell32


def test_relaunch_asks_windows_to_run_us_as_administrator(
    elevation: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shell32 = use_shell32(elevation, monkeypatch, error=None)
    monkeypatch.setattr("sys.executable", "/opt/python/python.exe")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(elevation.RELAUNCH_MARKER, raising=False)
    elevation.relaunch_elevated(["--invite", "lanparty://relay/room"])
    assert shell32.seen == {
        "cbSize": 112,
        "fMask": _decl_shell32.CONSTANTS["SEE_MASK_NOASYNC"],
        "verb": "runas",
        "file": "/opt/python/python.exe",
        "parameters": "-m lanparty.client --invite lanparty://relay/room",
        "directory": str(tmp_path),
        "nShow": _decl_shell32.CONSTANTS["SW_SHOWNORMAL"],
        "marker": "1",  # for the copy, should Windows not elevate it
    }
    assert elevation.RELAUNCH_MARKER not in os.environ


def test_declining_the_prompt_is_a_clear_config_error(
    elevation: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_shell32(elevation, monkeypatch, error=ERROR_CANCELLED)
    with pytest.raises(ConfigError) as caught:
        elevation.relaunch_elevated([])
    assert str(caught.value).startswith("you declined the administrator prompt")
    assert "Run as administrator" in str(caught.value)
    assert elevation.RELAUNCH_MARKER not in os.environ


def test_another_relaunch_failure_explains_what_to_do(elevation: types.ModuleType) -> None:
    error = elevation.relaunch_error(2, "The system cannot find the file specified.")
    assert "starting it as administrator failed" in str(error)
    assert "(The system cannot find the file specified., error 2)" in str(error)
    assert "Run as administrator" in str(error)


def test_a_copy_started_by_relaunch_knows_it(
    elevation: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(elevation.RELAUNCH_MARKER, raising=False)
    assert elevation.relaunched_but_not_elevated() is False
    monkeypatch.setenv(elevation.RELAUNCH_MARKER, "1")
    assert elevation.relaunched_but_not_elevated() is True
    assert "User Account Control" in str(elevation.not_elevated_after_relaunch())


class FakeTokenApi:
    """OpenProcessToken/GetTokenInformation (advapi32) and the process handles (kernel32)."""

    def __init__(self, *, elevated: int, fail: bool = False) -> None:
        self.elevated = elevated
        self.fail = fail
        self.closed: list[int] = []
        self.asked: list[tuple[int, int]] = []

    def GetCurrentProcess(self) -> Any:  # noqa: N802
        return _decl_advapi32.ffi.cast("HANDLE", -1)  # the pseudo-handle Windows returns

    def OpenProcessToken(self, process: Any, access: int, token: Any) -> int:  # noqa: N802
        if self.fail:
            return 0
        token[0] = _decl_advapi32.ffi.cast("HANDLE", 0x44)
        return 1

    def GetTokenInformation(  # noqa: N802
        self, token: Any, kind: int, information: Any, size: int, returned: Any
    ) -> int:
        self.asked.append((kind, size))
        _decl_advapi32.ffi.cast("TOKEN_ELEVATION *", information).TokenIsElevated = self.elevated
        returned[0] = size
        return 1

    def CloseHandle(self, handle: Any) -> int:  # noqa: N802
        self.closed.append(int(_decl_advapi32.ffi.cast("uintptr_t", handle)))
        return 1


@pytest.mark.parametrize("elevated", [0, 1])
def test_elevation_is_read_from_the_process_token(
    elevation: types.ModuleType, monkeypatch: pytest.MonkeyPatch, elevated: int
) -> None:
    api = FakeTokenApi(elevated=elevated)
    monkeypatch.setattr(elevation, "_advapi32", lambda: api)
    monkeypatch.setattr(elevation, "_kernel32", lambda: api)
    assert elevation.is_elevated() is bool(elevated)
    assert api.asked == [(_decl_advapi32.CONSTANTS["TokenElevation"], 4)]
    assert api.closed == [0x44]


def test_a_token_that_cannot_be_read_is_a_config_error(
    elevation: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeTokenApi(elevated=1, fail=True)
    monkeypatch.setattr(elevation, "_advapi32", lambda: api)
    monkeypatch.setattr(elevation, "_kernel32", lambda: api)
    monkeypatch.setattr(
        _decl_advapi32.ffi, "getwinerror", lambda: (5, "Access is denied."), raising=False
    )
    with pytest.raises(ConfigError, match=r"cannot tell whether .*Access is denied\., error 5"):
        elevation.is_elevated()


@pytest.mark.parametrize(
    ("exit_code", "chain", "waits"),
    [
        (1, [], True),
        (0, [], False),
        # The shortcut's launcher and python.exe share the window, which goes with them.
        (1, ["lanparty-client.exe"], True),
        (1, ["cmd.exe", "lanparty-client.exe"], False),  # the shell keeps its window
        (3, [], True),
    ],
)
def test_a_failure_keeps_a_window_that_would_close_open(
    elevation: types.ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    exit_code: int,
    chain: list[str],
    waits: bool,
) -> None:
    prompts: list[str] = []
    processes, on_console = tree(*chain)
    fake = FakeToolhelp(list(processes.values()), on_console)
    monkeypatch.setattr(elevation.console, "_kernel32", lambda: fake)
    monkeypatch.setattr("builtins.input", prompts.append)
    elevation.keep_window_open_on_error(exit_code)
    assert bool(prompts) is waits

"""Administrator rights on Windows: are we elevated, and if not, start an elevated copy.

The client changes routes and interface settings through IP Helper, which
Windows refuses to a process that is not elevated (ERROR_ACCESS_DENIED,
windows-facts 5). Rather than fail, an unelevated client starts itself again
through ``ShellExecuteExW`` with the verb ``runas`` (the User Account
Control prompt) and exits; the elevated copy does the work in a console
window of its own.

Windows only: importing this module elsewhere raises ``ImportError``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from lanparty.client.windows import _decl_advapi32, _decl_kernel32, _decl_shell32, console
from lanparty.client.windows._decl_kernel32 import wide_string
from lanparty.errors import ConfigError

if sys.platform != "win32":
    raise ImportError(f"lanparty.client.windows.elevation needs Windows; this is {sys.platform}")

__all__ = [
    "RELAUNCH_MARKER",
    "elevated_command",
    "is_elevated",
    "not_elevated_after_relaunch",
    "relaunch_elevated",
    "relaunch_error",
    "relaunched_but_not_elevated",
]

# Set in our environment for the relaunch. A copy that "runas" did not
# elevate (User Account Control turned off, a standard account: the copy is
# then an ordinary child that inherits our environment) sees it and stops
# instead of relaunching itself forever. An elevated copy never looks at it.
RELAUNCH_MARKER: Final = "LANPARTY_RELAUNCHED_AS_ADMINISTRATOR"
_ERROR_CANCELLED: Final = _decl_shell32.CONSTANTS["ERROR_CANCELLED"]
_HOW_TO_RUN_AS_ADMINISTRATOR: Final = (
    'open a Command Prompt with "Run as administrator" (right-click it in the Start menu) and '
    "run the same lanparty-client command there, or start lanparty from the shortcut that "
    '"lanparty-client install-shortcut" makes'
)
_WHY: Final = (
    "lanparty-client needs administrator rights to set the TAP adapter's MTU and metric "
    "and the route to the relay"
)


@functools.cache
def _advapi32() -> Any:
    return _decl_advapi32.ffi.dlopen("advapi32.dll")


@functools.cache
def _kernel32() -> Any:
    return _decl_kernel32.ffi.dlopen("kernel32.dll")


@functools.cache
def _shell32() -> Any:
    return _decl_shell32.ffi.dlopen("shell32.dll")


def is_elevated() -> bool:
    """Whether this process's token is elevated (``TokenElevation``, windows-facts 5)."""
    ffi = _decl_advapi32.ffi
    token = ffi.new("HANDLE *")
    process = ffi.cast("HANDLE", _kernel32().GetCurrentProcess())
    if not _advapi32().OpenProcessToken(process, _decl_advapi32.CONSTANTS["TOKEN_QUERY"], token):
        raise _cannot_tell(ffi.getwinerror())
    try:
        elevation = ffi.new("TOKEN_ELEVATION *")
        returned = ffi.new("uint32_t *")
        if not _advapi32().GetTokenInformation(
            token[0],
            _decl_advapi32.CONSTANTS["TokenElevation"],
            elevation,
            ffi.sizeof("TOKEN_ELEVATION"),
            returned,
        ):
            raise _cannot_tell(ffi.getwinerror())
        return bool(elevation.TokenIsElevated)
    finally:
        _kernel32().CloseHandle(_decl_kernel32.ffi.cast("HANDLE", token[0]))


def _cannot_tell(error: tuple[int, str]) -> ConfigError:
    code, reason = error
    return ConfigError(
        f"cannot tell whether lanparty-client runs as administrator ({reason}, error {code}); "
        + _HOW_TO_RUN_AS_ADMINISTRATOR
    )


def relaunched_but_not_elevated() -> bool:
    """True in a copy that ``relaunch_elevated`` started but Windows did not elevate."""
    return os.environ.get(RELAUNCH_MARKER) == "1"


def elevated_command(executable: str, argv: Sequence[str]) -> tuple[str, str]:
    """The program and the parameters (one command line) that run the client with ``argv``.

    The same Python, with ``-m lanparty.client``, so that it works however
    the client was started (the ``lanparty-client.exe`` launcher, ``python
    -m``, a shortcut). ``pythonw.exe`` (the windowless launcher of
    ``lanparty-client-gui``) becomes the ``python.exe`` beside it when there
    is one: the elevated copy is where the player reads the progress and the
    errors, so it needs its console window.
    """
    path = Path(executable)
    if path.name.casefold() == "pythonw.exe":
        console = path.with_name("python.exe")
        if console.is_file():
            path = console
    return str(path), subprocess.list2cmdline(["-m", "lanparty.client", *argv])


def relaunch_elevated(argv: Sequence[str]) -> None:
    """Start ``python -m lanparty.client *argv`` elevated (the UAC prompt); return once started.

    ``ConfigError`` saying what to do when it cannot be started: the player
    declined the prompt, or Windows refused (windows-facts 5).
    """
    if not sys.executable:
        raise ConfigError(
            f"{_WHY}, and it cannot start itself as administrator (Python does not know its "
            f"own executable): {_HOW_TO_RUN_AS_ADMINISTRATOR}"
        )
    program, parameters = elevated_command(sys.executable, argv)
    ffi = _decl_shell32.ffi
    # The strings must outlive the call: keep them in locals.
    verb = wide_string("runas")
    file = wide_string(program)
    arguments = wide_string(parameters)
    directory = wide_string(os.getcwd())
    info = ffi.new("SHELLEXECUTEINFOW *")
    info.cbSize = ffi.sizeof("SHELLEXECUTEINFOW")
    info.fMask = _decl_shell32.CONSTANTS["SEE_MASK_NOASYNC"]
    info.lpVerb = verb
    info.lpFile = file
    info.lpParameters = arguments
    info.lpDirectory = directory
    info.nShow = _decl_shell32.CONSTANTS["SW_SHOWNORMAL"]
    os.environ[RELAUNCH_MARKER] = "1"
    try:
        started = _shell32().ShellExecuteExW(info)
        error = None if started else ffi.getwinerror()
    finally:
        del os.environ[RELAUNCH_MARKER]
    if error is not None:
        raise relaunch_error(*error)


def relaunch_error(code: int, reason: str) -> ConfigError:
    """What to tell the player when the elevated copy could not be started."""
    if code == _ERROR_CANCELLED:
        return ConfigError(
            f"you declined the administrator prompt. {_WHY}: run it again and answer Yes, "
            f"or {_HOW_TO_RUN_AS_ADMINISTRATOR}"
        )
    return ConfigError(
        f"{_WHY}, and starting it as administrator failed ({reason}, error {code}): "
        + _HOW_TO_RUN_AS_ADMINISTRATOR
    )


def not_elevated_after_relaunch() -> ConfigError:
    """The error of a relaunched copy that Windows did not elevate."""
    return ConfigError(
        f"{_WHY}, but Windows started it again without them (User Account Control may be "
        f"turned off, or this account may not be an administrator): {_HOW_TO_RUN_AS_ADMINISTRATOR}"
        ", signed in as an administrator"
    )


def keep_window_open_on_error(exit_code: int) -> None:
    """After a failure, wait for Enter when the window would otherwise vanish (``console``)."""
    if exit_code == 0 or not console.window_closes_when_we_exit():
        return
    with contextlib.suppress(EOFError, OSError):
        input("lanparty-client stopped (see above). Press Enter to close this window.")

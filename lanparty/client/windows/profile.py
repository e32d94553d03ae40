"""``--private-network``: the TAP's network is Private while the client runs, then put back.

    async with private_network_profile(tap.index):
        ...   # the bridge runs; LAN games and file sharing are allowed through

Windows Firewall treats a new network as Public, and the rules that let LAN
games and file sharing through are usually allowed on Private networks only
(windows-facts 4.3). With ``--private-network`` the client makes the TAP's
connection profile Private and, on every way out (normal exit, error,
cancellation: shielded, with a deadline), puts back Public where it changed
it. A DomainAuthenticated profile is left alone (not Public, and not ours
to change).

How: PowerShell's ``Get-NetConnectionProfile``/``Set-NetConnectionProfile
-InterfaceIndex N`` (windows-facts 4.3), as a child process. They are
documented, take the interface index the client already has, and need no
compiler. The COM route (INetworkListManager) would need the interfaces'
vtable layouts, which the facts do not give (only their GUIDs), COM
initialised on the calling thread, and matching adapters by GUID. The
script is passed with ``-EncodedCommand`` (nothing to quote) and its own
exit code says "no profile yet", whatever the language of Windows. Windows
PowerShell 5.1 writes redirected output in the OEM code page, so the
script first asks for UTF-8 (``UTF8_OUTPUT``); what PowerShell says before
that line runs, or output that is not UTF-8, is read in the OEM code page.

When: the TAP's profile appears only some seconds after link-up, and may
change once DHCP across the tunnel has answered, which needs the bridge to
run. So the category is checked in a background task: every
``FIRST_CHECKS_INTERVAL_S`` until the TAP has a profile, then every
``LATER_CHECKS_INTERVAL_S`` (a new PowerShell each time: rarely, not to
disturb a game), making any Public profile Private. Start-up never waits
for it, and a failure is logged with what to do by hand, never fatal.

Enter it while the adapter is open and leave it before the adapter closes:
the profile disappears with the link. The change is not in the journal: a
killed client leaves the TAP's network Private, which concerns that
network only.
"""

from __future__ import annotations

import base64
import codecs
import enum
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import PureWindowsPath

import attrs
import structlog
import trio

from lanparty.errors import HostNetworkError
from lanparty.obs.events import HOST_CHANGE_APPLIED, HOST_CHANGE_RESTORED

__all__ = ["NetworkCategory", "PrivateNetworkProfile", "private_network_profile"]

log = structlog.get_logger(component="client")

FIRST_CHECKS_INTERVAL_S = 3.0
LATER_CHECKS_INTERVAL_S = 60.0
PATIENCE_S = 120.0
"""How long the TAP may have no profile before the player is told."""
POWERSHELL_TIMEOUT_S = 30.0
RESTORE_TIMEOUT_S = 30.0
NO_PROFILE_EXIT_CODE = 3

UTF8_OUTPUT = (
    "try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }\n"
)
"""The line every script starts with: UTF-8 output, no byte order mark (if refused, the
output stays in the OEM code page, which ``decode_output`` falls back to)."""

_CREATE_NO_WINDOW = 0x08000000  # no console window flashing up for PowerShell
_BY_HAND = (
    "set it by hand: Settings > Network & internet > the TAP adapter's network > "
    "Network profile type: Private"
)


class NetworkCategory(enum.Enum):
    """A connection profile's category; the values are PowerShell's names."""

    PUBLIC = "Public"
    PRIVATE = "Private"
    DOMAIN_AUTHENTICATED = "DomainAuthenticated"


@attrs.frozen
class PowerShellResult:
    exit_code: int
    stdout: str
    stderr: str


PowerShell = Callable[[str], Awaitable[PowerShellResult]]
"""Runs a script, returns what it said (``run_powershell``, or a test's stand-in)."""


# the commands (pure)


def powershell_executable(environ: Mapping[str, str]) -> str:
    """Windows PowerShell by its full path: an elevated process does not search PATH for it."""
    system_root = environ.get("SystemRoot") or environ.get("SYSTEMROOT") or r"C:\Windows"
    return str(
        PureWindowsPath(system_root, "System32", "WindowsPowerShell", "v1.0", "powershell.exe")
    )


def powershell_command(script: str, environ: Mapping[str, str]) -> list[str]:
    """The command line that runs ``script`` (passed base64 of UTF-16LE, as PowerShell takes it).

    ``UTF8_OUTPUT`` comes first.
    """
    encoded = base64.b64encode((UTF8_OUTPUT + script).encode("utf-16-le")).decode("ascii")
    return [
        powershell_executable(environ),
        "-NoLogo",
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-EncodedCommand",
        encoded,
    ]


def get_categories_script(interface_index: int) -> str:
    """Prints one category per line; exits 3 while the interface has no profile."""
    return (
        f"$profiles = @(Get-NetConnectionProfile -InterfaceIndex {int(interface_index)} "
        "-ErrorAction SilentlyContinue)\n"
        f"if ($profiles.Count -eq 0) {{ exit {NO_PROFILE_EXIT_CODE} }}\n"
        "$profiles | ForEach-Object { [string]$_.NetworkCategory }\n"
        "exit 0\n"
    )


def set_category_script(interface_index: int, category: NetworkCategory) -> str:
    """Sets every profile of the interface to ``category``; exits 1 with the reason if refused."""
    return (
        f"try {{ Set-NetConnectionProfile -InterfaceIndex {int(interface_index)} "
        f"-NetworkCategory {category.value} -ErrorAction Stop; exit 0 }}\n"
        "catch { [Console]::Error.WriteLine($_.Exception.Message); exit 1 }\n"
    )


def parse_categories(result: PowerShellResult) -> list[NetworkCategory] | None:
    """The categories ``get_categories_script`` printed; None: no profile yet.

    ``HostNetworkError`` for anything else (PowerShell failed, or printed
    what we do not know).
    """
    if result.exit_code == NO_PROFILE_EXIT_CODE:
        return None
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.exit_code != 0 or not lines:
        raise HostNetworkError(
            f"Get-NetConnectionProfile failed (exit code {result.exit_code}): "
            f"{result.stderr.strip() or result.stdout.strip() or 'no output'}"
        )
    try:
        return [NetworkCategory(line) for line in lines]
    except ValueError:
        raise HostNetworkError(
            f"Get-NetConnectionProfile printed {result.stdout.strip()!r}, not network categories"
        ) from None


# running them


def oem_encoding() -> str:
    """The codec of the OEM code page (Python's ``oem``, Windows only; elsewhere UTF-8)."""
    return "oem" if sys.platform == "win32" else "utf-8"


def decode_output(data: bytes) -> str:
    """PowerShell's output: UTF-8 as asked, else (said before it was asked) the OEM code page."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(oem_encoding(), errors="replace")


async def run_powershell(script: str) -> PowerShellResult:
    """Run ``script`` in Windows PowerShell; ``HostNetworkError`` if it cannot run or hangs."""
    command = powershell_command(script, os.environ)
    try:
        with trio.fail_after(POWERSHELL_TIMEOUT_S):
            if sys.platform == "win32":
                completed = await trio.run_process(
                    command,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                    creationflags=_CREATE_NO_WINDOW,
                )
            else:
                completed = await trio.run_process(
                    command, capture_stdout=True, capture_stderr=True, check=False
                )
    except OSError as exc:
        raise HostNetworkError(f"cannot run PowerShell ({command[0]}): {exc}") from exc
    except trio.TooSlowError:
        raise HostNetworkError(
            f"PowerShell did not finish within {POWERSHELL_TIMEOUT_S:.0f} s"
        ) from None
    return PowerShellResult(
        completed.returncode, decode_output(completed.stdout), decode_output(completed.stderr)
    )


class PrivateNetworkProfile:
    """Keeps the profiles of one interface Private; ``restore`` puts back what it changed."""

    def __init__(self, interface_index: int, powershell: PowerShell = run_powershell) -> None:
        self.interface_index = interface_index
        self._powershell = powershell
        self.changed = False
        """Whether a Public profile was (or may have been) made Private: restore sets Public."""
        self.seen_profile = False

    async def categories(self) -> list[NetworkCategory] | None:
        """The categories of the interface's profiles; None while it has none."""
        return parse_categories(await self._powershell(get_categories_script(self.interface_index)))

    async def _set(self, category: NetworkCategory) -> None:
        result = await self._powershell(set_category_script(self.interface_index, category))
        if result.exit_code != 0:
            raise HostNetworkError(
                f"Set-NetConnectionProfile -NetworkCategory {category.value} failed: "
                f"{result.stderr.strip() or 'no reason given'}"
            )

    async def check_once(self) -> bool:
        """Make a Public profile of the interface Private; returns whether it had to."""
        categories = await self.categories()
        if categories is None:
            return False
        self.seen_profile = True
        if NetworkCategory.PUBLIC not in categories:
            return False
        self.changed = True  # before the change, as the journal is: the undo is harmless
        await self._set(NetworkCategory.PRIVATE)
        log.info(
            HOST_CHANGE_APPLIED,
            change="network_category",
            interface=self.interface_index,
            category=NetworkCategory.PRIVATE.value,
            was=NetworkCategory.PUBLIC.value,
        )
        return True

    async def keep_private(self) -> None:
        """``check_once`` now and then until cancelled (see the module docstring)."""
        started = trio.current_time()
        told_no_profile = False
        while True:
            try:
                await self.check_once()
            except HostNetworkError as exc:
                log.warning(
                    HOST_CHANGE_APPLIED,
                    change="network_category",
                    ok=False,
                    error=f"cannot make the TAP's network Private ({exc}); {_BY_HAND}",
                )
            if (
                not self.seen_profile
                and not told_no_profile
                and trio.current_time() - started >= PATIENCE_S
            ):
                told_no_profile = True
                log.warning(
                    HOST_CHANGE_APPLIED,
                    change="network_category",
                    ok=False,
                    error=(
                        f"the TAP has had no network profile for {PATIENCE_S:.0f} s (no "
                        "address from the party's DHCP server yet?); still trying"
                    ),
                )
            await trio.sleep(
                LATER_CHECKS_INTERVAL_S if self.seen_profile else FIRST_CHECKS_INTERVAL_S
            )

    async def restore(self) -> None:
        """Put back Public if it was changed; shielded, with a deadline; failures are logged."""
        if not self.changed:
            return
        error = "timed out"
        with trio.move_on_after(RESTORE_TIMEOUT_S, shield=True):
            try:
                await self._set(NetworkCategory.PUBLIC)
                self.changed = False
                error = ""
            except HostNetworkError as exc:
                error = str(exc)
        if error:
            log.error(
                HOST_CHANGE_RESTORED,
                change="network_category",
                ok=False,
                error=f"{error}; the TAP's network stays Private until you change it in Settings",
            )
        else:
            log.info(HOST_CHANGE_RESTORED, change="network_category", ok=True)


@asynccontextmanager
async def keeping_private(profile: PrivateNetworkProfile) -> AsyncIterator[PrivateNetworkProfile]:
    """``profile.keep_private`` runs inside the block; ``profile.restore`` on every way out.

    An exception from the block comes out as it went in, not wrapped in an
    exception group by the nursery the background task needs.
    """
    raised: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(profile.keep_private)
            try:
                yield profile
            except BaseException as exc:
                raised = exc  # re-raised below, once the nursery is closed
            nursery.cancel_scope.cancel()
    finally:
        await profile.restore()
    if raised is not None:
        raise raised


def private_network_profile(
    interface_index: int,
) -> AbstractAsyncContextManager[PrivateNetworkProfile]:
    """The TAP (``interface_index``) on a Private network inside the block (see the module)."""
    return keeping_private(PrivateNetworkProfile(interface_index))

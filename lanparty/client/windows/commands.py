"""``lanparty-client`` commands of Windows: ``set-adapter-mac`` and ``install-shortcut``.

``cli.main`` hands ``lanparty-client COMMAND ARGS...`` to ``run_command``
on Windows:

- ``set-adapter-mac [--tap NAME] [--identity FILE] [--virtual-mac MAC]``:
  the explicit, opt-in fix for a TAP adapter whose MAC is not this PC's
  lanparty MAC (the client refuses to start then, because the driver passes
  on only frames sent to its own MAC, windows-facts 1.3). It writes the
  identity's MAC as the adapter's ``NetworkAddress`` (REG_SZ, 12 hex digits,
  in its class subkey; facts 1.4) and restarts the adapter, which is when
  the driver reads it. Needs administrator rights.
- ``install-shortcut INVITE [--name NAME]``: Desktop and Start-menu
  shortcuts that start the client for that invite as administrator
  (``shortcut.py``).

The adapter is restarted with ``netsh interface set interface name="..."
admin=disabled`` then ``admin=enabled`` (facts 1.4): netsh is on every
Windows, takes the connection name the player knows, and needs neither a
compiler (SetupAPI through cffi would) nor PowerShell's NetAdapter module.

Importing this module works anywhere (the argument parsing is tested on
Linux); running a command needs Windows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import attrs

from lanparty.client.identity import load_or_create_identity
from lanparty.client.windows.adapters import (
    RegistryAccessError,
    RegistryEditor,
    adapters_to_try,
    find_tap_adapters,
    format_network_address,
)
from lanparty.errors import ConfigError, ExitCode, HostNetworkError, LanpartyError
from lanparty.proto.mac import format_mac

__all__ = [
    "COMMANDS",
    "NETWORK_ADDRESS_VALUE",
    "WindowsTools",
    "build_parser",
    "install_shortcut",
    "netsh_admin_command",
    "run_command",
    "set_adapter_mac",
]

SET_ADAPTER_MAC: Final = "set-adapter-mac"
INSTALL_SHORTCUT: Final = "install-shortcut"
COMMANDS: Final = (SET_ADAPTER_MAC, INSTALL_SHORTCUT)
NETWORK_ADDRESS_VALUE: Final = "NetworkAddress"
_NETSH_TIMEOUT_S: Final = 60.0


@attrs.frozen
class WindowsTools:
    """What ``set-adapter-mac`` does to the system, so that tests can replace it."""

    registry: RegistryEditor
    is_elevated: Callable[[], bool]
    run: Callable[[str], subprocess.CompletedProcess[str]]
    """Run a command line; its exit code and output."""


def build_parser(command: str) -> argparse.ArgumentParser:
    """The argument parser of ``lanparty-client COMMAND``; ``ConfigError`` for another name."""
    if command == SET_ADAPTER_MAC:
        parser = argparse.ArgumentParser(
            prog=f"lanparty-client {SET_ADAPTER_MAC}",
            description="Give the TAP-Windows adapter this PC's lanparty MAC (its "
            '"MAC Address"/NetworkAddress setting) and restart the adapter. Run it from '
            'a Command Prompt opened with "Run as administrator", with lanparty-client '
            "stopped.",
        )
        parser.add_argument(
            "--tap", metavar="NAME",
            help="which TAP-Windows adapter, by connection name or GUID (default: the only one)",
        )  # fmt: skip
        parser.add_argument(
            "--identity", type=Path, metavar="FILE",
            help="the identity file that holds this PC's MAC (default: the one "
            "lanparty-client uses)",
        )  # fmt: skip
        parser.add_argument(
            "--virtual-mac", metavar="MAC",
            help="use this MAC (02:xx:xx:xx:xx:xx) instead of the identity file's",
        )  # fmt: skip
        return parser
    if command == INSTALL_SHORTCUT:
        parser = argparse.ArgumentParser(
            prog=f"lanparty-client {INSTALL_SHORTCUT}",
            description="Make Desktop and Start-menu shortcuts that join the room of INVITE, "
            "started as administrator.",
        )
        parser.add_argument("invite", metavar="INVITE", help="the lanparty://... invite")
        parser.add_argument("--name", metavar="NAME", help="the shortcuts' name")
        return parser
    raise ConfigError(f"there is no command {command!r}; the Windows commands are {COMMANDS}")


def run_command(name: str, arguments: Sequence[str]) -> int:
    """Run ``lanparty-client NAME ARGUMENTS...``; an ``ExitCode``, as ``cli.main``."""
    try:
        args = build_parser(name).parse_args(list(arguments))
        if name == SET_ADAPTER_MAC:
            return set_adapter_mac(args, _windows_tools())
        return install_shortcut(args, _install_shortcuts)
    except LanpartyError as exc:
        print(f"lanparty-client {name}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG if isinstance(exc, ConfigError) else ExitCode.FAILED


def netsh_admin_command(connection_name: str, *, enabled: bool) -> str:
    """The command line that disables or enables a network connection by its name.

    A whole command line, not an argument list: netsh wants ``name="A B"``,
    which Python's list quoting would turn into ``"name=A B"``. Connection
    names cannot contain double quotes.
    """
    if '"' in connection_name:
        raise ConfigError(f"a connection name cannot contain '\"': {connection_name!r}")
    state = "enabled" if enabled else "disabled"
    return f'netsh interface set interface name="{connection_name}" admin={state}'


def set_adapter_mac(args: argparse.Namespace, tools: WindowsTools) -> int:
    """``set-adapter-mac``: write ``NetworkAddress``, restart the adapter, say what was done."""
    if not tools.is_elevated():
        raise ConfigError(
            f"{SET_ADAPTER_MAC} changes the TAP adapter's settings, which needs administrator "
            'rights: open a Command Prompt with "Run as administrator" (right-click it in the '
            "Start menu) and run it there"
        )
    identity = load_or_create_identity(args.identity, virtual_mac=args.virtual_mac)
    if identity.created:
        print(f"made this PC's lanparty MAC {format_mac(identity.mac)}, kept in {identity.path}")
    adapter = adapters_to_try(find_tap_adapters(tools.registry), args.tap, mac=None)[0]
    value = format_network_address(identity.mac)
    try:
        tools.registry.write_string(adapter.class_key, NETWORK_ADDRESS_VALUE, value)
    except RegistryAccessError as exc:
        raise HostNetworkError(
            f'cannot set the MAC of the TAP-Windows adapter "{adapter.name}" ({exc}); set it by '
            f"hand: Device Manager > Network adapters > {adapter.description} > Properties > "
            f"Advanced > MAC Address = {value}"
        ) from exc
    print(
        f'set {NETWORK_ADDRESS_VALUE} = {value} for the TAP-Windows adapter "{adapter.name}" '
        f"(HKEY_LOCAL_MACHINE\\{adapter.class_key})"
    )
    _restart(adapter.name, tools)
    print(
        f'restarted "{adapter.name}" (disabled, then enabled) so that it takes the MAC '
        f"{format_mac(identity.mac)}; start lanparty-client again"
    )
    return ExitCode.OK


def _restart(connection_name: str, tools: WindowsTools) -> None:
    for enabled in (False, True):
        command = netsh_admin_command(connection_name, enabled=enabled)
        try:
            result = tools.run(command)
        except (OSError, subprocess.SubprocessError) as exc:
            raise _restart_error(connection_name, command, str(exc), enabled=enabled) from exc
        if result.returncode != 0:
            said = " ".join((result.stdout + result.stderr).split()) or "no message"
            raise _restart_error(
                connection_name, command, f"exit code {result.returncode}: {said}", enabled=enabled
            )


def _restart_error(
    connection_name: str, command: str, reason: str, *, enabled: bool
) -> HostNetworkError:
    todo = "enable it" if enabled else "disable it, then enable it"
    return HostNetworkError(
        f"the MAC is set, but restarting the adapter failed ({command}: {reason}). It takes "
        f"the new MAC only once restarted: in Control Panel > Network Connections, {todo} "
        f'(right-click "{connection_name}")'
    )


def install_shortcut(
    args: argparse.Namespace, install: Callable[[str, str | None], list[Path]]
) -> int:
    """``install-shortcut``: make the shortcuts, print where they are."""
    for path in install(args.invite, args.name):
        print(f"made the shortcut {path}")
    return ExitCode.OK


def _install_shortcuts(invite: str, name: str | None) -> list[Path]:
    if sys.platform != "win32":
        raise ConfigError(f"{INSTALL_SHORTCUT} makes Windows shortcuts; this is {sys.platform}")
    from lanparty.client.windows.shortcut import install_shortcuts  # noqa: PLC0415

    return install_shortcuts(invite, name)


def _windows_tools() -> WindowsTools:
    if sys.platform != "win32":
        raise ConfigError(f"{SET_ADAPTER_MAC} changes a Windows adapter; this is {sys.platform}")
    from lanparty.client.windows.elevation import is_elevated  # noqa: PLC0415
    from lanparty.client.windows.registry import WindowsRegistry  # noqa: PLC0415

    return WindowsTools(registry=WindowsRegistry(), is_elevated=is_elevated, run=_run_netsh)


def _run_netsh(command: str) -> subprocess.CompletedProcess[str]:
    # netsh writes in the console's OEM code page.
    return subprocess.run(
        command,
        capture_output=True,
        encoding="oem",
        errors="replace",
        timeout=_NETSH_TIMEOUT_S,
        check=False,
    )

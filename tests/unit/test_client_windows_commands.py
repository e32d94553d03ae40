"""The Windows commands: argument parsing, and set-adapter-mac against a fake registry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lanparty.client.windows import commands
from lanparty.client.windows.adapters import ADAPTER_CLASS_KEY
from lanparty.credentials import b64url
from lanparty.errors import ConfigError, HostNetworkError
from lanparty.secret_files import write_secret_text
from tests.unit.test_client_windows_adapters import FakeRegistry, add_tap_adapter

MAC_TEXT = "02:ab:12:34:56:78"


def identity_file(tmp_path: Path, mac: str = MAC_TEXT) -> Path:
    """An identity file as the client keeps it: version 2, with a secret, mode 0600."""
    path = tmp_path / "identity.json"
    document = {"version": 2, "mac": mac, "secret": b64url(bytes(range(32)))}
    write_secret_text(path, json.dumps(document))
    return path


class FakeNetsh:
    def __init__(self, *, fail_on: str | None = None, raises: OSError | None = None) -> None:
        self.commands: list[str] = []
        self.fail_on = fail_on
        self.raises = raises

    def __call__(self, command: str) -> subprocess.CompletedProcess[str]:
        self.commands.append(command)
        if self.raises is not None:
            raise self.raises
        if self.fail_on is not None and self.fail_on in command:
            return subprocess.CompletedProcess(command, 1, "The interface\nis unknown.\n", "")
        return subprocess.CompletedProcess(command, 0, "", "")


def tools(
    registry: FakeRegistry, netsh: FakeNetsh, *, elevated: bool = True
) -> commands.WindowsTools:
    return commands.WindowsTools(registry=registry, is_elevated=lambda: elevated, run=netsh)


def parse(*argv: str) -> object:
    return commands.build_parser(argv[0]).parse_args(argv[1:])


def test_set_adapter_mac_options() -> None:
    args = parse("set-adapter-mac")
    assert (args.tap, args.identity, args.virtual_mac) == (None, None, None)  # type: ignore[attr-defined]
    args = parse(
        "set-adapter-mac", "--tap", "LAN party", "--identity", "id.json",
        "--virtual-mac", "02:00:00:00:00:0a",
    )  # fmt: skip
    assert args.tap == "LAN party"  # type: ignore[attr-defined]
    assert args.identity == Path("id.json")  # type: ignore[attr-defined]
    assert args.virtual_mac == "02:00:00:00:00:0a"  # type: ignore[attr-defined]


def test_install_shortcut_options() -> None:
    args = parse("install-shortcut", "lanparty://relay:5000/room?pin=x")
    assert (args.invite, args.name) == ("lanparty://relay:5000/room?pin=x", None)  # type: ignore[attr-defined]
    args = parse("install-shortcut", "lanparty://relay/room", "--name", "Friday LAN")
    assert args.name == "Friday LAN"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "argv",
    [
        ["install-shortcut"],  # no invite
        ["install-shortcut", "a", "b"],
        ["set-adapter-mac", "extra"],
        ["set-adapter-mac", "--tap"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        commands.run_command(argv[0], argv[1:])
    assert caught.value.code == 2
    assert f"lanparty-client {argv[0]}" in capsys.readouterr().err


def test_an_unknown_command_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.run_command("make-coffee", []) == 2
    assert "there is no command 'make-coffee'" in capsys.readouterr().err


def test_the_netsh_command_line_quotes_the_connection_name() -> None:
    assert commands.netsh_admin_command("LAN party", enabled=False) == (
        'netsh interface set interface name="LAN party" admin=disabled'
    )
    assert commands.netsh_admin_command("LAN party", enabled=True) == (
        'netsh interface set interface name="LAN party" admin=enabled'
    )
    with pytest.raises(ConfigError):
        commands.netsh_admin_command('say "hi"', enabled=True)


def test_set_adapter_mac_writes_network_address_and_restarts_the_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0007", name="LAN party", NetworkAddress="0200000000AA")
    netsh = FakeNetsh()
    args = parse("set-adapter-mac", "--identity", str(identity_file(tmp_path)))
    assert commands.set_adapter_mac(args, tools(registry, netsh)) == 0  # type: ignore[arg-type]
    assert registry.writes == [(f"{ADAPTER_CLASS_KEY}\\0007", "NetworkAddress", "02AB12345678")]
    assert netsh.commands == [
        'netsh interface set interface name="LAN party" admin=disabled',
        'netsh interface set interface name="LAN party" admin=enabled',
    ]
    out = capsys.readouterr().out
    assert 'set NetworkAddress = 02AB12345678 for the TAP-Windows adapter "LAN party"' in out
    assert f"{ADAPTER_CLASS_KEY}\\0007" in out
    assert (
        f'restarted "LAN party" (disabled, then enabled) so that it takes the MAC {MAC_TEXT}' in out
    )


def test_set_adapter_mac_takes_virtual_mac_and_the_named_adapter(tmp_path: Path) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0001", name="OpenVPN TAP")
    add_tap_adapter(registry, "0002", name="LAN party")
    args = parse("set-adapter-mac", "--tap", "lan party", "--virtual-mac", "02:00:00:00:00:0a")
    assert commands.set_adapter_mac(args, tools(registry, FakeNetsh())) == 0  # type: ignore[arg-type]
    assert registry.writes == [(f"{ADAPTER_CLASS_KEY}\\0002", "NetworkAddress", "02000000000A")]


def test_set_adapter_mac_makes_the_identity_on_first_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0001", name="LAN party")
    path = tmp_path / "new" / "identity.json"
    args = parse("set-adapter-mac", "--identity", str(path))
    assert commands.set_adapter_mac(args, tools(registry, FakeNetsh())) == 0  # type: ignore[arg-type]
    mac = json.loads(path.read_text(encoding="utf-8"))["mac"]
    assert registry.writes[0][2] == mac.replace(":", "").upper()
    assert f"made this PC's lanparty MAC {mac}, kept in {path}" in capsys.readouterr().out


def test_set_adapter_mac_needs_administrator_rights(tmp_path: Path) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0001", name="LAN party")
    netsh = FakeNetsh()
    args = parse("set-adapter-mac", "--identity", str(identity_file(tmp_path)))
    with pytest.raises(ConfigError, match='"Run as administrator"'):
        commands.set_adapter_mac(args, tools(registry, netsh, elevated=False))  # type: ignore[arg-type]
    assert (registry.writes, netsh.commands) == ([], [])


def test_set_adapter_mac_with_several_adapters_wants_tap(tmp_path: Path) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0001", name="OpenVPN TAP")
    add_tap_adapter(registry, "0002", name="LAN party", NetworkAddress="02AB12345678")
    args = parse("set-adapter-mac", "--identity", str(identity_file(tmp_path)))
    with pytest.raises(ConfigError, match='choose one with --tap "NAME"'):
        commands.set_adapter_mac(args, tools(registry, FakeNetsh()))  # type: ignore[arg-type]
    assert registry.writes == []


def test_a_refused_registry_write_says_how_to_do_it_by_hand(tmp_path: Path) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0007", name="LAN party")
    registry.read_only.add(f"{ADAPTER_CLASS_KEY}\\0007")
    args = parse("set-adapter-mac", "--identity", str(identity_file(tmp_path)))
    with pytest.raises(HostNetworkError, match="MAC Address = 02AB12345678"):
        commands.set_adapter_mac(args, tools(registry, FakeNetsh()))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("netsh", "todo"),
    [
        (FakeNetsh(fail_on="admin=disabled"), "disable it, then enable it"),
        (FakeNetsh(fail_on="admin=enabled"), "enable it"),
        (FakeNetsh(raises=FileNotFoundError(2, "No such file")), "disable it, then enable it"),
    ],
)
def test_a_failed_restart_says_how_to_finish_by_hand(
    tmp_path: Path, netsh: FakeNetsh, todo: str
) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0007", name="LAN party")
    args = parse("set-adapter-mac", "--identity", str(identity_file(tmp_path)))
    with pytest.raises(HostNetworkError) as caught:
        commands.set_adapter_mac(args, tools(registry, netsh))  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("the MAC is set, but restarting the adapter failed")
    assert f'Network Connections, {todo} (right-click "LAN party")' in message
    assert registry.writes  # the value was written all the same


def test_a_failed_netsh_shows_what_it_said(tmp_path: Path) -> None:
    registry = FakeRegistry()
    add_tap_adapter(registry, "0007", name="LAN party")
    args = parse("set-adapter-mac", "--identity", str(identity_file(tmp_path)))
    with pytest.raises(HostNetworkError, match=r"exit code 1: The interface is unknown\."):
        commands.set_adapter_mac(args, tools(registry, FakeNetsh(fail_on="disabled")))  # type: ignore[arg-type]


def test_install_shortcut_prints_the_shortcuts_made(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, str | None]] = []

    def install(invite: str, name: str | None) -> list[Path]:
        calls.append((invite, name))
        return [Path("Desktop/lanparty.lnk"), Path("Start Menu/lanparty.lnk")]

    args = parse("install-shortcut", "lanparty://relay/room", "--name", "Friday")
    assert commands.install_shortcut(args, install) == 0  # type: ignore[arg-type]
    assert calls == [("lanparty://relay/room", "Friday")]
    assert capsys.readouterr().out.splitlines() == [
        f"made the shortcut {Path('Desktop/lanparty.lnk')}",
        f"made the shortcut {Path('Start Menu/lanparty.lnk')}",
    ]


@pytest.mark.parametrize("name", commands.COMMANDS)
def test_on_linux_the_commands_say_they_are_for_windows(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["lanparty://relay/room"] if name == "install-shortcut" else []
    assert commands.run_command(name, argv) == 2
    assert "this is linux" in capsys.readouterr().err

"""--private-network: the PowerShell commands, their output, and the category kept and restored."""

from __future__ import annotations

import base64
import math
import re
import subprocess
from typing import Any

import pytest
import structlog.testing
import trio
import trio.testing

from lanparty.client.windows import profile
from lanparty.client.windows.profile import (
    NetworkCategory,
    PowerShellResult,
    PrivateNetworkProfile,
    keeping_private,
)
from lanparty.errors import HostNetworkError

TAP = 12
PUBLIC, PRIVATE = NetworkCategory.PUBLIC, NetworkCategory.PRIVATE

_SET = re.compile(r"Set-NetConnectionProfile -InterfaceIndex (\d+) -NetworkCategory (\w+) ")
_GET = re.compile(r"Get-NetConnectionProfile -InterfaceIndex (\d+) ")


class FakePowerShell:
    """The TAP's connection profiles, as the two cmdlets see and change them."""

    def __init__(self, categories: list[NetworkCategory] | None) -> None:
        self.categories = categories  # None: no profile yet
        self.commands: list[str] = []
        self.refuse_set = ""
        self.delay_s = 0.0

    async def __call__(self, script: str) -> PowerShellResult:
        command = "get"
        if (match := _SET.search(script)) is not None:
            command = f"set {match.group(2)}"
        self.commands.append(command)  # started, even if cancelled while it runs
        await trio.sleep(self.delay_s)
        if match is not None:
            assert int(match.group(1)) == TAP
            if self.refuse_set:
                return PowerShellResult(1, "", self.refuse_set + "\n")
            if self.categories is not None:
                self.categories = [NetworkCategory(match.group(2))] * len(self.categories)
            return PowerShellResult(0, "", "")
        match = _GET.search(script)
        assert match is not None, script
        assert int(match.group(1)) == TAP
        if self.categories is None:
            return PowerShellResult(profile.NO_PROFILE_EXIT_CODE, "", "")
        return PowerShellResult(0, "".join(f"{c.value}\r\n" for c in self.categories), "")


def test_the_command_line_carries_the_script_encoded() -> None:
    script = profile.get_categories_script(TAP)
    command = profile.powershell_command(script, {"SystemRoot": r"D:\WINDOWS"})
    assert command[:-1] == [
        r"D:\WINDOWS\System32\WindowsPowerShell\v1.0\powershell.exe",
        *("-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass"),
        "-EncodedCommand",
    ]
    sent = base64.b64decode(command[-1]).decode("utf-16-le")
    assert sent == profile.UTF8_OUTPUT + script
    assert profile.powershell_executable({}).startswith("C:\\Windows\\System32\\")


def test_the_scripts() -> None:
    get = profile.get_categories_script(TAP)
    assert "Get-NetConnectionProfile -InterfaceIndex 12 -ErrorAction SilentlyContinue" in get
    assert "exit 3" in get
    assert "[string]$_.NetworkCategory" in get
    set_private = profile.set_category_script(TAP, PRIVATE)
    assert (
        "Set-NetConnectionProfile -InterfaceIndex 12 -NetworkCategory Private -ErrorAction Stop"
        in set_private
    )
    assert "exit 1" in set_private


def test_parsing_what_get_printed() -> None:
    parse = profile.parse_categories
    assert parse(PowerShellResult(3, "", "")) is None
    assert parse(PowerShellResult(0, "Public\r\n", "")) == [PUBLIC]
    assert parse(PowerShellResult(0, "Private\r\nDomainAuthenticated\r\n", "")) == [
        PRIVATE,
        NetworkCategory.DOMAIN_AUTHENTICATED,
    ]
    with pytest.raises(HostNetworkError, match=r"exit code 1\): Access is denied"):
        parse(PowerShellResult(1, "", "Access is denied.\r\n"))
    with pytest.raises(HostNetworkError, match="not network categories"):
        parse(PowerShellResult(0, "Öffentlich\r\n", ""))
    with pytest.raises(HostNetworkError, match="no output"):
        parse(PowerShellResult(0, "", ""))


def test_powershell_is_asked_for_utf8_output_without_a_byte_order_mark() -> None:
    """Windows PowerShell 5.1 writes redirected output in the OEM code page unless told."""
    assert profile.UTF8_OUTPUT == (
        "try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }\n"
    )


class FakeRunProcess:
    def __init__(self, stdout: bytes, stderr: bytes = b"", returncode: int = 0) -> None:
        self.result = subprocess.CompletedProcess([], returncode, stdout, stderr)
        self.commands: list[list[str]] = []

    async def __call__(self, command: list[str], **options: object) -> Any:
        self.commands.append(command)
        return self.result


@pytest.mark.parametrize(
    ("stdout", "stderr", "expected"),
    [
        # As asked: UTF-8 (a byte order mark, should one come, is not text).
        ("Privé\r\n".encode(), b"", ("Privé\r\n", "")),
        (b"\xef\xbb\xbfPublic\r\n", b"", ("Public\r\n", "")),
        # Said before the script could ask (PowerShell's own errors): the OEM code page.
        (b"", b"Acc\x8as refus\x82", ("", "Accès refusé")),
    ],
)
async def test_output_is_read_as_utf8_else_in_the_oem_code_page(
    monkeypatch: pytest.MonkeyPatch, stdout: bytes, stderr: bytes, expected: tuple[str, str]
) -> None:
    fake = FakeRunProcess(stdout, stderr)
    monkeypatch.setattr(profile.trio, "run_process", fake)
    monkeypatch.setattr(profile, "oem_encoding", lambda: "cp850")
    result = await profile.run_powershell("exit 0")
    assert (result.stdout, result.stderr) == expected
    assert len(fake.commands) == 1


async def test_running_powershell_where_there_is_none() -> None:
    with pytest.raises(HostNetworkError, match="cannot run PowerShell"):
        await profile.run_powershell(profile.get_categories_script(TAP))


async def test_public_is_made_private_once_the_profile_appears_then_put_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    powershell = FakePowerShell(None)
    async with keeping_private(PrivateNetworkProfile(TAP, powershell)) as kept:
        await trio.sleep(2 * profile.FIRST_CHECKS_INTERVAL_S + 1)
        assert powershell.commands == ["get", "get", "get"]
        powershell.categories = [PUBLIC]  # link up, network identified
        await trio.sleep(profile.FIRST_CHECKS_INTERVAL_S)
        assert powershell.categories == [PRIVATE]
        assert kept.changed
        await trio.sleep(profile.LATER_CHECKS_INTERVAL_S)
        assert powershell.commands == ["get", "get", "get", "get", "set Private", "get"]
    assert powershell.categories == [PUBLIC]
    assert powershell.commands[-1] == "set Public"


async def test_a_network_that_turns_public_again_is_made_private_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    powershell = FakePowerShell([PUBLIC])
    async with keeping_private(PrivateNetworkProfile(TAP, powershell)):
        await trio.sleep(1)
        assert powershell.categories == [PRIVATE]
        powershell.categories = [PUBLIC, PRIVATE]  # DHCP gave a gateway: a new network
        await trio.sleep(profile.LATER_CHECKS_INTERVAL_S)
        assert powershell.categories == [PRIVATE, PRIVATE]
    assert powershell.commands.count("set Private") == 2
    assert powershell.categories == [PUBLIC, PUBLIC]


@pytest.mark.parametrize("category", [PRIVATE, NetworkCategory.DOMAIN_AUTHENTICATED])
async def test_a_network_that_is_not_public_is_left_alone(
    category: NetworkCategory, autojump_clock: trio.testing.MockClock
) -> None:
    powershell = FakePowerShell([category])
    async with keeping_private(PrivateNetworkProfile(TAP, powershell)) as kept:
        await trio.sleep(profile.LATER_CHECKS_INTERVAL_S + 1)
        assert not kept.changed
    assert powershell.commands == ["get", "get"]
    assert powershell.categories == [category]


async def test_an_exception_in_the_block_comes_out_as_it_went_in() -> None:
    powershell = FakePowerShell([PUBLIC])

    async def fail_inside() -> None:
        async with keeping_private(PrivateNetworkProfile(TAP, powershell)):
            await trio.sleep(0.01)
            assert powershell.categories == [PRIVATE]
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await fail_inside()
    assert powershell.categories == [PUBLIC]


async def test_a_cancellation_puts_it_back(autojump_clock: trio.testing.MockClock) -> None:
    powershell = FakePowerShell([PUBLIC])
    with trio.move_on_after(10) as scope:
        async with keeping_private(PrivateNetworkProfile(TAP, powershell)):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert powershell.categories == [PUBLIC]
    assert powershell.commands == ["get", "set Private", "set Public"]


async def test_a_cancellation_during_the_change_still_puts_it_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    powershell = FakePowerShell([PUBLIC])
    powershell.delay_s = 2.0
    with trio.move_on_after(3):  # inside "set Private"
        async with keeping_private(PrivateNetworkProfile(TAP, powershell)):
            await trio.sleep_forever()
    assert powershell.commands == ["get", "set Private", "set Public"]
    assert powershell.categories == [PUBLIC]


async def test_a_refusal_is_logged_with_what_to_do_and_the_client_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    powershell = FakePowerShell([PUBLIC])
    powershell.refuse_set = "Access is denied."
    with structlog.testing.capture_logs() as logs:
        async with keeping_private(PrivateNetworkProfile(TAP, powershell)):
            await trio.sleep(1)
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "Access is denied" in warnings[0]["error"]
    assert "set it by hand" in warnings[0]["error"]
    assert [entry["log_level"] for entry in logs][-1] == "error"  # the restore, refused too
    assert "stays Private" in logs[-1]["error"]
    assert powershell.categories == [PUBLIC]


async def test_no_profile_for_long_is_said_once(autojump_clock: trio.testing.MockClock) -> None:
    powershell = FakePowerShell(None)
    with structlog.testing.capture_logs() as logs:
        async with keeping_private(PrivateNetworkProfile(TAP, powershell)) as kept:
            await trio.sleep(3 * profile.PATIENCE_S)
    assert len([entry for entry in logs if "no network profile" in entry.get("error", "")]) == 1
    assert not kept.changed
    assert "set Public" not in powershell.commands


async def test_a_hanging_restore_is_abandoned(autojump_clock: trio.testing.MockClock) -> None:
    powershell = FakePowerShell([PUBLIC])
    with structlog.testing.capture_logs() as logs:
        async with keeping_private(PrivateNetworkProfile(TAP, powershell)):
            await trio.sleep(1)
            powershell.delay_s = math.inf
            started = trio.current_time()
    assert trio.current_time() - started == pytest.approx(profile.RESTORE_TIMEOUT_S)
    assert logs[-1]["error"].startswith("timed out")


def test_private_network_profile_is_the_default_powershell() -> None:
    manager = profile.private_network_profile(TAP)
    assert hasattr(manager, "__aenter__")
    assert hasattr(manager, "__aexit__")

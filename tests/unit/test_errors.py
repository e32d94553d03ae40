"""The exit codes every program ends with: the values README.md and the systemd units document."""

from __future__ import annotations

import re
from pathlib import Path

from lanparty.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]


def test_the_documented_exit_codes_hold() -> None:
    assert {code.name: code.value for code in ExitCode} == {
        "OK": 0,
        "FAILED": 1,
        "CONFIG": 2,
        "REFUSED": 3,
    }


def test_the_systemd_units_do_not_restart_after_a_configuration_error_or_a_refusal() -> None:
    def prevented(unit: str) -> set[int]:
        text = (REPO / "examples" / "systemd" / unit).read_text()
        match = re.search(r"^RestartPreventExitStatus=(.*)$", text, re.MULTILINE)
        assert match is not None, unit
        return {int(status) for status in match.group(1).split()}

    assert prevented("lanparty-relay.service") == {ExitCode.CONFIG}
    assert prevented("lanparty-gateway@.service") == {ExitCode.CONFIG, ExitCode.REFUSED}

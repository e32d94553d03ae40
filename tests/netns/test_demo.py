"""``python -m lanparty.demo`` runs every step, reports them, and leaves no namespace behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lanparty.demo.netns import run

pytestmark = pytest.mark.netns


def namespaces() -> set[str]:
    return {line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()}


def test_the_demo_shows_a_lease_pings_and_discovery(tmp_path: Path) -> None:
    before = namespaces()
    done = subprocess.run(
        [sys.executable, "-m", "lanparty.demo", "--keep-logs", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = done.stdout.split("lanparty demo report", 1)[1]
    for step in (
        "gets a DHCP lease from the party LAN: 198.19.0.",
        "does not take the player's internet",
        "20/20 answered",
        "the LAN heard the player's server (198.19.0.",
        "the player heard the LAN's server (198.19.0.10)",
        "the host is put back",
    ):
        assert step in report, report
    assert "FAILED" not in report
    assert "DHCPACK" in (tmp_path / "dnsmasq.log").read_text()
    assert namespaces() == before


def test_the_demo_refuses_to_run_without_root_tools(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lanparty.demo"],
        capture_output=True, text=True, timeout=60, check=False, env={"PATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2
    assert "ip is not installed" in done.stderr

"""Windows-only ``lanparty-client`` commands (placeholder until the Windows back end lands)."""

from __future__ import annotations

from collections.abc import Sequence


def run_command(name: str, arguments: Sequence[str]) -> int:
    del arguments
    raise NotImplementedError(name)

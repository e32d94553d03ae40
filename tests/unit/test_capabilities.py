"""Capabilities read from CapEff, and the sentence that names a missing one."""

from __future__ import annotations

from pathlib import Path

from lanparty.capabilities import Capability, effective_capabilities, lacks, missing_capability

STATUS = """Name:\tpython3
Uid:\t65534\t65534\t65534\t65534
CapInh:\t0000000000000400
CapPrm:\t0000000000000400
CapEff:\t{eff}
CapBnd:\t000001ffffffffff
"""


def status_file(tmp_path: Path, eff: str) -> Path:
    path = tmp_path / "status"
    path.write_text(STATUS.format(eff=eff))
    return path


def test_the_effective_set_is_read_from_capeff(tmp_path: Path) -> None:
    only_bind = status_file(tmp_path, "0000000000000400")
    assert effective_capabilities(only_bind) == 1 << 10
    assert not lacks(Capability.NET_BIND_SERVICE, only_bind)
    assert lacks(Capability.NET_RAW, only_bind)
    assert lacks(Capability.NET_ADMIN, only_bind)
    raw_and_admin = status_file(tmp_path, "0000000000003000")
    assert not lacks(Capability.NET_RAW, raw_and_admin)
    assert not lacks(Capability.NET_ADMIN, raw_and_admin)
    assert lacks(Capability.NET_BIND_SERVICE, raw_and_admin)


def test_unknown_is_not_reported_as_missing(tmp_path: Path) -> None:
    assert effective_capabilities(tmp_path / "absent") is None
    assert not lacks(Capability.NET_RAW, tmp_path / "absent")
    assert effective_capabilities(status_file(tmp_path, "zz")) is None


def test_the_sentence_names_the_capability_and_how_to_grant_it() -> None:
    text = missing_capability("listening on port 443", Capability.NET_BIND_SERVICE)
    assert text.startswith("listening on port 443 needs the capability CAP_NET_BIND_SERVICE")
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in text
    assert "--ambient-caps=+net_bind_service" in text

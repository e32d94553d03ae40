"""Who may change the journal on Windows: owners and access lists parsed and judged
(``acl.py``), and read, checked and made through a fake advapi32 (``file_security.py``)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lanparty.client.windows import acl
from lanparty.errors import HostNetworkError
from tests.fakes.windows_hostnet import (
    FakeAce,
    FakeFileSecurity,
    acl_bytes,
    fake_file_security,
    inherited,
    parse_sddl,
    sid_bytes,
)

USER = "S-1-5-21-1004336348-1177238915-682003330-1001"
STRANGER = "S-1-5-21-1004336348-1177238915-682003330-1002"


def aces(sddl: str) -> list[acl.Ace]:
    """The entries of an SDDL DACL, through the bytes Windows would hand over."""
    parsed = parse_sddl(sddl).aces
    assert parsed is not None
    return acl.parse_acl(acl_bytes(parsed))


@pytest.mark.parametrize(
    "sid", ["S-1-5-32-544", "S-1-5-18", "S-1-1-0", "S-1-3-0", USER, acl.TRUSTED_INSTALLER]
)
def test_sids_read_back_as_written(sid: str) -> None:
    assert acl.sid_string(sid_bytes(sid)) == sid
    assert acl.sid_length(sid_bytes(sid)) == len(sid_bytes(sid))


def test_well_known_sids_are_the_ones_windows_names() -> None:
    assert (acl.ADMINISTRATORS, acl.SYSTEM) == ("S-1-5-32-544", "S-1-5-18")
    assert acl.describe_sid("S-1-5-32-545") == "Users (S-1-5-32-545)"
    assert acl.describe_sid(STRANGER) == STRANGER


def test_an_acl_reads_back_entry_by_entry() -> None:
    entries = aces("D:P(A;OICI;FA;;;BA)(D;;0x116;;;BU)(A;CI;0x116;;;BU)")
    assert entries == [
        acl.Ace(0, 0x3, 0x1F01FF, "S-1-5-32-544"),
        acl.Ace(1, 0x0, 0x116, "S-1-5-32-545"),
        acl.Ace(0, 0x2, 0x116, "S-1-5-32-545"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"\x02\x00\x08",  # shorter than a header
        b"\x02\x00\x40\x00\x01\x00\x00\x00",  # says 64 bytes
        b"\x02\x00\x10\x00\x01\x00\x00\x00\x00\x00\x20\x00\x00\x00\x00\x00",  # entry too big
    ],
)
def test_a_malformed_acl_is_an_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        acl.parse_acl(data)


@pytest.mark.parametrize(
    ("owner", "sddl", "user"),
    [
        ("S-1-5-32-544", acl.ADMIN_ONLY_SDDL, None),  # what lanparty makes
        ("S-1-5-18", "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FR;;;WD)", None),  # read: fine
        (USER, "D:(A;;FA;;;S-1-5-21-1004336348-1177238915-682003330-1001)", USER),  # elevated
        ("S-1-5-32-544", "D:(A;OICIIO;GA;;;CO)(A;;FA;;;OW)(D;;FA;;;BU)(A;;FA;;;BA)", None),
        ("S-1-5-32-544", f"D:(A;OICI;FA;;;{acl.TRUSTED_INSTALLER})", None),
    ],
)
def test_only_administrators_may_change_it(owner: str, sddl: str, user: str | None) -> None:
    assert acl.judge(owner, aces(sddl), user=user) is None


@pytest.mark.parametrize(
    ("owner", "sddl", "user", "said"),
    [
        (STRANGER, acl.ADMIN_ONLY_SDDL, USER, f"belongs to {STRANGER}"),
        (USER, acl.ADMIN_ONLY_SDDL, None, "belongs to"),  # the user, not elevated
        ("S-1-5-32-544", "D:(A;CI;0x116;;;BU)", None, r"lets Users \(S-1-5-32-545\) change it"),
        ("S-1-5-32-544", "D:(A;;FA;;;WD)", None, "lets Everyone"),
        ("S-1-5-32-544", "D:(A;;0x4;;;AU)", None, "lets Authenticated Users"),
        ("S-1-5-32-544", "D:(A;OIIO;0x40000000;;;BU)", None, "Users"),  # new files: generic write
        ("S-1-5-32-544", f"D:(A;;0x10000;;;{STRANGER})", None, "rights 0x10000"),  # delete
        ("S-1-5-32-544", "D:(A;;0x40000;;;S-1-3-1)", None, "CREATOR GROUP"),  # write DAC
    ],
)
def test_anyone_else_who_may_change_it_is_named(
    owner: str, sddl: str, user: str | None, said: str
) -> None:
    problem = acl.judge(owner, aces(sddl), user=user)
    assert problem is not None
    assert re.search(said, problem)


def test_no_access_list_and_entries_it_cannot_read_are_refused() -> None:
    assert "no access list" in (acl.judge(acl.ADMINISTRATORS, None, user=None) or "")
    object_entry = [acl.Ace(0x5, 0, 0x1F01FF, None)]
    assert "cannot judge (type 0x5)" in (acl.judge(acl.SYSTEM, object_entry, user=None) or "")


# file_security.py through the fake DLLs


@pytest.fixture
def security(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[ModuleType, FakeFileSecurity]]:
    with fake_file_security(monkeypatch, FakeFileSecurity(user=USER)) as installed:
        yield installed


def test_importing_it_elsewhere_than_windows_is_a_clear_error() -> None:
    with pytest.raises(ImportError, match="needs Windows"):
        importlib.import_module("lanparty.client.windows.file_security")


def test_a_new_directory_is_for_administrators_only(
    security: tuple[ModuleType, FakeFileSecurity], tmp_path: Path
) -> None:
    module, fake = security
    directory = tmp_path / "ProgramData" / "lanparty"
    assert module.make_admin_only_directory(directory)
    assert fake.security[str(directory)] == parse_sddl(acl.ADMIN_ONLY_SDDL)
    assert module.owner_and_dacl(directory) == (acl.ADMINISTRATORS, aces(acl.ADMIN_ONLY_SDDL))
    assert module.write_access_problem(directory) is None
    assert not module.make_admin_only_directory(directory)  # there: the caller checks it


def test_what_windows_gives_a_directory_made_in_programdata_is_refused(
    security: tuple[ModuleType, FakeFileSecurity], tmp_path: Path
) -> None:
    """Made without a security descriptor (an older lanparty's mkdir, or another user)."""
    module, _ = security
    directory = tmp_path / "lanparty"
    directory.mkdir()
    problem = module.write_access_problem(directory)
    assert problem is not None
    assert "Users (S-1-5-32-545) change it (rights 0x116)" in problem


def test_the_current_user_counts_only_while_elevated(
    security: tuple[ModuleType, FakeFileSecurity], tmp_path: Path
) -> None:
    module, fake = security
    fake.set(tmp_path, f"O:{USER}D:P(A;OICI;FA;;;{USER})(A;OICI;FA;;;BA)")
    assert module.current_user_sid() == USER
    assert module.write_access_problem(tmp_path) is None
    fake.elevated = False
    assert "belongs to" in (module.write_access_problem(tmp_path) or "")


def test_a_path_windows_cannot_read_is_an_error(
    security: tuple[ModuleType, FakeFileSecurity], tmp_path: Path
) -> None:
    module, _ = security
    with pytest.raises(HostNetworkError, match=r"cannot read who may change .*cannot find"):
        module.owner_and_dacl(tmp_path / "missing")


def test_a_null_dacl_is_read_as_none(
    security: tuple[ModuleType, FakeFileSecurity], tmp_path: Path
) -> None:
    module, fake = security
    fake.set(tmp_path, "O:BA")
    assert module.owner_and_dacl(tmp_path) == (acl.ADMINISTRATORS, None)
    assert "no access list" in (module.write_access_problem(tmp_path) or "")


def test_fake_inheritance_is_windows_own() -> None:
    """The fake's model of a directory made in %ProgramData% (``icacls`` on Windows 10)."""
    parent = parse_sddl("O:SYD:P(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;CI;0x116;;;BU)")
    child = inherited(parent, acl.ADMINISTRATORS, directory=True)
    assert child.owner == acl.ADMINISTRATORS
    assert child.aces == (
        FakeAce(True, 0x13, 0x1F01FF, "S-1-5-32-544"),
        FakeAce(True, 0x10, 0x10000000, "S-1-5-32-544"),
        FakeAce(True, 0x1B, 0x10000000, "S-1-3-0"),
        FakeAce(True, 0x12, 0x116, "S-1-5-32-545"),
    )

"""The journal: written before each change, atomic, replayed newest first after a crash."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanparty.client.hostnet import Family, InterfaceUnavailableError, Route
from lanparty.client.journal import (
    DeleteRoute,
    Journal,
    JournalCorruptError,
    JournalUnsafeError,
    RestoreDns,
    RestoreMetric,
    RestoreMtu,
    Undo,
    default_journal_path,
    restore_pending,
)
from lanparty.client.tap_dns import DnsRegistration, InterfaceDns
from lanparty.errors import HostNetworkError
from tests.fakes.hostnet import Call, FakeHostNetwork
from tests.fakes.windows_hostnet import FakeFileSecurity, fake_file_security, parse_sddl

RELAY_ROUTE = Route(ip_network("198.18.5.9/32"), ip_address("198.18.0.1"), 2, 0)
V6_ROUTE = Route(ip_network("2001:db8::9/128"), None, 2, 3)


def test_entries_survive_a_reopen_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.json"
    journal = Journal(path)
    first = journal.record(RestoreMtu(7, Family.IPV4, 1500))
    second = journal.record(RestoreMetric(7, Family.IPV6, None))
    third = journal.record(DeleteRoute(RELAY_ROUTE))
    journal.record(DeleteRoute(V6_ROUTE))
    journal.done(second)

    reopened = Journal(path)
    assert [entry.undo for entry in reopened.pending()] == [
        RestoreMtu(7, Family.IPV4, 1500),
        DeleteRoute(RELAY_ROUTE),
        DeleteRoute(V6_ROUTE),
    ]
    assert [entry.entry_id for entry in reopened.pending()][:2] == [first, third]
    assert reopened.record(RestoreMetric(7, Family.IPV4, 10)) not in {
        entry.entry_id for entry in journal.pending()
    }


def test_the_file_is_removed_when_nothing_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    journal = Journal(path)
    entry_id = journal.record(RestoreMtu(7, Family.IPV4, 1500))
    assert path.exists()
    journal.done(entry_id)
    assert not path.exists()
    assert Journal(path).pending() == []


def test_an_interrupted_write_leaves_the_old_file_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.json"
    journal = Journal(path)
    journal.record(RestoreMtu(7, Family.IPV4, 1500))
    before = path.read_bytes()

    def crash(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(HostNetworkError, match="No space left"):
        journal.record(DeleteRoute(RELAY_ROUTE))

    assert path.read_bytes() == before
    assert [entry.undo for entry in journal.pending()] == [RestoreMtu(7, Family.IPV4, 1500)]
    assert [entry.undo for entry in Journal(path).pending()] == [RestoreMtu(7, Family.IPV4, 1500)]
    assert sorted(os.listdir(tmp_path)) == ["journal.json"]


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"version": 99, "next_id": 1, "entries": []}',
        '{"version": 1, "next_id": 2, "entries": [{"id": 1, "kind": "reboot"}]}',
        '{"version": 1, "next_id": 2, "entries": [{"id": 1, "kind": "mtu", "interface_index": 7,'
        ' "family": "ipv5", "mtu": 1500}]}',
        '{"version": 1, "next_id": 2, "entries": [{"id": 1, "kind": "mtu", "interface_index": "7",'
        ' "family": "ipv4", "mtu": 1500}]}',
        "[]",
    ],
)
def test_a_corrupt_journal_says_where_it_is_and_what_to_do(tmp_path: Path, text: str) -> None:
    path = tmp_path / "journal.json"
    path.write_text(text)
    with pytest.raises(JournalCorruptError) as caught:
        Journal(path)
    message = str(caught.value)
    assert str(path) in message
    assert "delete that file" in message
    assert path.read_text() == text


def test_the_default_path_is_one_only_root_or_administrators_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    assert default_journal_path() == Path("/var/lib/lanparty/client/client-journal.json")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("PROGRAMDATA", "D:\\Data")
    assert default_journal_path() == Path("D:\\Data") / "lanparty" / "client-journal.json"


def test_a_symlinked_journal_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text('{"version": 1, "next_id": 1, "entries": []}')
    path = tmp_path / "journal.json"
    path.symlink_to(target)
    with pytest.raises(JournalUnsafeError, match="symbolic link"):
        Journal(path)


def test_a_journal_others_can_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    Journal(path).record(RestoreMtu(7, Family.IPV4, 1500))
    path.chmod(0o622)
    with pytest.raises(JournalUnsafeError, match=r"writable by other users \(mode 0622\)"):
        Journal(path)


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    Journal(directory / "journal.json").record(RestoreMtu(7, Family.IPV4, 1500))
    directory.chmod(0o777)
    with pytest.raises(JournalUnsafeError, match="chmod go-w"):
        Journal(directory / "journal.json")
    with pytest.raises(JournalUnsafeError):
        Journal(directory / "other.json").record(RestoreMtu(7, Family.IPV4, 1500))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_journal_or_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    path = directory / "journal.json"
    Journal(path).record(RestoreMtu(7, Family.IPV4, 1500))
    os.chown(path, 4242, -1)
    with pytest.raises(JournalUnsafeError, match="belongs to another user"):
        Journal(path)
    os.chown(path, 0, -1)
    os.chown(directory, 4242, -1)
    with pytest.raises(JournalUnsafeError, match=r"directory belongs to another user \(uid 4242\)"):
        Journal(path)


def test_writes_go_through_a_fresh_file_not_a_prepared_one(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "journal.json.tmp").symlink_to(victim)  # the old temporary name
    Journal(path).record(RestoreMtu(7, Family.IPV4, 1500))
    assert victim.read_text() == "precious"
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# on Windows: owners and access lists (through the fake advapi32 of tests/fakes)

STRANGER = "S-1-5-21-1004336348-1177238915-682003330-1002"  # a user who is no administrator
HOSTILE_JOURNAL = {  # delete the player's default route, at the next elevated start
    "version": 1,
    "next_id": 2,
    "entries": [
        {
            "id": 1,
            "kind": "delete_route",
            "route": {
                "destination": "0.0.0.0/0",
                "gateway": "192.168.0.1",
                "interface_index": 3,
                "metric": 0,
            },
        }
    ],
}


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFileSecurity]:
    """The journal as on Windows, its directory's security through ``FakeFileSecurity``."""
    with fake_file_security(monkeypatch) as (_, fake):
        monkeypatch.setattr(sys, "platform", "win32")
        yield fake


def program_data_journal(tmp_path: Path) -> Path:
    return tmp_path / "ProgramData" / "lanparty" / "client-journal.json"


def test_on_windows_a_journal_directory_another_user_made_is_refused(
    windows: FakeFileSecurity, tmp_path: Path
) -> None:
    """%ProgramData% lets every user create a directory: one made before lanparty's first
    start, with a journal in it, must not be replayed by the elevated client."""
    path = program_data_journal(tmp_path)
    path.parent.mkdir(parents=True)
    windows.set(path.parent, f"O:{STRANGER}D:(A;OICI;FA;;;{STRANGER})(A;OICI;FA;;;BA)")
    path.write_text(json.dumps(HOSTILE_JOURNAL))
    with pytest.raises(JournalUnsafeError) as caught:
        Journal(path)
    message = str(caught.value)
    assert f"belongs to {STRANGER}, not to the Administrators group" in message
    assert "only administrators may write it" in message
    assert f'rmdir /s "{path.parent}"' in message


def test_on_windows_a_directory_users_may_write_in_is_refused(
    windows: FakeFileSecurity, tmp_path: Path
) -> None:
    """Made with what %ProgramData% passes on (an older lanparty's mkdir did that)."""
    path = program_data_journal(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(HOSTILE_JOURNAL))
    with pytest.raises(JournalUnsafeError, match=r"lets Users \(S-1-5-32-545\) change it"):
        Journal(path)
    with pytest.raises(JournalUnsafeError):
        Journal(path.with_name("other.json")).record(RestoreMtu(7, Family.IPV4, 1500))


def test_on_windows_the_directory_is_made_for_administrators_only(
    windows: FakeFileSecurity, tmp_path: Path
) -> None:
    path = program_data_journal(tmp_path)
    Journal(path).record(RestoreMtu(7, Family.IPV4, 1500))
    assert windows.security[str(path.parent)] == parse_sddl(
        "O:BAD:P(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)"
    )
    assert "CreateDirectoryW" in windows.calls
    assert [entry.undo for entry in Journal(path).pending()] == [RestoreMtu(7, Family.IPV4, 1500)]


def test_on_windows_a_journal_another_user_owns_is_refused(
    windows: FakeFileSecurity, tmp_path: Path
) -> None:
    path = program_data_journal(tmp_path)
    Journal(path).record(RestoreMtu(7, Family.IPV4, 1500))
    windows.set(path, f"O:{STRANGER}D:(A;;FA;;;{STRANGER})")
    with pytest.raises(JournalUnsafeError, match=f"client-journal.json: it belongs to {STRANGER}"):
        Journal(path)


async def test_an_entry_names_its_interface_and_follows_it(tmp_path: Path) -> None:
    net = FakeHostNetwork()
    net.add_interface(9, mtu=1380)  # the uplink, re-created with another index
    net.names[9] = "eth0"
    net.add_interface(7, mtu=9000)  # the old index, another interface's now
    net.names[7] = "docker0"
    journal = Journal(tmp_path / "journal.json")
    journal.record(RestoreMtu(7, Family.IPV4, 1500, interface_name="eth0"))
    journal.record(RestoreMtu(5, Family.IPV4, 1500, interface_name="lp0"))  # the TAP: gone
    assert [entry.undo.interface_name for entry in Journal(journal.path).pending()] == [
        "eth0",
        "lp0",
    ]
    assert await restore_pending(Journal(journal.path), net) == 2
    assert net.interfaces[9].mtu[Family.IPV4] == 1500
    assert net.interfaces[7].mtu[Family.IPV4] == 9000


async def test_restore_pending_undoes_newest_first_and_forgets_each(tmp_path: Path) -> None:
    net = FakeHostNetwork()
    net.add_interface(2)
    net.add_interface(7, mtu=1380, metric=5)
    net.routes.append(RELAY_ROUTE)
    journal = Journal(tmp_path / "journal.json")
    journal.record(DeleteRoute(RELAY_ROUTE))
    journal.record(RestoreMtu(7, Family.IPV4, 1500))
    journal.record(RestoreMetric(7, Family.IPV4, None))

    assert await restore_pending(journal, net) == 3
    assert net.calls == [
        Call("set_metric", (7, Family.IPV4, None)),
        Call("set_mtu", (7, Family.IPV4, 1500)),
        Call("delete_route", (RELAY_ROUTE,)),
    ]
    assert net.routes == []
    assert net.interfaces[7].mtu[Family.IPV4] == 1500
    assert journal.pending() == []
    assert not journal.path.exists()


async def test_a_gone_interface_or_route_counts_as_restored(tmp_path: Path) -> None:
    net = FakeHostNetwork()
    journal = Journal(tmp_path / "journal.json")
    journal.record(DeleteRoute(RELAY_ROUTE))
    journal.record(RestoreMtu(7, Family.IPV4, 1500))
    assert await restore_pending(journal, net) == 2
    assert journal.pending() == []


async def test_an_entry_that_fails_stays_and_the_others_are_restored(tmp_path: Path) -> None:
    net = FakeHostNetwork()
    net.add_interface(7, mtu=1380)
    net.fail("set_mtu", family=Family.IPV6)
    journal = Journal(tmp_path / "journal.json")
    journal.record(RestoreMtu(7, Family.IPV4, 1500))
    journal.record(RestoreMtu(7, Family.IPV6, 1500))

    with pytest.raises(HostNetworkError, match="refused"):
        await restore_pending(journal, net)
    assert [entry.undo for entry in Journal(journal.path).pending()] == [
        RestoreMtu(7, Family.IPV6, 1500)
    ]
    assert net.interfaces[7].mtu[Family.IPV4] == 1500


async def test_an_entry_whose_interface_is_unavailable_waits_and_the_client_starts(
    tmp_path: Path,
) -> None:
    """A disabled TAP (Windows): its entries stay for a later start, and nothing is raised."""
    net = FakeHostNetwork()
    net.add_interface(7, mtu=1380, metric=10)
    net.routes.append(RELAY_ROUTE)
    net.fail("set_metric", error=InterfaceUnavailableError)
    net.fail("set_mtu", error=InterfaceUnavailableError)
    journal = Journal(tmp_path / "journal.json")
    journal.record(DeleteRoute(RELAY_ROUTE))
    journal.record(RestoreMtu(7, Family.IPV4, 1500))
    journal.record(RestoreMetric(7, Family.IPV4, None))

    with structlog.testing.capture_logs() as logs:
        assert await restore_pending(journal, net) == 1
    assert net.routes == []
    assert [entry.undo for entry in Journal(journal.path).pending()] == [
        RestoreMtu(7, Family.IPV4, 1500),
        RestoreMetric(7, Family.IPV4, None),
    ]
    waiting = [log for log in logs if log.get("pending")]
    assert [log["change"] for log in waiting] == ["metric", "mtu"]
    assert all("refused" in log["error"] for log in waiting)


async def test_an_unavailable_interface_does_not_hide_another_failure(tmp_path: Path) -> None:
    net = FakeHostNetwork()
    net.add_interface(7, mtu=1380)
    net.fail("set_mtu", family=Family.IPV4, error=InterfaceUnavailableError)
    net.fail("set_mtu", family=Family.IPV6)
    journal = Journal(tmp_path / "journal.json")
    journal.record(RestoreMtu(7, Family.IPV4, 1500))
    journal.record(RestoreMtu(7, Family.IPV6, 1500))
    with pytest.raises(HostNetworkError, match="refused") as caught:
        await restore_pending(journal, net)
    assert not isinstance(caught.value, InterfaceUnavailableError)
    assert len(Journal(journal.path).pending()) == 2


indexes = st.integers(min_value=1, max_value=2**31 - 1)
families = st.sampled_from(list(Family))
v4_routes = st.builds(
    Route,
    st.ip_addresses(v=4).map(ip_network),
    st.none() | st.ip_addresses(v=4),
    indexes,
    st.integers(min_value=0, max_value=2**32 - 1),
)
v6_routes = st.builds(
    Route,
    st.ip_addresses(v=6).map(ip_network),
    st.none() | st.ip_addresses(v=6),
    indexes,
    st.integers(min_value=0, max_value=2**32 - 1),
)
undos: st.SearchStrategy[Undo] = st.one_of(
    st.builds(RestoreMtu, indexes, families, st.integers(min_value=68, max_value=65535)),
    st.builds(RestoreMetric, indexes, families, st.none() | st.integers(0, 9999)),
    st.builds(DeleteRoute, v4_routes | v6_routes),
    st.builds(
        RestoreDns,
        indexes,
        families,
        st.builds(
            InterfaceDns,
            st.none()
            | st.lists(st.ip_addresses(v=4), max_size=3).map(tuple)
            | st.lists(st.ip_addresses(v=6), max_size=3).map(tuple),
            st.sampled_from(DnsRegistration),
        ),
    ),
)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(undos, min_size=1, max_size=5))
def test_every_entry_reads_back_as_written(tmp_path: Path, written: list[Undo]) -> None:
    path = tmp_path / "roundtrip.json"
    path.unlink(missing_ok=True)
    journal = Journal(path)
    for undo in written:
        journal.record(undo)
    assert [entry.undo for entry in Journal(path).pending()] == written

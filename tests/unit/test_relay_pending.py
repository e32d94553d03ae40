from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.relay.pending import PendingHellos
from lanparty.transport.admission import source_key


def v6(prefix: int, host: int = 1) -> bytes:
    """The source key of an address in 2001:db8:0:<prefix>::/64 (a /56 holds 256 of them)."""
    address = ipaddress.IPv6Address(f"2001:db8:0:{prefix:x}::{host:x}")
    return source_key((str(address), 4433))


class Slot:
    """A waiting connection (compared by identity, as the relay's are)."""


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PendingHellos[Slot](0, 1)
    with pytest.raises(ValueError):
        PendingHellos[Slot](1, 0)


def test_one_source_is_capped() -> None:
    table = PendingHellos[Slot](limit=10, per_source_limit=2)
    assert table.add(v6(1, 1), Slot()) == (True, None)
    assert table.add(v6(1, 2), Slot()) == (True, None)
    # another host of the same /64 is the same source
    assert table.add(v6(1, 3), Slot()) == (False, None)
    assert table.held_by(v6(1)) == 2
    assert table.add(v6(2), Slot())[0]


def test_a_slot_given_back_is_free_again_and_unknown_ones_are_ignored() -> None:
    table = PendingHellos[Slot](limit=1, per_source_limit=1)
    first = Slot()
    assert table.add(v6(1), first) == (True, None)
    table.remove(v6(1), first)
    table.remove(v6(1), first)
    table.remove(v6(9), Slot())
    assert len(table) == 0
    assert table.add(v6(1), Slot()) == (True, None)


def test_a_full_table_takes_the_oldest_slot_of_the_greediest_source() -> None:
    table = PendingHellos[Slot](limit=4, per_source_limit=8)
    attacker = [Slot() for _ in range(3)]
    for slot in attacker:
        table.add(v6(1), slot)
    other = Slot()
    table.add(v6(2), other)
    player = Slot()
    assert table.add(v6(3), player) == (True, attacker[0])
    assert len(table) == 4
    assert table.held_by(v6(1)) == 2


def test_a_source_as_greedy_as_any_cannot_take_a_slot() -> None:
    table = PendingHellos[Slot](limit=2, per_source_limit=8)
    table.add(v6(1), Slot())
    table.add(v6(2), Slot())
    # v6(1) already holds as many as anyone: it may not churn the table
    assert table.add(v6(1), Slot()) == (False, None)
    assert len(table) == 2


def test_a_whole_slash_56_cannot_lock_a_player_out() -> None:
    # An attacker fills the table from all 256 /64s of its /56, one slot each,
    # and keeps renewing the oldest: a player's connection still gets a slot,
    # and keeps it until the attacker has renewed every slot it holds.
    limit = 256
    table = PendingHellos[Slot](limit=limit, per_source_limit=32)
    held: dict[int, Slot] = {}
    for prefix in range(256):
        held[prefix] = Slot()
        assert table.add(v6(prefix), held[prefix]) == (True, None)
    player = Slot()
    admitted, evicted = table.add(source_key(("198.51.100.7", 4433)), player)
    assert admitted
    assert evicted is held[0]
    # The attacker's next 254 handshakes evict its own older slots, not the player's.
    for prefix in range(1, 255):
        admitted, evicted = table.add(v6(prefix + 256), Slot())
        assert admitted
        assert evicted is held[prefix]
    assert table.held_by(source_key(("198.51.100.7", 4433))) == 1


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=12), st.booleans()),
        max_size=200,
    )
)
def test_the_limits_always_hold(operations: list[tuple[int, bool]]) -> None:
    table = PendingHellos[Slot](limit=8, per_source_limit=3)
    live: list[tuple[bytes, Slot]] = []
    for prefix, leave in operations:
        if leave and live:
            source, slot = live.pop(0)
            table.remove(source, slot)
            continue
        slot = Slot()
        admitted, evicted = table.add(v6(prefix), slot)
        if evicted is not None:
            live = [(s, x) for s, x in live if x is not evicted]
        if admitted:
            live.append((v6(prefix), slot))
        assert len(table) == len(live) <= 8
        assert all(table.held_by(v6(p)) <= 3 for p in range(13))

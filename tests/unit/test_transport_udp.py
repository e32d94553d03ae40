"""Grouping datagrams into per-address runs (for GSO sends and batch receives)."""

from __future__ import annotations

from lanparty.transport.udp import runs_by_address

A, B = ("198.18.0.1", 1), ("198.18.0.2", 2)


def test_consecutive_datagrams_to_one_address_form_one_run() -> None:
    datagrams = [(b"1", A), (b"2", A), (b"3", B), (b"4", A)]
    assert list(runs_by_address(datagrams)) == [(A, [b"1", b"2"]), (B, [b"3"]), (A, [b"4"])]


def test_no_datagrams_no_runs() -> None:
    assert list(runs_by_address([])) == []

"""Grouping datagrams into per-address runs (for GSO sends and batch receives), and draining."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from lanparty.transport.udp import UdpSocket, runs_by_address

A, B = ("198.18.0.1", 1), ("198.18.0.2", 2)


def test_consecutive_datagrams_to_one_address_form_one_run() -> None:
    datagrams = [(b"1", A), (b"2", A), (b"3", B), (b"4", A)]
    assert list(runs_by_address(datagrams)) == [(A, [b"1", b"2"]), (B, [b"3"]), (A, [b"4"])]


def test_no_datagrams_no_runs() -> None:
    assert list(runs_by_address([])) == []


class CountingReceiver:
    """Stands in for quinn-udp's socket state: counts receive calls."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def recv(self) -> list[Any]:
        self.calls += 1
        return list(self.real.recv())


@pytest.mark.parametrize("count", [1, 5, 31, 32, 100, 300])
def test_a_batched_receive_drains_the_socket_with_no_empty_call_at_the_end(count: int) -> None:
    udp = UdpSocket.bind("127.0.0.1", 0)
    assert udp.batched, "qh3's quinn-udp binding is there on Linux"
    counting = CountingReceiver(udp._batch)
    udp._batch = counting
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for index in range(count):
            sender.sendto(index.to_bytes(2, "big"), udp.local_address())
        received: list[Any] = []
        while len(received) < count:
            received.extend(udp.receive_batch())
        # One call per 32 messages, plus one that finds the socket empty only
        # when the last call came back full.
        assert counting.calls == count // 32 + 1
        assert [int.from_bytes(data, "big") for data, _ in received] == list(range(count))
        assert udp.receive_batch() == []
    finally:
        sender.close()
        udp.close()

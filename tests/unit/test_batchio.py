"""The frame devices' shared shape, and the choice of the C shim or pure Python."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from lanparty import _native
from lanparty.batchio import BatchIO, select_shim
from lanparty.client.linux.tap import TapDevice
from lanparty.errors import ConfigError
from lanparty.gateway.packet_socket import PacketSocket

MAC = bytes.fromhex("02aabbccdd01")


@pytest.fixture
def shim_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lanparty._native", None)  # makes the import fail


@pytest.mark.parametrize("native", [None, True])
def test_a_built_shim_is_used_unless_refused(native: bool | None) -> None:
    assert select_shim(native, device="test I/O", without="do without") is _native


def test_false_refuses_a_built_shim() -> None:
    assert select_shim(False, device="test I/O", without="do without") is None


@pytest.mark.usefixtures("shim_missing")
@pytest.mark.parametrize("native", [None, False])
def test_without_the_shim_the_python_path_is_chosen(native: bool | None) -> None:
    assert select_shim(native, device="test I/O", without="do without") is None


@pytest.mark.usefixtures("shim_missing")
def test_requiring_a_missing_shim_says_how_to_build_it_or_do_without() -> None:
    with pytest.raises(ConfigError) as caught:
        select_shim(True, device="test I/O", without="do without it")
    message = str(caught.value)
    assert message.startswith("the native test I/O shim (lanparty._native) is not built")
    assert "pip install -e ." in message
    assert message.endswith("or do without it")


@pytest.mark.parametrize("shim", [_native, None], ids=["native", "python"])
def test_both_devices_have_the_batch_io_shape(shim: object) -> None:
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    left.setblocking(False)
    try:
        tap = TapDevice(read_end, "pipe0", MAC, 1500, shim)
        sock = PacketSocket(left, "lan0", 1, MAC, shim)
        devices: list[tuple[BatchIO, int]] = [(tap, read_end), (sock, left.fileno())]
        for device, fd in devices:
            assert isinstance(device, BatchIO)
            assert device.fileno() == fd
            assert device.read_batch() == []
            assert device.write_batch([]) == 0
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        left.close()
        right.close()

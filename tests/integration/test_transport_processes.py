"""The transport between two processes: examples/echo_server.py and this test.

Every pairing of backends, so qh3 and aioquic also prove they speak the
same QUIC to each other (an aioquic client reaches a qh3 server through a
Retry: see lanparty/transport/admission.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from lanparty.ctrl import Disconnect, Stats
from lanparty.transport import QuicBackend, SpkiPin, TransportSettings, open_connection

REPO = Path(__file__).resolve().parents[2]
BACKENDS = [QuicBackend.QH3, QuicBackend.AIOQUIC]


@pytest.fixture(params=BACKENDS, ids=lambda b: f"server-{b}")
def echo_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, object]]:
    child = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "examples" / "echo_server.py"),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(tmp_path),
            "--backend",
            str(request.param),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        info: dict[str, object] = json.loads(child.stdout.readline())
        yield {**info, "backend": request.param}
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    assert child.returncode == 0


@pytest.mark.parametrize("client_backend", BACKENDS, ids=lambda b: f"client-{b}")
async def test_frames_and_control_between_processes(
    echo_server: dict[str, object], client_backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=client_backend, handshake_timeout_s=5)
    pin = SpkiPin.parse(str(echo_server["pin"]))
    host, port = str(echo_server["host"]), int(str(echo_server["port"]))
    async with open_connection(host, port, pin, settings=settings) as connection:
        frames = [bytes([n]) * (14 + n * 7) for n in range(200)]
        connection.send_datagrams(frames)
        echoed: list[bytes] = []
        with trio.fail_after(10):
            while len(echoed) < len(frames):
                echoed.extend(await connection.receive_datagrams())
        assert sorted(echoed) == sorted(frames)
        connection.send_control(Disconnect(reason="transport test"))
        with trio.fail_after(10):
            stats = await connection.receive_control()
        assert isinstance(stats, Stats)
        assert stats.rx_frames == len(frames)
        assert stats.tx_frames == len(frames)

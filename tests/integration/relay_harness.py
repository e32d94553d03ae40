"""A real relay process on loopback, and small helpers to talk through it."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import attrs
import trio

from lanparty.credentials import ClientCredentials, GatewayCredentials, room_id_for
from lanparty.ctrl import Role
from lanparty.endpoint.session import Credentials, RelayEndpoint, Session, open_session
from lanparty.proto import parse_mac
from lanparty.transport import SpkiPin, TransportSettings

REPO = Path(__file__).resolve().parents[2]
TEST_ETHERTYPE = 0x88B5  # IEEE local experimental
BROADCAST = b"\xff" * 6


@attrs.frozen
class RelayProcess:
    process: subprocess.Popen[str]
    host: str
    port: int
    pin: str
    metrics_url: str | None
    output: list[str]

    @property
    def endpoint(self) -> RelayEndpoint:
        return RelayEndpoint(self.host, self.port, SpkiPin.parse(self.pin))

    def metrics(self) -> dict[str, float]:
        """The relay's Prometheus samples, ``name{labels}`` -> value."""
        assert self.metrics_url is not None
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def drops(self, reason: str) -> float:
        return self.metrics().get(f'lanparty_dropped_frames_total{{reason="{reason}"}}', 0.0)

    def stop(self, signal_number: int = signal.SIGTERM) -> int:
        self.process.send_signal(signal_number)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@contextmanager
def relay_process(
    state_dir: Path, *args: str, log_path: Path | None = None
) -> Iterator[RelayProcess]:
    """Start ``python -m lanparty.relay`` on 127.0.0.1 with a metrics port, and stop it after.

    ``log_path``: the relay's log (stderr) goes there instead of the test's output.
    """
    command = [
        sys.executable, "-m", "lanparty.relay",
        "--listen", "127.0.0.1:0", "--state-dir", str(state_dir),
        "--metrics", "127.0.0.1:0", "--log-level", "warning", *args,
    ]  # fmt: skip
    log = None if log_path is None else log_path.open("a")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        while not output or not output[-1].startswith("metrics:"):
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"the relay exited early: {output}")
            output.append(line.rstrip("\n"))
        text = "\n".join(output)
        listening = re.search(r"listening on ([\d.]+):(\d+)", text)
        pin = re.search(r"^pin: (sha256:[0-9a-f]{64})$", text, re.MULTILINE)
        metrics = re.search(r"^metrics: (\S+)$", text, re.MULTILINE)
        assert listening, text
        assert pin, text
        assert metrics, text
        yield RelayProcess(
            process, listening.group(1), int(listening.group(2)), pin.group(1),
            metrics.group(1), output,
        )  # fmt: skip
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if log is not None:
            log.close()


def frame(
    dst: bytes, src: bytes, payload: bytes = b"hello", ethertype: int = TEST_ETHERTYPE
) -> bytes:
    """An Ethernet frame, padded to the 60-byte minimum."""
    raw = dst + src + ethertype.to_bytes(2, "big") + payload
    return raw.ljust(60, b"\x00")


def mac(text: str) -> bytes:
    return parse_mac(text)


def _test_key(what: str, room: str) -> bytes:
    return hashlib.sha256(f"test {what} of room {room}".encode()).digest()


def gateway_credentials(
    room: str = "party", *, client_key: bytes | None = None
) -> GatewayCredentials:
    """The keys of the test gateway of ``room`` (a label; each has its own keys)."""
    return GatewayCredentials(
        gateway_key=_test_key("gateway key", room),
        client_key=_test_key("client key", room) if client_key is None else client_key,
        room_name=room,
    )


def room_id(room: str = "party") -> str:
    return room_id_for(_test_key("gateway key", room))


def client_credentials(
    mac_text: str,
    room: str = "party",
    *,
    client_key: bytes | None = None,
    secret: bytes | None = None,
) -> ClientCredentials:
    """A client of ``room`` with the room's invite key; its identity follows its MAC."""
    return ClientCredentials(
        room_id=room_id(room),
        client_key=_test_key("client key", room) if client_key is None else client_key,
        identity_secret=_test_key(f"identity {mac_text}", "any") if secret is None else secret,
    )


@asynccontextmanager
async def member(
    relay: RelayProcess,
    mac_text: str,
    *,
    role: Role = Role.CLIENT,
    room: str = "party",
    settings: TransportSettings | None = None,
    credentials: Credentials | None = None,
) -> AsyncIterator[Session]:
    if credentials is None:
        credentials = (
            gateway_credentials(room)
            if role is Role.GATEWAY
            else client_credentials(mac_text, room)
        )
    async with open_session(
        relay.endpoint, credentials=credentials, mac=parse_mac(mac_text), settings=settings
    ) as session:
        yield session


ROOM_OPENER_MAC = "00:16:3e:00:00:f0"


async def open_room(relay: RelayProcess, room: str = "party") -> None:
    """Let the room's gateway open ``room`` and leave: the room stays for the grace period.

    Returns once the relay has seen it leave, so that its ``peer_left`` is not
    what the next member hears first (it raced the next join under load).
    """
    before = relay.metrics()["lanparty_peers"]
    async with member(relay, ROOM_OPENER_MAC, role=Role.GATEWAY, room=room):
        pass
    with trio.fail_after(10):
        while relay.metrics()["lanparty_peers"] > before:
            await trio.sleep(0.01)


async def receive_until(session: Session, marker: bytes, timeout_s: float = 10) -> list[bytes]:
    """Frames received up to and including ``marker`` (which must come)."""
    received: list[bytes] = []
    with trio.fail_after(timeout_s):
        while marker not in received:
            received.extend(await session.receive_frames())
    return received[: received.index(marker) + 1]

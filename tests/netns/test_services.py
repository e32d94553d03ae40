"""The relay and the gateway as services: the example units, run as systemd would run them.

There is no systemd here (no PID 1 to start units), so the test does its
part: ``systemd-analyze verify`` checks both units, then each program is
started with its unit's ``ExecStart=`` line (the installed script's path in
place of /opt/lanparty/bin, ``%i`` the interface, ``$LANPARTY_*_OPTIONS``
split as systemd splits it), by ``setpriv`` as an unprivileged user (65534)
holding only the unit's capabilities, with ``$STATE_DIRECTORY`` and a
``$NOTIFY_SOCKET`` the test holds, inside the namespaces of
``lanparty.demo.world`` (relay on 443/udp). Root only; CI runs as root.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import trio

from lanparty.credentials import ClientCredentials
from lanparty.ctrl import RejectCode, Role
from lanparty.endpoint.session import RejectedError, RelayEndpoint, Session, open_session
from lanparty.gateway.offloads import _set_gro, gro_enabled, lro_enabled
from lanparty.invite import Invite
from lanparty.proto import parse_mac
from lanparty.transport import SpkiPin
from lanparty.transport.certs import DEV_KEY_FILE
from tests.netns.lan import arp_reply_from, arp_request, icmp_echo, is_echo_reply
from tests.netns.netns import add_veth_pair, inside, new_namespace, promiscuity
from tests.netns.topology import LAN_HOST_IP, RELAY_FOR_CLIENT, RELAY_FOR_GATEWAY, topology

pytestmark = pytest.mark.netns

UNITS = Path(__file__).resolve().parents[2] / "examples" / "systemd"
RELAY_UNIT = UNITS / "lanparty-relay.service"
GATEWAY_UNIT = UNITS / "lanparty-gateway@.service"
INSTALLED_BIN = "/opt/lanparty/bin/"
SCRIPTS = Path(sys.executable).parent  # the venv's bin: lanparty-relay, lanparty-gateway
SERVICE_UID = 65534
SERVICE_PORT = 443
CLIENT_MAC = parse_mac("02:00:00:00:00:0b")
CLIENT_IP = "198.19.0.101"
ANY_PIN = "sha256:" + "ab" * 32


def exec_start(unit: Path, *, instance: str = "", options: str = "") -> list[str]:
    """The unit's ``ExecStart=`` as systemd would run it, with this checkout's scripts."""
    lines = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, f"{unit.name} has one ExecStart= line"
    command: list[str] = []
    for word in shlex.split(lines[0].removeprefix("ExecStart=")):
        if word.startswith("$"):  # $VAR alone: its value split at whitespace, quotes respected
            command += shlex.split(options)
        else:
            command.append(word.replace(INSTALLED_BIN, f"{SCRIPTS}/").replace("%i", instance))
    return command


def unit_capabilities(unit: Path) -> list[str]:
    """``AmbientCapabilities=`` of a unit, as setpriv names them (net_raw, ...)."""
    (line,) = [x for x in unit.read_text().splitlines() if x.startswith("AmbientCapabilities=")]
    return [name.removeprefix("CAP_").lower() for name in line.split("=", 1)[1].split()]


def as_service_user(capabilities: Sequence[str]) -> list[str]:
    """setpriv: user and group 65534, no groups, only ``capabilities`` (ambient), no new privs."""
    wanted = "".join(f",+{name}" for name in capabilities)
    return ["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", "--clear-groups",
            f"--inh-caps=-all{wanted}", f"--ambient-caps=-all{wanted}",
            f"--bounding-set=-all{wanted}", "--no-new-privs", "--"]  # fmt: skip


def capability_mask(capabilities: Sequence[str]) -> int:
    bits = {"net_bind_service": 10, "net_admin": 12, "net_raw": 13}
    return sum(1 << bits[name] for name in capabilities)


@contextlib.contextmanager
def service_state() -> Iterator[Path]:
    """A directory the service user owns (pytest's tmp_path is closed to it), removed after."""
    base = Path(tempfile.mkdtemp(prefix="lp-services-", dir="/tmp"))
    try:
        os.chown(base, SERVICE_UID, SERVICE_UID)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def state_directory(base: Path, *parts: str) -> Path:
    """What StateDirectory= makes: owned by the service user, mode 0700 (StateDirectoryMode=)."""
    path = base.joinpath(*parts)
    path.mkdir(parents=True, mode=0o700)
    for made in [path, *path.relative_to(base).parents]:
        os.chown(base / made, SERVICE_UID, SERVICE_UID)
    return path


@contextlib.contextmanager
def notify_socket(namespace: str) -> Iterator[tuple[socket.socket, str]]:
    """An abstract datagram socket in ``namespace`` (abstract names live in a network namespace)."""
    name = f"lanparty-test-notify-{secrets.token_hex(6)}"
    with inside(namespace):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(b"\0" + name.encode())
    try:
        yield sock, f"@{name}"
    finally:
        sock.close()


def wait_for_notification(
    sock: socket.socket, wanted: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> list[str]:
    """The lines of the first datagram holding ``wanted`` (``READY=1``); fails after timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(0.2)
        try:
            lines = sock.recv(4096).decode().split("\n")
        except TimeoutError:
            if process.poll() is not None:
                pytest.fail(f"exited ({process.returncode}) before {wanted}: {log.read_text()}")
            continue
        if wanted in lines:
            return lines
    pytest.fail(f"no {wanted} within {timeout_s} s: {log.read_text()}")


def service_environment(notify: str, state: Path) -> dict[str, str]:
    """What systemd gives the service: a clean environment (PATH), the socket, the directory."""
    return {"PATH": os.environ["PATH"], "NOTIFY_SOCKET": notify, "STATE_DIRECTORY": str(state)}


def start_service(
    namespace: str,
    command: Sequence[str],
    capabilities: Sequence[str],
    environment: dict[str, str],
    *,
    output: Path,
    log: Path,
) -> subprocess.Popen[bytes]:
    with output.open("wb") as stdout, log.open("wb") as stderr:
        return subprocess.Popen(
            ["ip", "netns", "exec", namespace, *as_service_user(capabilities), *command],
            env=environment, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def wait_for_line(path: Path, pattern: str, process: subprocess.Popen[bytes]) -> str:
    """The first group of ``pattern`` in what a process printed (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"{pattern!r} never printed: {path.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM and the exit code; SIGKILL after 20 s (then the test fails)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("did not exit within 20 s of SIGTERM")
    return process.returncode


def process_identity(pid: int) -> tuple[int, int]:
    """(real uid, effective capability mask) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    uid = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    effective = re.search(r"^CapEff:\s+([0-9a-f]+)", status, re.MULTILINE)
    assert uid is not None
    assert effective is not None
    return int(uid.group(1)), int(effective.group(1), 16)


def run_as_service_user(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*as_service_user([]), *command],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ["PATH"]},
    )  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _service_user_can_run_lanparty() -> None:
    """The unprivileged user must reach this checkout and its venv (world-readable)."""
    done = run_as_service_user(
        str(SCRIPTS / "python"), "-c", "import lanparty.relay.cli, lanparty.gateway.cli"
    )
    if done.returncode != 0:
        pytest.fail(
            f"user {SERVICE_UID} cannot import lanparty from {SCRIPTS.parent} (the checkout "
            f"and the venv must be readable by other users): {done.stderr}"
        )


def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (scripts/test.sh does)")
    # The units name /opt/lanparty/bin; verify checks that the program exists, so it gets
    # this checkout's scripts in its place (nothing else changes).
    for unit in (RELAY_UNIT, GATEWAY_UNIT):
        text = unit.read_text().replace(INSTALLED_BIN, f"{SCRIPTS}/")
        (tmp_path / unit.name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / RELAY_UNIT.name),
         str(tmp_path / "lanparty-gateway@lan0.service")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # warnings (unknown keys, bad values) too


def test_units_hold_the_sandboxing_and_only_the_capabilities_they_need() -> None:
    relay = RELAY_UNIT.read_text().splitlines()
    gateway = GATEWAY_UNIT.read_text().splitlines()
    common = ["Type=notify", "Restart=on-failure", "ProtectSystem=strict", "ProtectHome=yes",
              "PrivateTmp=yes", "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
              "StateDirectoryMode=0700"]  # fmt: skip
    for line in common:
        assert line in relay
        assert line in gateway
    assert "DynamicUser=yes" in relay
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in relay
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" in relay
    assert any(line.startswith("MemoryMax=") for line in relay)
    assert "User=lanparty" in gateway
    assert "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN" in gateway
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK" in gateway
    assert unit_capabilities(RELAY_UNIT) == ["net_bind_service"]
    assert unit_capabilities(GATEWAY_UNIT) == ["net_raw", "net_admin"]


def test_relay_without_its_capability_names_it(tmp_path: Path) -> None:
    with new_namespace() as namespace, service_state() as base:
        state = state_directory(base, "lanparty-relay")
        with notify_socket(namespace) as (sock, notify):
            relay = start_service(
                namespace, exec_start(RELAY_UNIT), [], service_environment(notify, state),
                output=tmp_path / "relay.out", log=tmp_path / "relay.log",
            )  # fmt: skip
            try:
                assert relay.wait(timeout=60) == 2
            finally:
                stop(relay)
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(4096)  # never ready
    error = (tmp_path / "relay.log").read_text()
    assert "listening on port 443" in error
    assert "needs the capability CAP_NET_BIND_SERVICE" in error


@pytest.mark.parametrize(
    ("capabilities", "missing"), [([], "CAP_NET_RAW"), (["net_raw"], "CAP_NET_ADMIN")]
)
def test_gateway_without_its_capabilities_names_the_missing_one(
    tmp_path: Path, capabilities: list[str], missing: str
) -> None:
    with new_namespace() as namespace, service_state() as base:
        add_veth_pair(namespace, "lan0", "peer0")
        with inside(namespace):
            _set_gro("lan0", True)
        state = state_directory(base, "lanparty-gateway", "lan0")
        options = f"--relay {RELAY_FOR_GATEWAY}:{SERVICE_PORT} --relay-pin {ANY_PIN}"
        gateway = start_service(
            namespace, exec_start(GATEWAY_UNIT, instance="lan0", options=options),
            capabilities, service_environment("", state),
            output=tmp_path / "gateway.out", log=tmp_path / "gateway.log",
        )  # fmt: skip
        try:
            assert gateway.wait(timeout=60) == 2, (tmp_path / "gateway.log").read_text()
        finally:
            stop(gateway)
        with inside(namespace):
            assert gro_enabled("lan0")
        assert promiscuity(namespace, "lan0") == 0
    assert f"needs the capability {missing}" in (tmp_path / "gateway.log").read_text()


@contextlib.asynccontextmanager
async def player_session(pin: str, invite: Invite, namespace: str) -> AsyncIterator[Session]:
    """A session from the player's namespace once the gateway is in the room (30 s at most)."""
    relay = RelayEndpoint(RELAY_FOR_CLIENT, SERVICE_PORT, SpkiPin.parse(pin))
    credentials = ClientCredentials(
        room_id=invite.room, client_key=invite.client_key, identity_secret=b"player".ljust(32)
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with inside(namespace):
                context = open_session(relay, credentials=credentials, mac=CLIENT_MAC)
                session = await context.__aenter__()
        except RejectedError as exc:  # room_not_open: the gateway is not connected yet
            if exc.code is not RejectCode.ROOM_NOT_OPEN:
                raise
        else:
            try:
                if any(p.role is Role.GATEWAY for p in session.peers.values()):
                    yield session
                    return
            finally:
                await context.__aexit__(None, None, None)
        assert time.monotonic() < deadline, "the gateway never joined the room"
        await trio.sleep(0.2)


async def receive_matching(session: Session, match: object, timeout_s: float = 10) -> bytes:
    with trio.fail_after(timeout_s):
        while True:
            for frame in await session.receive_frames():
                if match(frame):  # type: ignore[operator]
                    return frame


async def ping_the_lan_host(session: Session) -> None:
    """ARP for the LAN host, then an ICMP echo it answers: the ping crossed the bridge."""
    session.send_frame(arp_request(CLIENT_MAC, CLIENT_IP, LAN_HOST_IP))
    reply = await receive_matching(session, lambda f: arp_reply_from(f, LAN_HOST_IP) is not None)
    lan_host_mac = arp_reply_from(reply, LAN_HOST_IP)
    assert lan_host_mac is not None
    session.send_frame(icmp_echo(CLIENT_MAC, lan_host_mac, CLIENT_IP, LAN_HOST_IP, 1))
    await receive_matching(session, lambda f: is_echo_reply(f, LAN_HOST_IP, 1))


async def test_relay_and_gateway_as_services_bridge_a_player(tmp_path: Path) -> None:
    relay_caps, gateway_caps = unit_capabilities(RELAY_UNIT), unit_capabilities(GATEWAY_UNIT)
    with topology() as topo, service_state() as base:
        relay_state = state_directory(base, "lanparty-relay")
        gateway_state = state_directory(base, "lanparty-gateway", "lan0")
        with inside(topo.gateway):
            _set_gro("lan0", True)
            lro_before = lro_enabled("lan0")
        processes: list[subprocess.Popen[bytes]] = []
        with (
            notify_socket(topo.relay) as (relay_sock, relay_notify),
            notify_socket(topo.gateway) as (gateway_sock, gateway_notify),
        ):
            try:
                # The relay: 443/udp as user 65534 with CAP_NET_BIND_SERVICE only.
                relay = start_service(
                    topo.relay, exec_start(RELAY_UNIT, options="--log-level info"), relay_caps,
                    service_environment(relay_notify, relay_state),
                    output=tmp_path / "relay.out", log=tmp_path / "relay.log",
                )  # fmt: skip
                processes.append(relay)
                ready = wait_for_notification(
                    relay_sock, "READY=1", relay, tmp_path / "relay.log", 60
                )
                assert any(line.startswith("STATUS=listening on") for line in ready)
                assert process_identity(relay.pid) == (SERVICE_UID, capability_mask(relay_caps))
                assert ":443" in topo.exec(topo.relay, "ss", "-Hlun", "sport = :443")
                pin = wait_for_line(tmp_path / "relay.out", r"^pin: (\S+)$", relay)
                assert (relay_state / DEV_KEY_FILE).exists()

                # The gateway: lan0 as user 65534 with CAP_NET_RAW and CAP_NET_ADMIN only.
                options = (f"--relay {RELAY_FOR_GATEWAY}:{SERVICE_PORT} --relay-pin {pin} "
                           "--room-name 'Service test' --log-level info")  # fmt: skip
                gateway = start_service(
                    topo.gateway, exec_start(GATEWAY_UNIT, instance="lan0", options=options),
                    gateway_caps, service_environment(gateway_notify, gateway_state),
                    output=tmp_path / "gateway.out", log=tmp_path / "gateway.log",
                )  # fmt: skip
                processes.append(gateway)
                wait_for_notification(
                    gateway_sock, "READY=1", gateway, tmp_path / "gateway.log", 60
                )
                assert process_identity(gateway.pid) == (
                    SERVICE_UID, capability_mask(gateway_caps)
                )  # fmt: skip
                printed = wait_for_line(
                    tmp_path / "gateway.out", r"^invite: (lanparty://\S+)$", gateway
                )
                invite = Invite.parse(printed)
                assert invite.name == "Service test"
                assert promiscuity(topo.gateway, "lan0") == 1
                with inside(topo.gateway):
                    assert not gro_enabled("lan0")

                # A player: admitted next to the gateway, its ping reaches the LAN host.
                async with player_session(pin, invite, topo.client) as session:
                    await ping_the_lan_host(session)

                # The invite again, from the state directory alone, as the service's user.
                again = run_as_service_user(
                    str(SCRIPTS / "lanparty-gateway"), "invite", "--state-dir", str(gateway_state)
                )
                assert again.returncode == 0, again.stderr
                assert again.stdout == f"invite: {printed}\n"
                gateway_state.chmod(0o755)
                refused = run_as_service_user(
                    str(SCRIPTS / "lanparty-gateway"), "invite", "--state-dir", str(gateway_state)
                )
                assert refused.returncode == 2
                assert refused.stdout == ""
                assert f"chmod 700 {gateway_state}" in refused.stderr
                gateway_state.chmod(0o700)

                # SIGTERM: STOPPING=1, exit 0, promiscuity and GRO/LRO as they were.
                assert stop(gateway) == 0, (tmp_path / "gateway.log").read_text()
                wait_for_notification(
                    gateway_sock, "STOPPING=1", gateway, tmp_path / "gateway.log", 5
                )
                assert promiscuity(topo.gateway, "lan0") == 0
                with inside(topo.gateway):
                    assert gro_enabled("lan0")
                    assert lro_enabled("lan0") == lro_before
                assert stop(relay) == 0, (tmp_path / "relay.log").read_text()
                wait_for_notification(relay_sock, "STOPPING=1", relay, tmp_path / "relay.log", 5)
            finally:
                for process in processes:
                    if process.poll() is None:
                        process.kill()
                        process.wait()

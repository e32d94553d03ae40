"""TCP through the whole bridge: client TAP <-> relay <-> gateway <-> LAN switch <-> LAN host.

The LAN host's kernel sends over its veth with the offloads a veth has on
by default: TCP checksums left partial, TSO super-packets of up to 64 KiB.
The gateway's packet socket must complete them (PACKET_VNET_HDR), or the
client's kernel drops every segment from the LAN host and no TCP
connection gets through (ICMP does: its checksum is never offloaded).
8 MiB go each way, compared by SHA-256. Root only; CI runs as root.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.netns.bridge import running_bridge
from tests.netns.test_client_e2e import CLIENT_IP, TAP, ClientProcess, wait_for_ping
from tests.netns.topology import LAN_HOST_IP, run

pytestmark = pytest.mark.netns

PORT = 5001
TRANSFER_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 60

# On the LAN host: take one upload (print its hash), then serve one download.
LAN_HOST = textwrap.dedent(f"""
    import hashlib, os, socket
    server = socket.create_server(("{LAN_HOST_IP}", {PORT}))
    server.settimeout({TIMEOUT_S})
    print("listening", flush=True)
    upload, _ = server.accept()
    upload.settimeout({TIMEOUT_S})
    digest, size = hashlib.sha256(), 0
    while chunk := upload.recv(1 << 16):
        digest.update(chunk)
        size += len(chunk)
    upload.close()
    print("received", size, digest.hexdigest(), flush=True)
    download, _ = server.accept()
    download.settimeout({TIMEOUT_S})
    data = os.urandom({TRANSFER_BYTES})
    download.sendall(data)
    download.close()
    print("sent", len(data), hashlib.sha256(data).hexdigest(), flush=True)
""")

# On the client: one upload (print its hash), then one download.
CLIENT = textwrap.dedent(f"""
    import hashlib, os, socket
    data = os.urandom({TRANSFER_BYTES})
    upload = socket.create_connection(("{LAN_HOST_IP}", {PORT}), timeout={TIMEOUT_S})
    upload.sendall(data)
    upload.shutdown(socket.SHUT_WR)
    assert upload.recv(1) == b""  # the LAN host read everything and closed
    upload.close()
    print("sent", len(data), hashlib.sha256(data).hexdigest(), flush=True)
    download = socket.create_connection(("{LAN_HOST_IP}", {PORT}), timeout={TIMEOUT_S})
    digest, size = hashlib.sha256(), 0
    while chunk := download.recv(1 << 16):
        digest.update(chunk)
        size += len(chunk)
    print("received", size, digest.hexdigest(), flush=True)
""")


def outcome(process: subprocess.Popen[str]) -> dict[str, str]:
    """The ``sent``/``received`` lines a transfer script printed: {kind: "size hash"}."""
    try:
        output, _ = process.communicate(timeout=3 * TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    lines = dict(line.split(" ", 1) for line in output.splitlines() if " " in line)
    assert process.returncode == 0, output
    return lines


@pytest.mark.parametrize("packet_path", ["native", "python"])
def test_8_mib_each_way_between_the_client_and_a_lan_host(tmp_path: Path, packet_path: str) -> None:
    gateway_args = ["--no-native"] if packet_path == "python" else []
    with running_bridge(tmp_path, *gateway_args) as bridge:
        topo = bridge.topo
        client = ClientProcess(bridge, tmp_path)
        lan_host = None
        try:
            client.wait_for_tap()
            run("ip", "-n", topo.client, "addr", "add", f"{CLIENT_IP}/16", "dev", TAP)
            wait_for_ping(topo.client, LAN_HOST_IP)
            lan_host = topo.popen(
                topo.lanhost,
                [sys.executable, "-c", LAN_HOST],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert lan_host.stdout is not None
            assert lan_host.stdout.readline().strip() == "listening"
            sender = topo.popen(
                topo.client,
                [sys.executable, "-c", CLIENT],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            at_client = outcome(sender)
            at_lan_host = outcome(lan_host)
            assert at_client["sent"] == at_lan_host["received"]
            assert at_lan_host["sent"] == at_client["received"]
            assert at_client["sent"].startswith(f"{TRANSFER_BYTES} ")
            assert at_client["received"].startswith(f"{TRANSFER_BYTES} ")
            assert client.stop() == 0, client.log_path.read_text()
        finally:
            client.kill_if_running()
            if lan_host is not None and lan_host.poll() is None:
                lan_host.kill()
                lan_host.wait()

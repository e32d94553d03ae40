"""The gateway end to end: client session <-> relay <-> gateway <-> LAN switch <-> LAN host.

Everything runs in namespaces this module creates (tests/netns/topology.py):
the relay and the gateway as real processes, the test's own endpoint
session (standing in for a client) in the client namespace, raw sockets on
the LAN host. Root only; CI runs as root.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from lanparty.credentials import ClientCredentials
from lanparty.ctrl import RejectCode, Role
from lanparty.endpoint.session import RejectedError, RelayEndpoint, Session, open_session
from lanparty.invite import Invite
from lanparty.proto import parse_mac
from lanparty.transport import SpkiPin
from tests.netns.bridge import Bridge, running_bridge
from tests.netns.lan import (
    BROADCAST,
    arp_reply_from,
    arp_request,
    drain,
    icmp_echo,
    is_echo_reply,
    marked_frame,
    raw_socket,
)
from tests.netns.netns import inside, promiscuity
from tests.netns.topology import LAN_HOST_IP, RELAY_FOR_CLIENT, RELAY_PORT

CLIENT_MAC = parse_mac("02:00:00:00:00:0a")
CLIENT_IP = "198.19.0.100"
pytestmark = pytest.mark.netns


@asynccontextmanager
async def client_session(bridge: Bridge) -> AsyncIterator[Session]:
    """A session from the client namespace with the gateway's invite, once the gateway is in."""
    relay = RelayEndpoint(RELAY_FOR_CLIENT, RELAY_PORT, SpkiPin.parse(bridge.pin))
    invite = Invite.parse(bridge.invite)
    credentials = ClientCredentials(
        room_id=invite.room, client_key=invite.client_key, identity_secret=b"player".ljust(32)
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with inside(bridge.topo.client):
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


async def resolve_lan_host(session: Session) -> bytes:
    session.send_frame(arp_request(CLIENT_MAC, CLIENT_IP, LAN_HOST_IP))
    reply = await receive_matching(session, lambda f: arp_reply_from(f, LAN_HOST_IP) is not None)
    mac = arp_reply_from(reply, LAN_HOST_IP)
    assert mac is not None
    return mac


@pytest.mark.parametrize("packet_path", ["native", "python"])
async def test_arp_ping_and_broadcast_both_ways(tmp_path: Path, packet_path: str) -> None:
    path_args = ["--no-native"] if packet_path == "python" else []
    with running_bridge(tmp_path, "--stats-interval-s", "0.5", *path_args) as bridge:
        with inside(bridge.topo.lanhost):
            lan = raw_socket("eth0")
        try:
            async with client_session(bridge) as session:
                lan_host_mac = await resolve_lan_host(session)
                for sequence in (1, 2, 3):
                    session.send_frame(
                        icmp_echo(CLIENT_MAC, lan_host_mac, CLIENT_IP, LAN_HOST_IP, sequence)
                    )
                    await receive_matching(
                        session, lambda f, s=sequence: is_echo_reply(f, LAN_HOST_IP, s)
                    )
                # Client broadcast reaches the LAN host.
                drain(lan)
                hello_lan = marked_frame(BROADCAST, CLIENT_MAC, b"hello lan")
                session.send_frame(hello_lan)
                with trio.fail_after(10):
                    while hello_lan not in drain(lan):
                        await trio.sleep(0.02)
                # LAN broadcasts reach the client, a full-size one too (in fragments:
                # both packet paths hand the relay frames up to the room's max_frame).
                full_size = marked_frame(BROADCAST, lan_host_mac, b"full size", size=1514)
                hello_client = marked_frame(BROADCAST, lan_host_mac, b"hello client")
                lan.send(full_size)
                lan.send(hello_client)
                with trio.fail_after(10):
                    arrived: list[bytes] = []
                    while full_size not in arrived or hello_client not in arrived:
                        arrived.extend(await session.receive_frames())
                assert session.fragments_received >= 2
                # Nothing the client sent ever came back to it.
                marker = marked_frame(BROADCAST, lan_host_mac, b"marker")
                lan.send(marker)
                with trio.fail_after(10):
                    seen: list[bytes] = []
                    while marker not in seen:
                        seen.extend(await session.receive_frames())
                assert not [f for f in seen if f[6:12] == CLIENT_MAC]
        finally:
            lan.close()


async def test_cam_refresh_keeps_the_client_mac_on_the_gateway_port(tmp_path: Path) -> None:
    ageing_s = 2.0
    with running_bridge(tmp_path, "--cam-refresh-s", "0.5", ageing_s=ageing_s) as bridge:
        with inside(bridge.topo.lanhost):
            lan = raw_socket("eth0", promiscuous=True)
        client_mac = CLIENT_MAC.hex(":")
        try:
            async with client_session(bridge):
                # Several ageing periods with no client traffic at all.
                for _ in range(4):
                    await trio.sleep(ageing_s)
                    assert bridge.topo.bridge_fdb().get(client_mac) == "port-gw"
            with trio.fail_after(ageing_s * 5):
                while client_mac in bridge.topo.bridge_fdb():
                    await trio.sleep(0.2)
            leaked = [f for f in drain(lan) if f[12:14] == b"\x88\xb5"]
            assert leaked == []
        finally:
            lan.close()


async def test_gateway_reconnects_after_a_relay_restart(tmp_path: Path) -> None:
    with running_bridge(tmp_path) as bridge:
        async with client_session(bridge) as session:
            await resolve_lan_host(session)
        bridge.stop_relay()
        bridge.start_relay()
        async with client_session(bridge) as session:
            await resolve_lan_host(session)
        assert bridge.gateway is not None
        assert bridge.gateway.poll() is None
        assert promiscuity(bridge.topo.gateway, "lan0") == 1
        # SIGTERM: a clean exit, and the interface is no longer promiscuous.
        bridge.gateway.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(bridge.gateway.wait, 15) == 0
        assert promiscuity(bridge.topo.gateway, "lan0") == 0

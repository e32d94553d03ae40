"""The relay as a process on loopback, driven through endpoint sessions."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from lanparty.ctrl import (
    Disconnect,
    Hello,
    PeerJoined,
    PeerLeft,
    PeerLeftReason,
    RejectCode,
    Role,
    Stats,
    encode_message,
)
from lanparty.endpoint.session import (
    RejectedError,
    RelayEndpoint,
    Session,
    hello_for,
    open_session,
)
from lanparty.relay.service import Relay, RelayConfig
from lanparty.transport import (
    CLOSE_REFUSED,
    ConnectionClosedError,
    PinnedCertificate,
    ServerIdentity,
    SpkiPin,
    TransportSettings,
    open_connection,
)
from lanparty.transport import client as transport_client
from lanparty.transport.udp import UdpSocket
from tests.integration.relay_harness import (
    BROADCAST,
    RelayProcess,
    client_credentials,
    frame,
    gateway_credentials,
    mac,
    member,
    open_room,
    receive_until,
    relay_process,
    room_id,
)

CLIENT_A, CLIENT_B, CLIENT_C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
GATEWAY = "00:16:3e:00:00:01"
LAN_HOST = "00:16:3e:00:00:99"


@pytest.fixture
def relay(tmp_path: Path) -> RelayProcess:  # type: ignore[misc]
    with relay_process(tmp_path, "--lan-mac-ageing-s", "2") as process:
        yield process


async def test_admission_welcome_and_peer_events(relay: RelayProcess) -> None:
    async with member(relay, GATEWAY, role=Role.GATEWAY) as gateway:
        assert gateway.peers == {}
        assert gateway.mtu == 1500  # a real Ethernet, whatever one datagram carries
        assert gateway.max_frame == 1518
        async with member(relay, CLIENT_A) as client:
            assert [p.mac for p in client.peers.values()] == [GATEWAY]
            joined = await gateway.next_event()
            assert isinstance(joined, PeerJoined)
            assert (joined.peer_id, joined.mac, joined.role) == (
                client.peer_id,
                CLIENT_A,
                Role.CLIENT,
            )
        left = await gateway.next_event()
        assert left == PeerLeft(peer_id=client.peer_id, reason=PeerLeftReason.DISCONNECT)
        assert gateway.peers == {}


@pytest.mark.parametrize(
    ("hello_fields", "code"),
    [
        ({"protocol": 1}, RejectCode.UNSUPPORTED_PROTOCOL),
        ({"protocol": 3}, RejectCode.UNSUPPORTED_PROTOCOL),
        ({"role": "router"}, RejectCode.INVALID_ROLE),
        ({"room": "party"}, RejectCode.INVALID_ROOM),
        ({"mac": "00:11:22:33:44:55"}, RejectCode.INVALID_MAC),  # client MAC must be local
        ({"mac": "03:00:00:00:00:01"}, RejectCode.INVALID_MAC),  # multicast
        ({"client_key": "short"}, RejectCode.MALFORMED),
        ({"max_datagram": True}, RejectCode.MALFORMED),
        ({"room": "a" * 26}, RejectCode.ROOM_NOT_OPEN),
    ],
)
async def test_each_invalid_hello_gets_its_reject(
    relay: RelayProcess, hello_fields: dict[str, object], code: RejectCode
) -> None:
    hello = {"type": "hello", "protocol": 2, "role": "client", "room": room_id(),
             "mac": CLIENT_A, "max_datagram": 1408, "client_key": "A" * 43,
             "client_id": "A" * 43, **hello_fields}  # fmt: skip
    body = json.dumps(hello).encode()
    reject = await _raw_hello(relay, len(body).to_bytes(4, "big") + body)
    assert reject["code"] == code
    assert reject["message"]


async def _raw_hello(relay: RelayProcess, raw: bytes) -> dict[str, object]:
    """Send raw control bytes; return the relay's reject as JSON."""
    async with open_connection(relay.host, relay.port, relay.endpoint.trust) as connection:
        connection.send_raw_control(raw)
        with trio.fail_after(15):
            answer = await connection.receive_control()
            info = await connection.wait_closed()
        assert info.error_code == CLOSE_REFUSED
        return json.loads(encode_message(answer)[4:])  # type: ignore[no-any-return]


async def test_broken_first_frames_are_rejected_as_malformed(relay: RelayProcess) -> None:
    huge_prefix = (2**32 - 1).to_bytes(4, "big")
    not_json = b"\x00\x00\x00\x05{nope"
    not_utf8 = b"\x00\x00\x00\x02\xff\xfe"
    for raw in (huge_prefix, not_json, not_utf8, b"\x00\x00\x00\x00"):
        reject = await _raw_hello(relay, raw)
        assert reject["code"] == RejectCode.MALFORMED
    # Still serving everyone else.
    async with member(relay, GATEWAY, role=Role.GATEWAY), member(relay, CLIENT_A) as client:
        assert client.peer_id > 0


async def expect_reject(
    relay: RelayProcess, mac_text: str, code: RejectCode, **kw: object
) -> RejectedError:
    with pytest.raises(RejectedError) as caught:
        async with member(relay, mac_text, **kw):  # type: ignore[arg-type]
            pytest.fail(f"{mac_text} was admitted")
    assert caught.value.code == code
    assert caught.value.message
    return caught.value


async def test_room_state_refusals(tmp_path: Path) -> None:
    local_gateway = "06:16:3e:00:00:01"  # a gateway MAC a client could also claim
    learned = "02:16:3e:00:00:42"
    with relay_process(
        tmp_path, "--max-clients-per-room", "2", "--max-peers", "5", "--max-rooms", "2"
    ) as relay:
        async with member(relay, local_gateway, role=Role.GATEWAY) as gateway:
            await expect_reject(relay, local_gateway, RejectCode.DUPLICATE_MAC)
            async with member(relay, CLIENT_A) as a:
                refusal = await expect_reject(
                    relay,
                    CLIENT_A,
                    RejectCode.DUPLICATE_MAC,
                    credentials=client_credentials(CLIENT_A, secret=bytes(32)),
                )
                assert refusal.permanent
                # A LAN MAC learned behind the gateway is taken too.
                announce = frame(BROADCAST, mac(learned), b"lan host")
                gateway.send_frame(announce)
                await receive_until(a, announce)
                await expect_reject(relay, learned, RejectCode.DUPLICATE_MAC)
                # The same MAC in another room is fine.
                async with (
                    member(relay, "00:16:3e:00:00:0f", role=Role.GATEWAY, room="other"),
                    member(relay, CLIENT_A, room="other"),
                ):
                    pass
                async with member(relay, CLIENT_B):
                    refusal = await expect_reject(relay, CLIENT_C, RejectCode.ROOM_FULL)
                    assert not refusal.permanent
                    # "other" lives on for its grace period: two rooms, the limit
                    refusal = await expect_reject(
                        relay, "00:16:3e:00:00:0e", RejectCode.RELAY_FULL, role=Role.GATEWAY,
                        room="fourth",
                    )  # fmt: skip
                    assert "2 rooms" in refusal.message


async def test_a_member_with_a_smaller_path_gets_big_frames_in_fragments(
    relay: RelayProcess,
) -> None:
    small = TransportSettings(max_udp_payload_bytes=1200)  # QUIC's smallest packet
    async with (
        member(relay, GATEWAY, role=Role.GATEWAY) as gateway,
        member(relay, CLIENT_B, settings=small) as b,
    ):
        assert b.mtu == 1500
        assert b.connection.max_datagram_payload < 1200
        big = frame(BROADCAST, mac(GATEWAY), bytes(range(256)) * 5 + bytes(200))
        assert len(big) == 1494
        gateway.send_frame(big)
        assert await receive_until(b, big) == [big]
        assert b.fragments_received >= 2
        # and the other way: the player's big frame reaches the gateway whole
        back = frame(BROADCAST, mac(CLIENT_B), bytes(1400))
        b.send_frame(back)
        assert back in await receive_until(gateway, back)
        assert b.fragments_sent >= 2


async def test_hello_timeout(relay: RelayProcess) -> None:
    """A partial hello gets reject(hello_timeout); no stream at all gets a plain close."""

    async def partial() -> None:
        reject = await _raw_hello(relay, b"\x00\x00\x00\x40{")
        assert reject["code"] == RejectCode.HELLO_TIMEOUT

    async def silent() -> None:
        async with open_connection(relay.host, relay.port, relay.endpoint.trust) as connection:
            with trio.fail_after(15):
                info = await connection.wait_closed()
            assert info.by_peer
            assert info.error_code == CLOSE_REFUSED

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial)
        nursery.start_soon(silent)


async def test_forwarding_between_clients_and_gateway(relay: RelayProcess) -> None:
    async with (
        member(relay, GATEWAY, role=Role.GATEWAY) as gateway,
        member(relay, CLIENT_A) as a,
        member(relay, CLIENT_B) as b,
    ):
        # Broadcast and multicast from a client reach everyone else.
        hello_all = frame(BROADCAST, mac(CLIENT_A), b"broadcast")
        group = frame(mac("01:00:5e:00:00:fb"), mac(CLIENT_A), b"multicast")
        a.send_frames([hello_all, group])
        for other in (gateway, b):
            assert await receive_until(other, group) == [hello_all, group]
        # A known client MAC goes to that client only.
        to_b = frame(mac(CLIENT_B), mac(CLIENT_A), b"to b")
        marker = frame(BROADCAST, mac(CLIENT_A), b"marker 1")
        a.send_frames([to_b, marker])
        assert await receive_until(b, marker) == [to_b, marker]
        assert await receive_until(gateway, marker) == [marker]
        # The gateway's LAN host is learned; a client's frame to it goes to the gateway only.
        from_lan = frame(BROADCAST, mac(LAN_HOST), b"from lan")
        gateway.send_frame(from_lan)
        for client in (a, b):
            assert await receive_until(client, from_lan) == [from_lan]
        to_lan = frame(mac(LAN_HOST), mac(CLIENT_A), b"to lan host")
        marker = frame(BROADCAST, mac(CLIENT_A), b"marker 2")
        a.send_frames([to_lan, marker])
        assert await receive_until(gateway, marker) == [to_lan, marker]
        assert await receive_until(b, marker) == [marker]
        # Unknown unicast floods to every other member.
        unknown = frame(mac("02:99:99:99:99:99"), mac(CLIENT_A), b"who?")
        a.send_frame(unknown)
        for other in (gateway, b):
            assert await receive_until(other, unknown) == [unknown]


async def test_learned_lan_macs_age_out(relay: RelayProcess) -> None:
    """With --lan-mac-ageing-s 2, an unseen LAN MAC becomes unknown unicast again."""
    async with (
        member(relay, GATEWAY, role=Role.GATEWAY) as gateway,
        member(relay, CLIENT_A) as a,
        member(relay, CLIENT_B) as b,
    ):
        learned = frame(BROADCAST, mac(LAN_HOST), b"i am here")
        gateway.send_frame(learned)
        await receive_until(b, learned)
        to_lan = frame(mac(LAN_HOST), mac(CLIENT_A), b"known")
        a.send_frame(to_lan)
        await receive_until(gateway, to_lan)
        await trio.sleep(2.5)
        aged = frame(mac(LAN_HOST), mac(CLIENT_A), b"aged out: flooded")
        a.send_frame(aged)
        assert await receive_until(b, aged) == [aged]


async def test_no_reflection_and_spoofed_sources_are_dropped(relay: RelayProcess) -> None:
    await open_room(relay)
    async with member(relay, CLIENT_A) as a, member(relay, CLIENT_B) as b:
        to_self = frame(mac(CLIENT_A), mac(CLIENT_A), b"to myself")
        spoofed = frame(BROADCAST, mac(CLIENT_B), b"pretending to be b")
        marker = frame(BROADCAST, mac(CLIENT_A), b"marker")
        a.send_frames([to_self, spoofed, marker])
        assert await receive_until(b, marker) == [marker]
        assert relay.drops("reflection") == 1
        assert relay.drops("spoofed_source") == 1


async def test_safety_filters_drop_a_clients_dhcp_server_reply(relay: RelayProcess) -> None:
    async with member(relay, GATEWAY, role=Role.GATEWAY) as gateway, member(relay, CLIENT_A) as a:
        ip = (
            bytes.fromhex("45000030000000004011")
            + b"\x00\x00"
            + bytes([198, 18, 0, 2])
            + b"\xff" * 4
        )
        udp = (
            (67).to_bytes(2, "big")
            + (68).to_bytes(2, "big")
            + (28).to_bytes(2, "big")
            + b"\x00\x00"
        )
        dhcp_offer = frame(BROADCAST, mac(CLIENT_A), ip + udp + bytes(20), ethertype=0x0800)
        stp = frame(mac("01:80:c2:00:00:00"), mac(CLIENT_A), b"bpdu")
        marker = frame(BROADCAST, mac(CLIENT_A), b"marker")
        a.send_frames([dhcp_offer, stp, marker])
        assert await receive_until(gateway, marker) == [marker]
        assert relay.drops("dhcp_server") == 1
        assert relay.drops("switch_control") == 1


async def test_peer_left_logs_what_the_member_sent_and_was_sent(tmp_path: Path) -> None:
    log_path = tmp_path / "relay.log"
    with relay_process(tmp_path, "--log-level", "info", log_path=log_path) as relay:
        await open_room(relay)
        async with member(relay, CLIENT_A) as a, member(relay, CLIENT_B) as b:
            to_b = [frame(mac(CLIENT_B), mac(CLIENT_A), bytes([n]) * 60) for n in range(3)]
            a.send_frames(to_b)
            assert await receive_until(b, to_b[-1]) == to_b
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    mac_of = {e["peer_id"]: e["mac"] for e in events if e["event"] == "peer_joined"}
    left = {mac_of[e["peer_id"]]: e for e in events if e["event"] == "peer_left"}
    sender, receiver = left[CLIENT_A], left[CLIENT_B]
    assert (sender["rx_frames"], sender["tx_frames"]) == (3, 0)
    assert (receiver["rx_frames"], receiver["tx_frames"]) == (0, 3)
    assert receiver["tx_bytes"] == sender["rx_bytes"] > sum(len(f) for f in to_b)


async def test_client_broadcast_rate_limit(tmp_path: Path) -> None:
    with relay_process(
        tmp_path, "--client-broadcast-pps", "10", "--client-broadcast-burst", "20"
    ) as relay:
        await open_room(relay)
        async with member(relay, CLIENT_A) as a, member(relay, CLIENT_B) as b:
            burst = [frame(BROADCAST, mac(CLIENT_A), n.to_bytes(4, "big")) for n in range(200)]
            a.send_frames(burst)
            marker = frame(mac(CLIENT_B), mac(CLIENT_A), b"unicast still passes")
            a.send_frame(marker)
            received = await receive_until(b, marker)
            broadcasts = [f for f in received if f != marker]
            # At least the burst allowance passes; the rest of the 200 (all but what
            # refilled while the burst was in flight) is dropped and counted.
            assert 20 <= len(broadcasts) < 200
            assert relay.drops("rate_limited_broadcast") == 200 - len(broadcasts)


async def test_malformed_threshold_disconnects_only_the_offender(tmp_path: Path) -> None:
    with relay_process(tmp_path, "--malformed-limit", "20") as relay:
        await open_room(relay)
        async with member(relay, CLIENT_A) as good, member(relay, CLIENT_B) as bad:
            joined = await good.next_event()
            assert isinstance(joined, PeerJoined)
            bad.connection.send_datagrams([b"\x99garbage" for _ in range(30)])
            with trio.fail_after(10):
                assert await bad.next_event() == Disconnect(reason="malformed datagrams")
                info = await bad.connection.wait_closed()
            assert info.error_code == CLOSE_REFUSED
            with trio.fail_after(10):
                left = await good.next_event()
            assert left == PeerLeft(peer_id=bad.peer_id, reason=PeerLeftReason.MALFORMED)
            async with member(relay, CLIENT_C) as c:
                hello = frame(BROADCAST, mac(CLIENT_C), b"still working")
                c.send_frame(hello)
                assert await receive_until(good, hello) == [hello]


async def test_a_gateway_leaving_keeps_its_players_for_the_grace_period(
    relay: RelayProcess,
) -> None:
    learned = "02:16:3e:00:00:77"
    gateway_leaves = trio.Event()

    async def gateway_session(*, task_status: trio.TaskStatus[Session]) -> None:
        async with member(relay, GATEWAY, role=Role.GATEWAY) as gateway:
            task_status.started(gateway)
            await gateway_leaves.wait()

    async with trio.open_nursery() as nursery:
        gateway = await nursery.start(gateway_session)
        async with member(relay, CLIENT_A) as a, member(relay, CLIENT_B) as b:
            announce = frame(BROADCAST, mac(learned), b"lan host")
            gateway.send_frame(announce)
            await receive_until(a, announce)
            gateway_leaves.set()
            with trio.fail_after(10):
                while not isinstance(event := await a.next_event(), PeerLeft):
                    pass
            assert event.peer_id == gateway.peer_id
            # The players stay; what they send to the LAN has nowhere to go.
            to_lan = frame(mac(LAN_HOST), mac(CLIENT_A), b"to nobody")
            marker = frame(mac(CLIENT_B), mac(CLIENT_A), b"between players")
            a.send_frames([to_lan, marker])
            assert to_lan not in await receive_until(b, marker)
            assert relay.drops("no_gateway") == 1
            # A MAC learned in the room's life is never a client's.
            await expect_reject(relay, learned, RejectCode.DUPLICATE_MAC)
            # The gateway comes back: the players reach the LAN again.
            async with member(relay, GATEWAY, role=Role.GATEWAY) as back:
                to_gateway = frame(mac(GATEWAY), mac(CLIENT_A), b"welcome back")
                a.send_frame(to_gateway)
                assert await receive_until(back, to_gateway) == [to_gateway]


async def test_stats_arrive_every_five_seconds(relay: RelayProcess) -> None:
    await open_room(relay)
    async with member(relay, CLIENT_A) as a, member(relay, CLIENT_B):
        a.send_frames([frame(BROADCAST, mac(CLIENT_A), b"x")] * 3)
        with trio.fail_after(12):
            while not isinstance(event := await a.next_event(), Stats):
                pass
        assert event.rx_frames == 3
        assert event.rx_bytes == 3 * 61


async def test_garbage_udp_does_not_disturb_the_relay(relay: RelayProcess) -> None:
    await open_room(relay)
    async with member(relay, CLIENT_A) as a, member(relay, CLIENT_B) as b:
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
            for payload in (b"", b"\x00" * 1300, b"\xc3" + bytes(1299), b"\x41" * 40):
                await junk.sendto(payload, (relay.host, relay.port))
        hello = frame(BROADCAST, mac(CLIENT_A), b"still here")
        a.send_frame(hello)
        assert await receive_until(b, hello) == [hello]


async def test_second_hello_closes_with_protocol_error(relay: RelayProcess) -> None:
    await open_room(relay)
    async with member(relay, CLIENT_A) as a:
        a.connection.send_control(
            Hello(
                role=Role.CLIENT,
                room=room_id(),
                mac=CLIENT_A,
                max_datagram=1408,
                client_key=bytes(32),
                client_id=bytes(32),
            )
        )
        with trio.fail_after(10):
            info = await a.connection.wait_closed()
        assert info.error_code == 2


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
async def test_shutdown_tells_every_peer_and_exits_zero(tmp_path: Path, signal_number: int) -> None:
    with relay_process(tmp_path) as relay:
        async with member(relay, GATEWAY, role=Role.GATEWAY) as g, member(relay, CLIENT_A) as a:
            assert relay.metrics()["lanparty_peers"] == 2
            assert relay.metrics()["lanparty_rooms"] == 1
            await trio.to_thread.run_sync(relay.process.send_signal, signal_number)
            for session in (a, g):
                with trio.fail_after(10):
                    while not isinstance(event := await session.next_event(), Disconnect):
                        pass
                assert event.reason == "relay shutting down"
                with pytest.raises(ConnectionClosedError):
                    await session.next_event()
            assert await trio.to_thread.run_sync(relay.process.wait, 15) == 0


async def test_endpoints_can_pin_the_certificate_file_the_relay_writes(tmp_path: Path) -> None:
    der = tmp_path / "relay.der"
    with relay_process(tmp_path / "state", "--dev-cert-der-out", str(der)) as relay:
        pinned = RelayEndpoint(relay.host, relay.port, PinnedCertificate.from_file(der))
        async with open_session(
            pinned, credentials=gateway_credentials(), mac=mac(GATEWAY)
        ) as session:
            assert session.peer_id == 1
    # A restarted relay keeps its key, so the pin printed before still holds.
    with relay_process(tmp_path / "state") as restarted:
        assert restarted.pin == relay.pin


def test_unusable_settings_and_busy_ports_are_clear_errors(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "lanparty.relay", "--state-dir", str(tmp_path), "--mtu", "100"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--mtu" in bad.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, "-m", "lanparty.relay", "--state-dir", str(tmp_path),
             "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert busy.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr


async def test_frames_before_the_welcome_are_dropped_not_kept(relay: RelayProcess) -> None:
    async with open_connection(relay.host, relay.port, relay.endpoint.trust) as connection:
        early = b"\x10" + frame(BROADCAST, mac(CLIENT_A), b"too early")
        assert connection.send_datagrams([early] * 50) == 50
        with trio.fail_after(10):
            while relay.drops("not_established") < 50:
                await trio.sleep(0.05)
    # A peer admitted afterwards sees none of them.
    await open_room(relay)
    async with member(relay, CLIENT_A) as a, member(relay, CLIENT_B) as b:
        marker = frame(BROADCAST, mac(CLIENT_A), b"marker")
        a.send_frame(marker)
        assert await receive_until(b, marker) == [marker]


async def test_metrics_given_a_port_alone_listen_on_loopback_only(tmp_path: Path) -> None:
    with relay_process(tmp_path, "--metrics", "0") as relay:
        assert relay.metrics_url is not None
        assert relay.metrics_url.startswith("http://127.0.0.1:")
        assert relay.metrics()["lanparty_peers"] == 0


async def test_a_huge_non_ascii_type_still_gets_a_reject(relay: RelayProcess) -> None:
    body = json.dumps({"type": "é" * 20_000}).encode()
    assert len(body) > 60_000
    reject = await _raw_hello(relay, len(body).to_bytes(4, "big") + body)
    assert reject["code"] == RejectCode.MALFORMED
    assert len(str(reject["message"])) < 300


async def test_connections_that_never_say_hello_are_capped_per_source(tmp_path: Path) -> None:
    with relay_process(tmp_path, "--max-pending-hellos-per-source", "2") as relay:
        async with contextlib.AsyncExitStack() as stack:
            silent = [
                await stack.enter_async_context(
                    open_connection(relay.host, relay.port, relay.endpoint.trust)
                )
                for _ in range(3)
            ]
            # the third waiting connection from this address is closed at once
            with trio.fail_after(10):
                info = await silent[2].wait_closed()
            assert info.error_code == CLOSE_REFUSED
            assert not silent[0].is_closed
            # once they go, hellos are welcome again
            for connection in silent[:2]:
                connection.close()
            await trio.sleep(0.2)
            async with member(relay, GATEWAY, role=Role.GATEWAY):
                pass


async def test_a_full_pending_hello_table_gives_a_newcomer_the_greediest_source_s_oldest_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = {"host": "127.0.0.2"}

    class SourceBound(UdpSocket):
        @classmethod
        def bind(cls, host: str, port: int, *, batch_io: bool = True) -> UdpSocket:
            return UdpSocket.bind(source["host"], port, batch_io=batch_io)

    monkeypatch.setattr(transport_client, "UdpSocket", SourceBound)
    with relay_process(tmp_path, "--max-pending-hellos", "2") as relay:
        async with contextlib.AsyncExitStack() as stack:
            silent = [
                await stack.enter_async_context(
                    open_connection(relay.host, relay.port, relay.endpoint.trust)
                )
                for _ in range(2)
            ]
            await trio.sleep(0.2)  # both hold a slot: the table is full
            source["host"] = "127.0.0.3"
            async with member(relay, GATEWAY, role=Role.GATEWAY):
                pass
            with trio.fail_after(10):
                info = await silent[0].wait_closed()
            assert info.error_code == CLOSE_REFUSED
            assert not silent[1].is_closed
            # full again, one slot each: a source holding as many as any cannot take one
            await stack.enter_async_context(
                open_connection(relay.host, relay.port, relay.endpoint.trust)
            )
            await trio.sleep(0.2)
            source["host"] = "127.0.0.2"
            async with open_connection(relay.host, relay.port, relay.endpoint.trust) as third:
                with trio.fail_after(10):
                    assert (await third.wait_closed()).error_code == CLOSE_REFUSED


async def test_one_address_opens_a_bounded_number_of_rooms(tmp_path: Path) -> None:
    with relay_process(tmp_path, "--max-rooms-per-source", "2") as relay:
        async with (
            member(relay, "00:16:3e:00:00:a1", role=Role.GATEWAY, room="one"),
            member(relay, "00:16:3e:00:00:a2", role=Role.GATEWAY, room="two"),
        ):
            refusal = await expect_reject(
                relay, "00:16:3e:00:00:a3", RejectCode.RELAY_FULL, role=Role.GATEWAY, room="three"
            )
            assert "this address" in refusal.message
            # its own rooms' gateways may still come back
            async with member(relay, "00:16:3e:00:00:a1", role=Role.GATEWAY, room="one"):
                pass


async def test_metrics_count_what_the_endpoint_kept_from_any_connection(tmp_path: Path) -> None:
    with relay_process(tmp_path, "--retry", "always") as relay:
        async with member(relay, GATEWAY, role=Role.GATEWAY):
            pass
        samples = relay.metrics()
        assert samples['lanparty_transport_events_total{kind="retries_sent"}'] >= 1


async def test_a_hello_sent_with_fin_leaves_no_member_behind(dev_identity: ServerIdentity) -> None:
    # The connection is closed by the time the hello is read; a member admitted
    # then could never be served, and stayed in its room for good (its seat, and
    # the room with it, counted against the relay's limits).
    relay = Relay(RelayConfig(host="127.0.0.1", port=0, identity=dev_identity))
    async with trio.open_nursery() as nursery:
        server = await nursery.start(relay.serve)
        host, port = server.address[:2]
        for index in range(3):
            async with open_connection(host, port, SpkiPin.parse(dev_identity.spki_pin)) as c:
                hello = hello_for(
                    gateway_credentials(f"fin{index}"),
                    mac=f"00:16:3e:00:01:{index:02x}",
                    max_datagram=1400,
                    software="test",
                )
                c._engine.send_stream_data(0, encode_message(hello), True)
                c.flush()
                with trio.fail_after(10):
                    await c.wait_closed()
        with trio.fail_after(10):
            while server.connections:
                await trio.sleep(0.01)
        members = [m for room in relay.switch.rooms.values() for m in room.members.values()]
        nursery.cancel_scope.cancel()
    assert members == []

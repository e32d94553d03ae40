"""Invite-only rooms (PROTOCOL.md 10) against a relay process: who gets in, who is replaced.

A stranger here knows the room's label, the relay's address and its pin
(everything the relay prints), but not the gateway's keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import attrs
import pytest
import trio

from lanparty.credentials import GatewayCredentials, b64url, sha256_hex
from lanparty.ctrl import (
    Disconnect,
    PeerJoined,
    PeerLeft,
    Reject,
    RejectCode,
    Role,
    Stats,
    Welcome,
)
from lanparty.endpoint.session import RejectedError, Session, hello_for
from lanparty.transport import CLOSE_REFUSED, Connection, TransportSettings, open_connection
from tests.integration.relay_harness import (
    BROADCAST,
    RelayProcess,
    client_credentials,
    frame,
    gateway_credentials,
    mac,
    member,
    receive_until,
    relay_process,
    room_id,
)

GATEWAY = "00:16:3e:00:00:01"
STRANGER_GATEWAY = "00:16:3e:00:00:66"
ALICE, BOB, MALLORY = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:66"
STRANGER = GatewayCredentials(
    gateway_key=hashlib.sha256(b"the stranger's own gateway key").digest(),
    client_key=hashlib.sha256(b"the stranger's own client key").digest(),
    room_name="party",  # the same label as the real room
)


@pytest.fixture
def relay(tmp_path: Path) -> RelayProcess:  # type: ignore[misc]
    with relay_process(tmp_path) as process:
        yield process


async def refused(relay: RelayProcess, mac_text: str, **kw: object) -> RejectedError:
    with pytest.raises(RejectedError) as caught:
        async with member(relay, mac_text, **kw):  # type: ignore[arg-type]
            pytest.fail(f"{mac_text} was admitted")
    return caught.value


async def next_of(session: Session, kind: type) -> object:
    with trio.fail_after(10):
        while not isinstance(event := await session.next_event(), kind):
            pass
    return event


@pytest.mark.parametrize("stranger_first", [True, False])
async def test_a_stranger_gateway_never_gets_the_real_room(
    relay: RelayProcess, stranger_first: bool
) -> None:
    async def stranger_tries(*, task_status: trio.TaskStatus[Session]) -> None:
        # it can open a room of its own (the same label), never the real one
        async with member(relay, STRANGER_GATEWAY, credentials=STRANGER) as stranger:
            assert stranger.room != room_id()
            task_status.started(stranger)
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        if stranger_first:
            stranger = await nursery.start(stranger_tries)
        async with member(relay, GATEWAY, role=Role.GATEWAY) as real:
            if not stranger_first:
                stranger = await nursery.start(stranger_tries)
            # claiming the real room id without its key
            squat = GatewayCredentials(
                gateway_key=STRANGER.gateway_key, client_key=STRANGER.client_key
            )
            async with open_connection(relay.host, relay.port, relay.endpoint.trust) as connection:
                hello = hello_for(squat, mac=STRANGER_GATEWAY, max_datagram=1400, software="x")
                connection.send_control(attrs.evolve(hello, room=room_id()))
                with pytest.raises(RejectedError) as caught:
                    await _answer(connection)
            assert caught.value.code == RejectCode.NOT_AUTHORIZED
            async with member(relay, ALICE) as alice:
                assert alice.room == room_id()
                assert [p.mac for p in alice.peers.values()] == [GATEWAY]
                from_real = frame(BROADCAST, mac(GATEWAY), b"the real LAN")
                from_stranger = frame(BROADCAST, mac(STRANGER_GATEWAY), b"the stranger's LAN")
                stranger.send_frame(from_stranger)
                real.send_frame(from_real)
                assert await receive_until(alice, from_real) == [from_real]
        nursery.cancel_scope.cancel()


async def _answer(connection: Connection) -> None:
    with trio.fail_after(10):
        answer = await connection.receive_control()
    if isinstance(answer, Reject):
        raise RejectedError(answer.code, answer.message)
    pytest.fail(f"admitted: {answer}")


async def test_a_tampered_key_is_not_authorized_and_names_nothing(relay: RelayProcess) -> None:
    async with member(relay, GATEWAY, role=Role.GATEWAY), member(relay, ALICE):
        wrong = client_credentials(MALLORY, client_key=bytes(32))
        messages = set()
        for mac_text in (MALLORY, ALICE):  # a free MAC, and one in use
            refusal = await refused(relay, mac_text, credentials=wrong)
            assert refusal.code == RejectCode.NOT_AUTHORIZED
            assert refusal.permanent
            messages.add(refusal.message)
        # with a too-small max_datagram too
        async with open_connection(relay.host, relay.port, relay.endpoint.trust) as connection:
            connection.send_control(
                hello_for(wrong, mac=MALLORY, max_datagram=100, software="mallory")
            )
            with pytest.raises(RejectedError) as caught:
                await _answer(connection)
            assert caught.value.code == RejectCode.NOT_AUTHORIZED
            messages.add(caught.value.message)
    assert len(messages) == 1
    (message,) = messages
    for room_fact in ("'party'", room_id(), "1389", ALICE, GATEWAY):
        assert room_fact not in message


async def test_a_room_no_gateway_opened_is_not_open(relay: RelayProcess) -> None:
    refusal = await refused(relay, ALICE)
    assert refusal.code == RejectCode.ROOM_NOT_OPEN
    assert not refusal.permanent


async def test_a_client_that_comes_back_replaces_its_stale_session(relay: RelayProcess) -> None:
    async with member(relay, GATEWAY, role=Role.GATEWAY) as gateway:
        # a session whose process died: its connection is still open at the relay
        async with open_connection(relay.host, relay.port, relay.endpoint.trust) as stale:
            stale.send_control(
                hello_for(client_credentials(ALICE), mac=ALICE, max_datagram=1408, software="x")
            )
            with trio.fail_after(10):
                await stale.receive_control()  # welcome
            async with member(relay, ALICE) as again:
                assert again.peers.keys() == {gateway.peer_id}
                with trio.fail_after(10):
                    assert await stale.receive_control() == Disconnect(reason="replaced")
                hello = frame(BROADCAST, mac(ALICE), b"back at once")
                again.send_frame(hello)
                assert hello in await receive_until(gateway, hello)
        # another identity may not take that MAC, for the room's whole life
        impostor = client_credentials(ALICE, secret=b"i" * 32)
        refusal = await refused(relay, ALICE, credentials=impostor)
        assert refusal.code == RejectCode.DUPLICATE_MAC


async def test_a_gateway_that_comes_back_keeps_its_players(relay: RelayProcess) -> None:
    async with (
        member(relay, GATEWAY, role=Role.GATEWAY) as old,
        member(relay, ALICE) as alice,
        member(relay, GATEWAY, role=Role.GATEWAY) as new,
    ):
        assert await next_of(old, Disconnect) == Disconnect(reason="replaced")
        left = await next_of(alice, PeerLeft)
        assert left.peer_id == old.peer_id  # type: ignore[attr-defined]
        joined = await next_of(alice, PeerJoined)
        assert joined.peer_id == new.peer_id  # type: ignore[attr-defined]
        to_lan = frame(mac(GATEWAY), mac(ALICE), b"resumed")
        alice.send_frame(to_lan)
        assert to_lan in await receive_until(new, to_lan)


async def test_a_rotated_invite_disconnects_the_old_key_and_admits_the_new(
    relay: RelayProcess,
) -> None:
    new_key = hashlib.sha256(b"the new invite").digest()
    async with member(relay, GATEWAY, role=Role.GATEWAY), member(relay, ALICE) as alice:
        rotated = gateway_credentials(client_key=new_key)
        async with member(relay, GATEWAY, credentials=rotated):
            with trio.fail_after(10):
                assert await next_of(alice, Disconnect) == Disconnect(reason="key_rotated")
            refusal = await refused(relay, BOB)
            assert refusal.code == RejectCode.NOT_AUTHORIZED
            async with member(relay, BOB, credentials=client_credentials(BOB, client_key=new_key)):
                pass


async def test_operator_tokens_decide_which_gateways_open_rooms(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# allowed gateways\n{sha256_hex(b'let-me-in')}\n")
    with relay_process(tmp_path / "state", "--gateway-tokens", str(tokens)) as relay:
        assert any("operator tokens" in line for line in relay.output)
        refusal = await refused(relay, GATEWAY, role=Role.GATEWAY)
        assert refusal.code == RejectCode.NOT_AUTHORIZED
        with_token = GatewayCredentials(
            gateway_key=gateway_credentials().gateway_key,
            client_key=gateway_credentials().client_key,
            operator_token="let-me-in",
        )
        async with member(relay, GATEWAY, credentials=with_token), member(relay, ALICE):
            pass


async def test_a_version_1_endpoint_is_told_to_update(relay: RelayProcess) -> None:
    hello = {"type": "hello", "protocol": 1, "role": "gateway", "room": "party",
             "mac": GATEWAY, "max_datagram": 1408}  # fmt: skip
    body = json.dumps(hello).encode()
    async with open_connection(relay.host, relay.port, relay.endpoint.trust) as connection:
        connection.send_raw_control(len(body).to_bytes(4, "big") + body)
        with trio.fail_after(10):
            answer = await connection.receive_control()
            info = await connection.wait_closed()
    assert isinstance(answer, Reject)
    assert answer.code is RejectCode.UNSUPPORTED_PROTOCOL
    assert "protocol 2" in answer.message
    assert info.error_code == CLOSE_REFUSED


async def test_keys_never_reach_the_relay_s_log_or_stats(tmp_path: Path) -> None:
    log_path = tmp_path / "relay.log"
    gateway = gateway_credentials()
    alice = client_credentials(ALICE)
    with relay_process(tmp_path / "state", "--log-level", "debug", log_path=log_path) as relay:
        async with member(relay, GATEWAY, role=Role.GATEWAY), member(relay, ALICE) as session:
            await refused(relay, BOB, credentials=client_credentials(BOB, client_key=bytes(32)))
            stats = json.dumps(attrs.asdict(await next_of(session, Stats)))  # type: ignore[arg-type]
        metrics = json.dumps(relay.metrics())
    secrets = [gateway.gateway_key, gateway.client_key, alice.identity_secret, bytes(32)]
    text = log_path.read_text()
    assert "peer_joined" in text  # the log is there, with debug detail
    for secret in secrets:
        for shown in (b64url(secret), secret.hex(), repr(secret)):
            assert shown not in text
            assert shown not in metrics
            assert shown not in stats


async def test_a_declared_max_datagram_beyond_the_connection_buys_nothing(
    relay: RelayProcess,
) -> None:
    small = TransportSettings(max_udp_payload_bytes=1200)
    async with (
        member(relay, GATEWAY, role=Role.GATEWAY) as gateway,
        open_connection(relay.host, relay.port, relay.endpoint.trust, settings=small) as connection,
    ):
        # it claims 65535, its connection carries far less
        connection.send_control(
            hello_for(client_credentials(ALICE), mac=ALICE, max_datagram=65535, software="x")
        )
        with trio.fail_after(10):
            welcome = await connection.receive_control()
        assert isinstance(welcome, Welcome)
        big = frame(BROADCAST, mac(GATEWAY), bytes(1400))
        gateway.send_frame(big)
        # the relay sent it fragments its connection can carry, not one datagram it cannot
        with trio.fail_after(10):
            received = await connection.receive_datagrams()
        assert all(len(d) <= connection.max_datagram_payload for d in received)
        assert {d[0] for d in received} == {0x11}

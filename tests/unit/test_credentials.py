"""Room ids, client ids and keys (PROTOCOL.md 10): derivations pinned to known values."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from lanparty.credentials import (
    ClientCredentials,
    GatewayCredentials,
    b64url,
    client_id_for,
    is_room_id,
    is_room_name,
    keys_match,
    new_key,
    parse_key,
    room_id_bytes,
    room_id_for,
    sha256_hex,
)

KEY = bytes(range(32))


def test_the_room_id_is_the_contract_s_derivation() -> None:
    digest = hashlib.sha256(b"lanparty room id v2" + KEY).digest()[:16]
    expected = base64.b32encode(digest).decode().rstrip("=").lower()
    assert room_id_for(KEY) == expected
    assert len(expected) == 26
    assert is_room_id(expected)
    assert room_id_bytes(expected) == digest


def test_the_client_id_is_per_room_and_unlinkable() -> None:
    room_a, room_b = room_id_for(KEY), room_id_for(bytes(32))
    expected = hashlib.sha256(KEY + room_id_bytes(room_a)).digest()
    assert client_id_for(KEY, room_a) == expected
    assert client_id_for(KEY, room_a) != client_id_for(KEY, room_b)


@given(st.binary(min_size=32, max_size=32))
def test_keys_round_trip_through_base64url(key: bytes) -> None:
    text = b64url(key)
    assert len(text) == 43
    assert "=" not in text
    assert parse_key(text) == key


@given(st.text(max_size=60))
def test_any_text_is_a_key_or_none(text: str) -> None:
    key = parse_key(text)
    assert key is None or (len(key) == 32 and b64url(key) == text)


def test_fresh_keys_differ() -> None:
    assert len({new_key() for _ in range(8)}) == 8


def test_key_hashes_compare() -> None:
    assert keys_match(sha256_hex(KEY), sha256_hex(KEY))
    assert not keys_match(sha256_hex(KEY), sha256_hex(bytes(32)))


def test_room_names_are_labels() -> None:
    assert is_room_name("Bob s LAN-2_x")
    for bad in ("", "x" * 33, "tab\there", "é", "a/b"):
        assert not is_room_name(bad)


def test_credentials_hide_their_keys() -> None:
    gateway = GatewayCredentials(gateway_key=KEY, client_key=KEY, operator_token="secret-token")
    client = ClientCredentials(room_id=gateway.room_id, client_key=KEY, identity_secret=KEY)
    for shown in (repr(gateway), repr(client)):
        assert repr(KEY) not in shown
        assert b64url(KEY) not in shown
        assert "secret-token" not in shown
    assert gateway.client_key_sha256 == sha256_hex(KEY)
    assert client.client_id == client_id_for(KEY, gateway.room_id)

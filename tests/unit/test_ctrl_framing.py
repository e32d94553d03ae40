"""Length-prefixed framing and the incremental control decoder."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.ctrl import (
    MAX_MESSAGE_BYTES,
    ControlDecoder,
    ControlProtocolError,
    DecoderFailedError,
    Disconnect,
    FramingError,
    Hello,
    HelloRejectedError,
    InvalidJsonError,
    Message,
    MessageLengthError,
    MessageTooLargeError,
    MissingTypeError,
    NotAnObjectError,
    NotUtf8Error,
    PeerLeft,
    PeerLeftReason,
    Received,
    RejectCode,
    Role,
    Side,
    Stats,
    UnknownMessage,
    UnknownTypeError,
    Welcome,
    encode_message,
)
from tests.unit.test_ctrl_messages import endpoint_messages, relay_messages

ROOM_ID = "abcdefghijklmnopqrstuvwxyz"
WELCOME = Welcome(peer_id=1, room=ROOM_ID, mtu=1400, max_frame=1418, software="relay")
HELLO = Hello(
    role=Role.CLIENT,
    room=ROOM_ID,
    mac="02:00:00:00:00:01",
    max_datagram=1200,
    client_key=bytes(32),
    client_id=bytes(range(32)),
)
STATS = Stats(rx_frames=3, rx_bytes=180, tx_frames=4, tx_bytes=240, drops={"jumbo": 1})
PEER_LEFT = PeerLeft(peer_id=2, reason=PeerLeftReason.TIMEOUT)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def json_frame(value: object) -> bytes:
    return frame(json.dumps(value).encode())


def decode_all(side: Side, chunks: list[bytes]) -> list[Received]:
    decoder = ControlDecoder(side)
    received: list[Received] = []
    for chunk in chunks:
        received += decoder.feed(chunk)
    assert decoder.buffered_bytes == 0
    return received


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(points)]


# --- encoding -------------------------------------------------------------------------------


def test_a_frame_is_a_big_endian_length_then_compact_json() -> None:
    data = encode_message(PEER_LEFT)
    body = b'{"type":"peer_left","peer_id":2,"reason":"timeout"}'
    assert data == len(body).to_bytes(4, "big") + body


def test_a_message_over_65536_bytes_cannot_be_encoded() -> None:
    with pytest.raises(MessageTooLargeError):
        encode_message(Disconnect(reason="x" * MAX_MESSAGE_BYTES))


def test_non_ascii_text_is_valid_utf8_json_on_the_wire() -> None:
    data = encode_message(Disconnect(reason="Tschüss 👋"))
    assert json.loads(data[4:].decode("utf-8"))["reason"] == "Tschüss 👋"


# --- decoding valid streams -----------------------------------------------------------------


@given(st.lists(relay_messages, min_size=1, max_size=5))
def test_relay_messages_round_trip_through_the_endpoint_decoder(sent: list[Message]) -> None:
    assert decode_all(Side.ENDPOINT, [b"".join(encode_message(m) for m in sent)]) == sent


@given(st.lists(endpoint_messages, min_size=1, max_size=5))
def test_endpoint_messages_round_trip_through_the_relay_decoder(sent: list[Message]) -> None:
    assert decode_all(Side.RELAY, [b"".join(encode_message(m) for m in sent)]) == sent


@given(
    st.lists(relay_messages, min_size=1, max_size=4).flatmap(
        lambda sent: st.tuples(
            st.just(sent),
            st.lists(st.integers(0, sum(len(encode_message(m)) for m in sent)), max_size=12),
        )
    )
)
def test_any_split_of_a_valid_stream_yields_the_same_messages(
    sent_and_cuts: tuple[list[Message], list[int]],
) -> None:
    sent, cuts = sent_and_cuts
    stream = b"".join(encode_message(m) for m in sent)
    assert decode_all(Side.ENDPOINT, split_at(stream, cuts)) == sent


def test_splitting_at_every_position_yields_the_same_messages() -> None:
    sent: list[Message] = [WELCOME, STATS, PEER_LEFT]
    stream = b"".join(encode_message(m) for m in sent)
    for cut in range(len(stream) + 1):
        assert decode_all(Side.ENDPOINT, [stream[:cut], stream[cut:]]) == sent
    assert decode_all(Side.ENDPOINT, [bytes([byte]) for byte in stream]) == sent


def test_partial_frames_are_held_until_complete() -> None:
    decoder = ControlDecoder(Side.ENDPOINT)
    data = encode_message(WELCOME)
    assert decoder.feed(data[:2]) == []
    assert decoder.feed(data[2:-1]) == []
    assert decoder.buffered_bytes == len(data) - 1
    assert decoder.feed(data[-1:]) == [WELCOME]
    assert decoder.buffered_bytes == 0


def test_a_largest_frame_is_accepted_and_buffering_stays_bounded() -> None:
    prefix = b'{"type":"disconnect","reason":"'
    body = prefix + b"x" * (MAX_MESSAGE_BYTES - len(prefix) - 2) + b'"}'
    assert len(body) == MAX_MESSAGE_BYTES
    decoder = ControlDecoder(Side.RELAY)
    data = frame(body) + encode_message(HELLO)
    received = decoder.feed(data[: MAX_MESSAGE_BYTES + 3])
    assert received == []
    assert decoder.buffered_bytes == MAX_MESSAGE_BYTES + 3
    received = decoder.feed(data[MAX_MESSAGE_BYTES + 3 :])
    assert received == [Disconnect(reason="x" * (MAX_MESSAGE_BYTES - len(prefix) - 2)), HELLO]


def test_first_message_seen_is_tracked() -> None:
    decoder = ControlDecoder(Side.ENDPOINT)
    assert not decoder.first_message_seen
    decoder.feed(encode_message(WELCOME))
    assert decoder.first_message_seen


# --- unknown types --------------------------------------------------------------------------


def test_an_unknown_type_after_the_first_message_is_yielded_to_be_ignored() -> None:
    decoder = ControlDecoder(Side.ENDPOINT)
    received = decoder.feed(
        encode_message(WELCOME)
        + json_frame({"type": "chat", "text": "hi"})
        + json_frame({"type": "hello"})
        + encode_message(STATS)
    )
    assert received == [WELCOME, UnknownMessage(type="chat"), UnknownMessage(type="hello"), STATS]


def test_an_unknown_type_after_hello_is_tolerated_at_the_relay() -> None:
    received = decode_all(Side.RELAY, [encode_message(HELLO) + json_frame({"type": "ping"})])
    assert received == [HELLO, UnknownMessage(type="ping")]


@pytest.mark.parametrize(
    ("side", "first"),
    [
        (Side.ENDPOINT, {"type": "chat"}),
        (Side.ENDPOINT, {"type": "hello"}),  # a real type, but not one the relay sends
        (Side.RELAY, {"type": "welcome"}),
        (Side.RELAY, {"type": "HELLO"}),
    ],
)
def test_an_unknown_type_in_the_first_message_is_an_error(side: Side, first: object) -> None:
    with pytest.raises(UnknownTypeError) as caught:
        ControlDecoder(side).feed(json_frame(first))
    assert caught.value.reject_code is RejectCode.MALFORMED


def test_a_missing_type_stays_an_error_after_the_first_message() -> None:
    decoder = ControlDecoder(Side.ENDPOINT)
    decoder.feed(encode_message(WELCOME))
    with pytest.raises(MissingTypeError):
        decoder.feed(json_frame({"kind": "stats"}))


def test_a_relay_side_hello_breaking_a_rule_raises_its_reject_code() -> None:
    with pytest.raises(HelloRejectedError) as caught:
        ControlDecoder(Side.RELAY).feed(
            json_frame(
                {
                    "type": "hello",
                    "protocol": 2,
                    "role": "client",
                    "room": "den",
                    "mac": "02:00:00:00:00:01",
                    "max_datagram": 500,
                    "client_key": "A" * 43,
                    "client_id": "A" * 43,
                }
            )
        )
    assert caught.value.reject_code is RejectCode.INVALID_ROOM


# --- framing errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x00\x00\x00\x00", MessageLengthError),
        ((MAX_MESSAGE_BYTES + 1).to_bytes(4, "big") + b"{}", MessageLengthError),
        (frame(b'{"type":"welcome","room":"\xff"}'), NotUtf8Error),
        (frame(b'{"type":"welcome","room":"\xed\xa0\x80"}'), NotUtf8Error),  # an encoded surrogate
        (frame(b'{"type": "welcome"'), InvalidJsonError),
        (frame(b'{"type":"disconnect","reason":"x"} trailing'), InvalidJsonError),
        (frame(b'{"type":"stats","rx_frames":NaN}'), InvalidJsonError),
        (frame(b"[" * 50_000), InvalidJsonError),
        (frame(b'{"type":"stats","rx_frames":' + b"9" * 5000 + b"}"), InvalidJsonError),
        (json_frame([{"type": "welcome"}]), NotAnObjectError),
        (json_frame("welcome"), NotAnObjectError),
        (json_frame(None), NotAnObjectError),
        (json_frame({"room": "den"}), MissingTypeError),
        (json_frame({"type": 1}), MissingTypeError),
        (json_frame({"type": None}), MissingTypeError),
        (frame(b'{"type":"\\ud800"}'), MissingTypeError),
        (json_frame({"type": "surprise"}), UnknownTypeError),
    ],
)
def test_each_framing_fault_raises_its_own_error(data: bytes, error: type[FramingError]) -> None:
    with pytest.raises(error) as caught:
        ControlDecoder(Side.ENDPOINT).feed(data)
    assert type(caught.value) is error
    assert isinstance(caught.value, FramingError)


def test_a_4_gib_length_fails_as_soon_as_the_prefix_is_complete() -> None:
    decoder = ControlDecoder(Side.RELAY)
    assert decoder.feed(b"\xff\xff\xff") == []
    with pytest.raises(MessageLengthError) as caught:
        decoder.feed(b"\xff")
    assert caught.value.length_bytes == 2**32 - 1


def test_a_bad_length_after_valid_frames_fails_without_waiting_for_a_body() -> None:
    decoder = ControlDecoder(Side.ENDPOINT)
    assert decoder.feed(encode_message(WELCOME)) == [WELCOME]
    with pytest.raises(MessageLengthError):
        decoder.feed((MAX_MESSAGE_BYTES + 1).to_bytes(4, "big"))


def test_after_an_error_the_decoder_refuses_input() -> None:
    decoder = ControlDecoder(Side.ENDPOINT)
    with pytest.raises(NotAnObjectError):
        decoder.feed(json_frame([]))
    with pytest.raises(DecoderFailedError):
        decoder.feed(encode_message(WELCOME))
    with pytest.raises(DecoderFailedError):
        decoder.feed(b"")


def test_broken_framing_stays_fatal_after_the_first_message() -> None:
    decoder = ControlDecoder(Side.ENDPOINT)
    decoder.feed(encode_message(WELCOME))
    with pytest.raises(InvalidJsonError):
        decoder.feed(frame(b"{not json"))


# --- fuzzing --------------------------------------------------------------------------------


def feed_pieces(side: Side, pieces: list[bytes]) -> None:
    decoder = ControlDecoder(side)
    try:
        for piece in pieces:
            for item in decoder.feed(piece):
                assert isinstance(item, Message | UnknownMessage)
    except ControlProtocolError:
        pass


@given(st.sampled_from(Side), st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_yield_messages_or_a_control_protocol_error(
    side: Side, pieces: list[bytes]
) -> None:
    feed_pieces(side, pieces)


@given(
    st.sampled_from(Side),
    st.lists(
        st.one_of(
            relay_messages.map(encode_message),
            endpoint_messages.map(encode_message),
            st.binary(max_size=16).map(frame),
            st.binary(max_size=8),
        ),
        max_size=6,
    ),
    st.lists(st.integers(0, 4096), max_size=8),
)
def test_mangled_streams_yield_messages_or_a_control_protocol_error(
    side: Side, parts: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(parts)
    feed_pieces(side, split_at(stream, [cut for cut in cuts if cut <= len(stream)]))

"""The overlay datagram header (PROTOCOL.md section 3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanparty.errors import ProtocolError
from lanparty.proto.overlay import (
    MIN_FRAME_BYTES,
    OVERLAY_ETHERNET,
    MalformedDatagramError,
    MalformedReason,
    decode_datagram,
    encode_datagram,
)

MINIMAL_FRAME = bytes(range(MIN_FRAME_BYTES))


def test_header_byte_is_version_1_kind_ethernet() -> None:
    assert OVERLAY_ETHERNET == 0x10
    assert encode_datagram(MINIMAL_FRAME) == b"\x10" + MINIMAL_FRAME


@given(st.binary(min_size=MIN_FRAME_BYTES, max_size=2000))
def test_decode_inverts_encode(frame: bytes) -> None:
    assert decode_datagram(encode_datagram(frame)) == frame


@given(st.binary(min_size=MIN_FRAME_BYTES + 1, max_size=2000))
def test_encode_inverts_decode(datagram: bytes) -> None:
    datagram = b"\x10" + datagram[1:]
    assert encode_datagram(decode_datagram(datagram)) == datagram


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", MalformedReason.EMPTY),
        (b"\x20" + MINIMAL_FRAME, MalformedReason.UNKNOWN_VERSION),
        (b"\x00" + MINIMAL_FRAME, MalformedReason.UNKNOWN_VERSION),
        (b"\xf0" + MINIMAL_FRAME, MalformedReason.UNKNOWN_VERSION),
        (b"\x11" + MINIMAL_FRAME, MalformedReason.UNKNOWN_KIND),
        (b"\x1f" + MINIMAL_FRAME, MalformedReason.UNKNOWN_KIND),
        (b"\x10", MalformedReason.SHORT_FRAME),
        (b"\x10" + MINIMAL_FRAME[:-1], MalformedReason.SHORT_FRAME),
        # The header is judged before the length.
        (b"\x20", MalformedReason.UNKNOWN_VERSION),
    ],
)
def test_malformed_datagrams_name_the_broken_rule(datagram: bytes, reason: MalformedReason) -> None:
    with pytest.raises(MalformedDatagramError) as caught:
        decode_datagram(datagram)
    assert caught.value.reason is reason
    assert str(caught.value).startswith("malformed datagram")


def test_malformed_datagram_is_a_protocol_error() -> None:
    assert issubclass(MalformedDatagramError, ProtocolError)


def test_jumbo_frame_is_not_malformed() -> None:
    frame = bytes(9000)
    assert decode_datagram(b"\x10" + frame) == frame


def test_minimal_frame_is_accepted() -> None:
    assert decode_datagram(b"\x10" + MINIMAL_FRAME) == MINIMAL_FRAME


def test_encoding_a_short_frame_is_our_bug() -> None:
    with pytest.raises(ValueError, match="at least 14 bytes"):
        encode_datagram(MINIMAL_FRAME[:-1])


@given(st.binary(max_size=64))
def test_decode_returns_a_frame_or_raises_malformed(datagram: bytes) -> None:
    try:
        frame = decode_datagram(datagram)
    except MalformedDatagramError:
        assert len(datagram) < 15 or datagram[0] != 0x10
    else:
        assert datagram[0] == 0x10
        assert frame == datagram[1:]
        assert len(frame) >= MIN_FRAME_BYTES

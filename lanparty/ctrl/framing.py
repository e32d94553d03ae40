"""Length-prefixed JSON framing of the control stream, and its incremental decoder.

A frame is a 4-byte unsigned big-endian length ``N`` (1 <= N <= 65536)
followed by ``N`` bytes of UTF-8 JSON holding one object. The decoder is
sans-I/O: stream bytes go in, messages come out.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, TypeAlias

import attrs

from lanparty.ctrl.codec import structure_message, unstructure_message
from lanparty.ctrl.errors import (
    SHOWN_CHARS,
    ControlProtocolError,
    DecoderFailedError,
    InvalidJsonError,
    MessageLengthError,
    MessageTooLargeError,
    MissingTypeError,
    NotAnObjectError,
    NotUtf8Error,
    UnknownTypeError,
)
from lanparty.ctrl.messages import Message, MessageType
from lanparty.ctrl.validation import is_unicode_text

LENGTH_PREFIX_BYTES = 4
MAX_MESSAGE_BYTES = 65536


class Side(StrEnum):
    """Which end of the control stream a decoder reads for."""

    RELAY = "relay"  # reads what endpoints send: hello, disconnect
    ENDPOINT = "endpoint"  # reads what the relay sends: welcome, reject, ...


_TYPES_RECEIVED_BY: dict[Side, frozenset[str]] = {
    Side.RELAY: frozenset({MessageType.HELLO, MessageType.DISCONNECT}),
    Side.ENDPOINT: frozenset(
        {
            MessageType.WELCOME,
            MessageType.REJECT,
            MessageType.PEER_JOINED,
            MessageType.PEER_LEFT,
            MessageType.STATS,
            MessageType.DISCONNECT,
        }
    ),
}


@attrs.frozen
class UnknownMessage:
    """A message of a type this side does not know, after the first message: log and ignore."""

    type: str


Received: TypeAlias = Message | UnknownMessage


def encode_message(message: Message) -> bytes:
    """One frame: the length prefix and the compact JSON of ``message``."""
    # ensure_ascii keeps any str encodable: a lone surrogate becomes an escape
    body = json.dumps(unstructure_message(message), separators=(",", ":")).encode("ascii")
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"a {message.TYPE} message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}"
        )
    return len(body).to_bytes(LENGTH_PREFIX_BYTES, "big") + body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_object(body: bytes | bytearray) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(
            f"a control message is not valid UTF-8 (byte {exc.start} of {len(body)})"
        ) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    # ValueError also covers integers beyond Python's digit limit; RecursionError deep nesting
    except (ValueError, RecursionError) as exc:
        raise InvalidJsonError(f"a control message is not valid JSON ({exc})") from None
    if type(value) is not dict:
        raise NotAnObjectError("a control message is JSON but not a JSON object")
    return value


class ControlDecoder:
    """Turns control-stream bytes into messages, for one ``side`` of the stream.

    ``feed`` returns every message completed by the bytes given, in order.
    The first message must have a type this side knows; after it, unknown
    types come out as ``UnknownMessage`` (forward compatibility). Any other
    fault raises a ``ControlProtocolError`` subclass, after which the decoder
    refuses input (messages completed earlier in the same ``data`` are lost
    with the stream: it is closed either way). Whether a message is allowed
    at its point of the session (a second ``hello``, ``stats`` before
    ``welcome``) is the caller's call.

    Only an incomplete frame is kept between calls: at most the 4-byte prefix
    and 65536 bytes of body.
    """

    __slots__ = ("_buffer", "_failure", "_first_message_seen", "_known_types")

    def __init__(self, side: Side) -> None:
        self._known_types = _TYPES_RECEIVED_BY[side]
        self._buffer = bytearray()
        self._first_message_seen = False
        self._failure: ControlProtocolError | None = None

    @property
    def first_message_seen(self) -> bool:
        return self._first_message_seen

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame held until more data arrives."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Received]:
        if self._failure is not None:
            raise DecoderFailedError(
                f"the control stream already failed: {self._failure}"
            ) from self._failure
        self._buffer += data
        received: list[Received] = []
        offset = 0
        try:
            while len(self._buffer) - offset >= LENGTH_PREFIX_BYTES:
                body_start = offset + LENGTH_PREFIX_BYTES
                length = int.from_bytes(self._buffer[offset:body_start], "big")
                if not 1 <= length <= MAX_MESSAGE_BYTES:
                    raise MessageLengthError(length)
                if len(self._buffer) - body_start < length:
                    break
                offset = body_start + length
                received.append(self._decode(self._buffer[body_start:offset]))
        except ControlProtocolError as exc:
            self._failure = exc
            self._buffer.clear()
            raise
        del self._buffer[:offset]
        return received

    def _decode(self, body: bytearray) -> Received:
        fields = _parse_object(body)
        message_type = fields.get("type")
        if type(message_type) is not str:
            raise MissingTypeError("a control message has no string 'type' field")
        if not is_unicode_text(message_type):
            raise MissingTypeError("a control message's 'type' is not valid Unicode text")
        if message_type not in self._known_types:
            if not self._first_message_seen:
                raise UnknownTypeError(message_type)
            return UnknownMessage(type=message_type[:SHOWN_CHARS])
        message = structure_message(fields)
        self._first_message_seen = True
        return message

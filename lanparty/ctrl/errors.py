"""Errors of the control stream: what the peer sent, and what to answer.

Every error a peer can provoke is a ``ControlProtocolError`` (a
``ProtocolError``) carrying the ``reject_code`` the relay answers a broken
first message with; only hello's rules use a code other than ``malformed``.
"""

from __future__ import annotations

from lanparty.ctrl.messages import RejectCode
from lanparty.errors import ProtocolError

# How much of a peer's value an error message quotes.
SHOWN_CHARS = 40


class ControlProtocolError(ProtocolError):
    """The peer broke the control-stream protocol."""

    reject_code: RejectCode = RejectCode.MALFORMED


class FramingError(ControlProtocolError):
    """A control frame is not a length-prefixed UTF-8 JSON object with a ``type``."""


class MessageLengthError(FramingError):
    """The 4-byte length prefix is 0 or above the 65536-byte limit."""

    def __init__(self, length_bytes: int) -> None:
        super().__init__(
            f"a control message announced {length_bytes} bytes; "
            "the protocol allows 1 to 65536 bytes per message"
        )
        self.length_bytes = length_bytes


class NotUtf8Error(FramingError):
    """The message body is not valid UTF-8."""


class InvalidJsonError(FramingError):
    """The message body is not valid JSON."""


class NotAnObjectError(FramingError):
    """The message body is JSON but not a JSON object."""


class MissingTypeError(FramingError):
    """The message has no ``type`` field, or its ``type`` is not a string."""


class UnknownTypeError(FramingError):
    """The first message has a ``type`` this side does not know."""

    def __init__(self, message_type: str) -> None:
        # A peer's type may be 60 000 characters: the reject that quotes it must still fit.
        shown = repr(message_type[:SHOWN_CHARS]) + (
            "..." if len(message_type) > SHOWN_CHARS else ""
        )
        super().__init__(f"the first control message has the unknown type {shown}")
        self.message_type = message_type[:SHOWN_CHARS]


class InvalidMessageError(ControlProtocolError):
    """A known message type with missing, mistyped or impossible fields."""


class HelloRejectedError(ControlProtocolError):
    """A ``hello`` broke one of the relay's rules; the message is safe to show a user."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.reject_code = code


class DecoderFailedError(ControlProtocolError):
    """Input was given to a decoder that has already raised: the stream is dead."""


class MessageTooLargeError(ValueError):
    """We tried to send a message whose JSON exceeds 65536 bytes (our bug, not the peer's)."""

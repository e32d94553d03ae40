"""Which control message is allowed when, as a table (sans-I/O, like h11's ``_state``).

Each side of the control stream reads the other's messages (``Side``) and
is in one state: an endpoint awaits ``welcome`` and is then admitted; the
relay awaits ``hello`` and then has a member. ``next_state`` looks up what
a received message does there: ``ACCEPT`` (act on it), ``IGNORE`` (skip
it, logged at debug: forward compatibility) or ``PROTOCOL_ERROR`` (close
the connection), and the state that follows. Besides the message types,
two pseudo-types have rows: ``UNKNOWN`` (an ``UnknownMessage``, a type
this side does not know) and ``MALFORMED`` (the decoder raised a
``ControlProtocolError``). The shells (``endpoint/session.py``,
``relay/service.py``) act only on the ``Outcome``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final, TypeAlias

import attrs

from lanparty.ctrl.errors import ControlProtocolError
from lanparty.ctrl.framing import Received, Side, UnknownMessage
from lanparty.ctrl.messages import MessageType


class EndpointState(enum.StrEnum):
    AWAITING_WELCOME = "awaiting_welcome"
    ADMITTED = "admitted"
    CLOSED = "closed"


class RelayState(enum.StrEnum):
    AWAITING_HELLO = "awaiting_hello"
    MEMBER = "member"
    CLOSED = "closed"


State: TypeAlias = EndpointState | RelayState


class Verdict(enum.StrEnum):
    ACCEPT = "accept"
    IGNORE = "ignore"
    PROTOCOL_ERROR = "protocol_error"


# Rows for what is not a known message: a type this side does not know, and
# a control frame the decoder refused.
UNKNOWN: Final = "unknown"
MALFORMED: Final = "malformed"
RowKey: TypeAlias = str  # a MessageType, UNKNOWN or MALFORMED


@attrs.frozen
class Outcome:
    """What a received message does: the verdict, the state after it, and why (for errors)."""

    verdict: Verdict
    state: State
    reason: str = ""


def _accept(state: State) -> Outcome:
    return Outcome(Verdict.ACCEPT, state)


def _ignore(state: State) -> Outcome:
    return Outcome(Verdict.IGNORE, state)


def _error(state: State, reason: str) -> Outcome:
    return Outcome(Verdict.PROTOCOL_ERROR, state, reason)


_ALL_ROWS: tuple[RowKey, ...] = (*MessageType, UNKNOWN, MALFORMED)

_MALFORMED_FRAME = "malformed control frame"
_NOT_WELCOME = "expected welcome or reject"
_NOT_HELLO = "the first control message must be hello"


def _awaiting_welcome() -> dict[RowKey, Outcome]:
    closed = EndpointState.CLOSED
    rows = {row: _error(closed, _NOT_WELCOME) for row in _ALL_ROWS}
    rows[MessageType.WELCOME] = _accept(EndpointState.ADMITTED)
    # A reject ends the attempt: accepted, and the connection is done.
    rows[MessageType.REJECT] = _accept(closed)
    rows[MALFORMED] = _error(closed, _MALFORMED_FRAME)
    return rows


def _admitted() -> dict[RowKey, Outcome]:
    admitted = EndpointState.ADMITTED
    rows = {row: _ignore(admitted) for row in _ALL_ROWS}
    for row in (MessageType.PEER_JOINED, MessageType.PEER_LEFT, MessageType.STATS):
        rows[row] = _accept(admitted)
    rows[MessageType.DISCONNECT] = _accept(EndpointState.CLOSED)
    rows[MALFORMED] = _error(EndpointState.CLOSED, _MALFORMED_FRAME)
    return rows


def _awaiting_hello() -> dict[RowKey, Outcome]:
    closed = RelayState.CLOSED
    rows = {row: _error(closed, _NOT_HELLO) for row in _ALL_ROWS}
    # Admission (credentials, room state) is the switch's to decide.
    rows[MessageType.HELLO] = _accept(RelayState.MEMBER)
    rows[MALFORMED] = _error(closed, _MALFORMED_FRAME)
    return rows


def _member() -> dict[RowKey, Outcome]:
    member = RelayState.MEMBER
    rows = {row: _ignore(member) for row in _ALL_ROWS}
    rows[MessageType.DISCONNECT] = _accept(RelayState.CLOSED)
    rows[MessageType.HELLO] = _error(RelayState.CLOSED, "second hello")
    rows[MALFORMED] = _error(RelayState.CLOSED, _MALFORMED_FRAME)
    return rows


def _closed(state: State) -> dict[RowKey, Outcome]:
    # The connection is going: nothing more is acted upon.
    return {row: _ignore(state) for row in _ALL_ROWS}


RULES: Mapping[tuple[Side, State], Mapping[RowKey, Outcome]] = {
    (Side.ENDPOINT, EndpointState.AWAITING_WELCOME): _awaiting_welcome(),
    (Side.ENDPOINT, EndpointState.ADMITTED): _admitted(),
    (Side.ENDPOINT, EndpointState.CLOSED): _closed(EndpointState.CLOSED),
    (Side.RELAY, RelayState.AWAITING_HELLO): _awaiting_hello(),
    (Side.RELAY, RelayState.MEMBER): _member(),
    (Side.RELAY, RelayState.CLOSED): _closed(RelayState.CLOSED),
}


def row_of(received: Received | ControlProtocolError) -> RowKey:
    """The table row a received message (or a decoding failure) falls in."""
    if isinstance(received, ControlProtocolError):
        return MALFORMED
    if isinstance(received, UnknownMessage):
        return UNKNOWN
    return received.TYPE


def next_state(side: Side, state: State, received: Received | ControlProtocolError) -> Outcome:
    """What ``received`` does to ``side`` in ``state`` (``KeyError``: not a state of ``side``)."""
    return RULES[side, state][row_of(received)]

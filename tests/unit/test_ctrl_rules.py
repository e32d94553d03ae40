"""The control-protocol table: every (side, state, message type) cell."""

from __future__ import annotations

import pytest

from lanparty.ctrl import InvalidJsonError, Side, UnknownMessage, UnknownTypeError
from lanparty.ctrl.messages import MessageType
from lanparty.ctrl.rules import (
    MALFORMED,
    RULES,
    UNKNOWN,
    EndpointState,
    RelayState,
    State,
    Verdict,
    next_state,
    row_of,
)

A, SKIP, E = Verdict.ACCEPT, Verdict.IGNORE, Verdict.PROTOCOL_ERROR
W, R, J, L, S, D, H = (
    "welcome",
    "reject",
    "peer_joined",
    "peer_left",
    "stats",
    "disconnect",
    "hello",
)
ROWS = (H, W, R, J, L, S, D, UNKNOWN, MALFORMED)

# Written out by hand, not derived from the module: (verdict, state after).
EXPECTED: dict[tuple[Side, State], dict[str, tuple[Verdict, State]]] = {
    (Side.ENDPOINT, EndpointState.AWAITING_WELCOME): {
        W: (A, EndpointState.ADMITTED),
        R: (A, EndpointState.CLOSED),
        **{row: (E, EndpointState.CLOSED) for row in (H, J, L, S, D, UNKNOWN, MALFORMED)},
    },
    (Side.ENDPOINT, EndpointState.ADMITTED): {
        J: (A, EndpointState.ADMITTED),
        L: (A, EndpointState.ADMITTED),
        S: (A, EndpointState.ADMITTED),
        D: (A, EndpointState.CLOSED),
        **{row: (SKIP, EndpointState.ADMITTED) for row in (H, W, R, UNKNOWN)},
        MALFORMED: (E, EndpointState.CLOSED),
    },
    (Side.ENDPOINT, EndpointState.CLOSED): {row: (SKIP, EndpointState.CLOSED) for row in ROWS},
    (Side.RELAY, RelayState.AWAITING_HELLO): {
        H: (A, RelayState.MEMBER),
        **{row: (E, RelayState.CLOSED) for row in (W, R, J, L, S, D, UNKNOWN, MALFORMED)},
    },
    (Side.RELAY, RelayState.MEMBER): {
        D: (A, RelayState.CLOSED),
        H: (E, RelayState.CLOSED),
        **{row: (SKIP, RelayState.MEMBER) for row in (W, R, J, L, S, UNKNOWN)},
        MALFORMED: (E, RelayState.CLOSED),
    },
    (Side.RELAY, RelayState.CLOSED): {row: (SKIP, RelayState.CLOSED) for row in ROWS},
}

CELLS = [(side, state, row) for (side, state), rows in EXPECTED.items() for row in rows]


def test_the_table_has_every_state_and_every_row() -> None:
    assert set(RULES) == set(EXPECTED)
    assert {row.value for row in MessageType} | {UNKNOWN, MALFORMED} == set(ROWS)
    for key, rows in RULES.items():
        assert set(rows) == set(ROWS), key


@pytest.mark.parametrize(("side", "state", "row"), CELLS)
def test_every_cell(side: Side, state: State, row: str) -> None:
    outcome = RULES[side, state][row]
    assert (outcome.verdict, outcome.state) == EXPECTED[side, state][row]
    # an error says why: the shells send it as the close reason
    assert bool(outcome.reason) == (outcome.verdict is Verdict.PROTOCOL_ERROR)


def test_rows_of_unknown_and_malformed() -> None:
    assert row_of(UnknownMessage(type="future")) == UNKNOWN
    assert row_of(InvalidJsonError("not JSON")) == MALFORMED
    assert row_of(UnknownTypeError("future")) == MALFORMED


def test_next_state_looks_up_the_received_message() -> None:
    unknown = UnknownMessage(type="future")
    assert next_state(Side.ENDPOINT, EndpointState.ADMITTED, unknown).verdict is Verdict.IGNORE
    member = next_state(Side.RELAY, RelayState.AWAITING_HELLO, InvalidJsonError("x"))
    assert member.verdict is Verdict.PROTOCOL_ERROR
    assert member.reason == "malformed control frame"


def test_close_reasons_are_the_ones_the_shells_always_sent() -> None:
    assert RULES[Side.RELAY, RelayState.MEMBER][H].reason == "second hello"
    awaiting = RULES[Side.RELAY, RelayState.AWAITING_HELLO][D]
    assert awaiting.reason == "the first control message must be hello"
    assert RULES[Side.ENDPOINT, EndpointState.AWAITING_WELCOME][S].reason == (
        "expected welcome or reject"
    )


def test_a_state_of_the_other_side_is_refused() -> None:
    with pytest.raises(KeyError):
        next_state(Side.RELAY, EndpointState.ADMITTED, UnknownMessage(type="x"))

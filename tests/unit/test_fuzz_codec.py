"""Fuzzing the decoder and the turn processor: whatever bytes arrive, decoding either gives a
validated event or raises a `DecodeError` (which the worker's handler turns into a dead letter),
and processing a decoded event never raises. Hypothesis, with a fixed seed set by the profile."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.budget import LexicalScorer, Message, Policy, TextPart, ToolCallPart, ToolResultPart
from streams.codecs import (
    BUDGET_SNAPSHOT,
    TURN_EVENT,
    SessionStart,
    TurnEvent,
    TurnEventType,
    Usage,
    default_codec,
)
from streams.codecs.single_object import HEADER_SIZE
from streams.errors import DecodeError
from streams.processors.limits import Limits
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor

CODEC = default_codec()
SID = "fuzz-session"
FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def valid_events() -> list[TurnEvent]:
    """One of each kind of event, the material mutations start from."""
    start = SessionStart(
        "gpt-4o",
        8000,
        Policy(history=0.3),
        "You are a fuzzing target.",
        tools=({"name": "grep", "parameters": {"type": "object"}},),
        task="find the crash",
    )
    parts = (
        TextPart("results:"),
        ToolResultPart("c1", "3 matches in app.py", True),
    )
    messages = [
        Message(id="u1", role="user", content="Why does the worker crash on bad input?"),
        Message(id="a1", role="assistant", content=(ToolCallPart("c1", "grep", '{"q": "x"}'),)),
        Message(id="t1", role="user", content=parts, name="tool-runner"),
        Message(id="p1", role="user", content="Never drop this.", pinned=True, timestamp=1.5),
    ]
    events = [TurnEvent(f"{SID}/0", SID, 0, TurnEventType.SESSION_START, 0.0, start)]
    events += [
        TurnEvent(f"{SID}/{i}", SID, i, TurnEventType.TURN, 1.0, message=m)
        for i, m in enumerate(messages, 1)
    ]
    usage = Usage(prompt_tokens=120, context_seq=4, context_tokens=118, completion_tokens=7)
    events += [  # seqs are contiguous: a hole holds the session
        TurnEvent(f"{SID}/5", SID, 5, TurnEventType.TASK_UPDATE, 2.0, task="new task"),
        TurnEvent(f"{SID}/6", SID, 6, TurnEventType.USAGE, 2.0, usage=usage),
        TurnEvent(f"{SID}/7", SID, 7, TurnEventType.SESSION_END, 3.0, end_reason="done"),
    ]
    return events


ENCODED = [CODEC.dumps(TURN_EVENT, e) for e in valid_events()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding, broken: bits flipped, bytes cut, inserted or deleted, or two spliced."""
    data = bytearray(draw(st.sampled_from(ENCODED)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "delete", "splice", "varint"]))
        low = HEADER_SIZE if how in ("flip", "insert", "delete", "varint") else 0  # the body
        high = max(0, len(data) - 1)
        at = draw(st.integers(min(low, high), high))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif how == "splice":
            other = draw(st.sampled_from(ENCODED))
            data = data[:at] + other[draw(st.integers(0, len(other) - 1)) :]
        else:  # an absurd length or count prefix, where the body's varints start
            data[at:at] = bytes([0xFF] * 9 + [0x01])
    return bytes(data)


def decode_or_dead_letter(data: bytes) -> TurnEvent | None:
    """What the worker's handler does: a `DecodeError` becomes a dead letter (None here)."""
    try:
        return CODEC.loads(TURN_EVENT, data)
    except DecodeError as error:
        assert str(error)  # the reason a dead letter carries
        return None


def started_processor() -> TurnProcessor:
    proc = TurnProcessor(
        SessionStore({}, LexicalScorer()),
        clock=lambda: 1_700_000_000.0,
        limits=Limits(max_message_tokens=500, max_session_messages=8),
    )
    out = Outputs()
    proc.handle(valid_events()[0], out)
    assert not out.rejected
    return proc


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_only_ever_raise_decode_errors(data: bytes) -> None:
    decode_or_dead_letter(data)
    decode_or_dead_letter(b"\xc3\x01" + data)  # past the marker, into the fingerprint
    decode_or_dead_letter(ENCODED[1][:HEADER_SIZE] + data)  # a TurnEvent header, a random body


@FUZZ
@given(mutated())
def test_mutated_events_decode_or_raise_decode_errors_and_never_crash_the_processor(
    data: bytes,
) -> None:
    event = decode_or_dead_letter(data)
    if event is None:
        return
    proc = started_processor()
    out = Outputs()
    proc.handle(event, out)  # never raises: a refusal lands in out.rejected
    for _, error in out.rejected:
        assert str(error)


def test_the_unmutated_events_are_all_accepted() -> None:
    proc = started_processor()
    out = Outputs()
    for data in ENCODED[1:]:
        proc.handle(CODEC.loads(TURN_EVENT, data), out)
    assert out.rejected == [] and len(out.snapshots) == 6


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"\xc3\x01",
        b"\xc3\x01" + bytes(8),
        ENCODED[1][:-3],
        ENCODED[1] + b"\x00",
        ENCODED[1].replace(b"Why does", b"\xff\xfe\xfd\xfcdoes"),  # invalid UTF-8
    ],
    ids=["null", "empty", "marker", "unknown-schema", "truncated", "extra-bytes", "utf8"],
)
def test_known_kinds_of_garbage_are_decode_errors(data: bytes | None) -> None:
    with pytest.raises(DecodeError):
        CODEC.loads(TURN_EVENT, data)  # type: ignore[arg-type]


def test_a_record_of_another_schema_is_a_decode_error_naming_it() -> None:
    from streams.budget import BudgetManager
    from streams.codecs import BudgetSnapshot

    snapshot = BudgetSnapshot.of("x", 0, "gpt-4o", BudgetManager("gpt-4o", 1000).snapshot([]), 0.0)
    with pytest.raises(DecodeError) as raised:
        CODEC.loads(TURN_EVENT, CODEC.dumps(BUDGET_SNAPSHOT, snapshot))
    assert raised.value.kind == "wrong_record" and "BudgetSnapshot" in str(raised.value)

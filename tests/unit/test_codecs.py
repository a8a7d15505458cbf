"""The wire format: single-object Avro for every topic, schema resolution, the core mapping."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from avro.schema import parse
from hypothesis import given
from hypothesis import strategies as st

import streams.codecs
from streams.budget import (
    Action,
    ActionKind,
    AlertLevel,
    Component,
    Ledger,
    Message,
    Policy,
    Rule,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    COMPRESSED_HISTORY,
    DEAD_LETTER,
    RECORD_TYPES,
    TURN_EVENT,
    AvroCodec,
    BudgetCommand,
    BudgetSnapshot,
    CompressedHistory,
    DeadLetter,
    RecordType,
    SchemaRegistry,
    SessionStart,
    SummaryStatus,
    TurnEvent,
    TurnEventType,
    message_to_record,
)
from streams.codecs.registry import RECORDS, default_schema_dir
from streams.codecs.single_object import HEADER_SIZE, MARKER, fingerprint
from streams.errors import DecodeError, EncodeError

T0 = 1_700_000_000.5


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(SchemaRegistry.load())


def tool_call_message() -> Message:
    return Message(
        id="m-1",
        role="assistant",
        content=(TextPart("Let me look."), ToolCallPart("call-1", "search", '{"q":"kafka"}')),
        timestamp=T0,
    )


def turn() -> TurnEvent:
    return TurnEvent("e-1", "s-1", 7, TurnEventType.TURN, T0, message=tool_call_message())


def session_start() -> TurnEvent:
    start = SessionStart(
        model="gpt-4o",
        context_limit=128_000,
        policy=Policy(history=2048, pinned=0.2, output_reserve=4096, warn=0.8),
        system_prompt="You are a careful research agent.",
        tools=({"name": "search", "parameters": {"type": "object"}},),
        task="compare Kafka stream processors",
        tokenizer="claude.json",
        strategy="importance",
    )
    return TurnEvent("e-0", "s-1", 0, TurnEventType.SESSION_START, T0, session_start=start)


def snapshot_event() -> BudgetSnapshot:
    budgets = Policy().budgets(8000)
    messages = [
        Message(id="sys", role="system", content="Be brief.", token_count=40),
        Message(id="u1", role="user", content="hi", token_count=7300),
    ]
    snapshot = Ledger.of(budgets, messages, overhead=3).snapshot(estimated=False)
    return BudgetSnapshot.of("s-1", 7, "gpt-4o", snapshot, T0)


def truncate_command() -> BudgetCommand:
    cut = Message(id="t-3", role="tool", content="first 100 lines", tool_call_id="c-3")
    action = Action(
        ActionKind.TRUNCATE,
        Rule.OVERSIZED_TOOL_RESULT,
        ("t-3",),
        9000,
        6000,
        "tool result t-3 took 4000 tokens of a 1000-token share",
        replacement=cut.replace_content("first 100 lines", truncated=True),
    )
    return BudgetCommand.plan("s-1", 7, [action], T0)[0]


SAMPLES: list[tuple[RecordType[Any], Any]] = [
    (TURN_EVENT, turn()),
    (TURN_EVENT, session_start()),
    (TURN_EVENT, TurnEvent("e-2", "s-1", 8, TurnEventType.TASK_UPDATE, T0, task="write it up")),
    (TURN_EVENT, TurnEvent("e-3", "s-1", 9, TurnEventType.SESSION_END, T0, end_reason="done")),
    (BUDGET_COMMAND, truncate_command()),
    (
        BUDGET_COMMAND,
        BudgetCommand.plan(
            "s-1",
            7,
            [Action(ActionKind.SUMMARIZE, Rule.SUMMARIZATION, ("u1", "a1"), 9000, 9000, "70%")],
            T0,
        )[0],
    ),
    (BUDGET_SNAPSHOT, snapshot_event()),
    (
        COMPRESSED_HISTORY,
        CompressedHistory(
            "summary-1",
            "s-1",
            "s-1/7/0",
            ("u1", "a1"),
            "extractive",
            SummaryStatus.OK,
            T0,
            summary="They compared Faust and quix.",
            token_count=9,
            source_seq=7,
        ),
    ),
    (
        COMPRESSED_HISTORY,
        CompressedHistory(
            "summary-2",
            "s-1",
            "s-1/8/0",
            ("u2",),
            "gpt-4o-mini",
            SummaryStatus.FAILED,
            T0,
            error="timeout after 30 s",
        ),
    ),
    (
        DEAD_LETTER,
        DeadLetter.of(
            DecodeError("bad marker 00 00", kind="bad_header"),
            topic="agent.turns",
            partition=3,
            offset=42,
            key=b"s-1",
            value=b"\x00\x00junk",
            timestamp=T0,
            source_timestamp=T0 - 1,
        ),
    ),
]
IDS = [f"{kind.name.rsplit('.', 1)[1]}-{i}" for i, (kind, _) in enumerate(SAMPLES)]


@pytest.mark.parametrize(("kind", "value"), SAMPLES, ids=IDS)
def test_every_record_round_trips(codec: AvroCodec, kind: RecordType[Any], value: Any) -> None:
    data = codec.dumps(kind, value)
    assert kind.to_record(codec.loads(kind, data)) == kind.to_record(value)


def test_every_record_type_has_a_sample() -> None:
    assert {kind.name for kind, _ in SAMPLES} == {kind.name for kind in RECORD_TYPES}


# Pinned bytes: a change here changes what every consumer must read. If it is intended, copy the
# old schema's canonical form to schemas/history/ so messages in flight stay readable.
GOLDEN = {
    "turn": (
        "c3011d9536c9aff5424c06652d3106732d310e0200002040fc54d9410002066d2d31126173736973"
        "74616e74020e686973746f7279020400184c6574206d65206c6f6f6b2e020c63616c6c2d310c7365"
        "617263681a7b2271223a226b61666b61227d000000000200002040fc54d9410000000000"
    ),
    "command": (
        "c30187c5eae42e00c2210e732d312f372f3006732d310e022a6f76657273697a65645f746f6f6c5f"
        "726573756c740206742d3300d08c01e05d6c746f6f6c20726573756c7420742d3320746f6f6b2034"
        "30303020746f6b656e73206f66206120313030302d746f6b656e2073686172650206742d3308746f"
        "6f6c0218746f6f6c5f726573756c7473001e666972737420313030206c696e6573000206632d3300"
        "0001000000002040fc54d9410000"
    ),
}
# The first TurnEvent schema (schemas/history/TurnEvent.1.avsc), before USAGE events.
GOLDEN_V1_TURN = (
    "c30137a98fea5e517b4106652d3106732d310e0200002040fc54d9410002066d2d31126173736973"
    "74616e74020e686973746f7279020400184c6574206d65206c6f6f6b2e020c63616c6c2d310c7365"
    "617263681a7b2271223a226b61666b61227d000000000200002040fc54d94100000000"
)
# The first BudgetCommand schema (schemas/history/BudgetCommand.1.avsc), before `model` and
# `segment`: bytes written by it stay readable.
GOLDEN_V1_COMMAND = (
    "c3018728a5dbb5d1447b0e732d312f372f3006732d310e022a6f76657273697a65645f746f6f6c5f"
    "726573756c740206742d3300d08c01e05d6c746f6f6c20726573756c7420742d3320746f6f6b2034"
    "30303020746f6b656e73206f66206120313030302d746f6b656e2073686172650206742d3308746f"
    "6f6c0218746f6f6c5f726573756c7473001e666972737420313030206c696e6573000206632d3300"
    "0001000000002040fc54d941"
)


@pytest.mark.parametrize(
    ("name", "kind", "value"),
    [("turn", TURN_EVENT, turn()), ("command", BUDGET_COMMAND, truncate_command())],
)
def test_golden_bytes(codec: AvroCodec, name: str, kind: RecordType[Any], value: Any) -> None:
    assert codec.dumps(kind, value).hex() == GOLDEN[name]
    assert kind.to_record(codec.loads(kind, bytes.fromhex(GOLDEN[name]))) == kind.to_record(value)


def test_header_is_marker_and_rabin_fingerprint_of_the_writer_schema(codec: AvroCodec) -> None:
    data = codec.dumps(TURN_EVENT, turn())
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:HEADER_SIZE] == fingerprint(codec.registry.current("TurnEvent"))
    # The Avro specification's CRC-64-AVRO test vector: "null" → 0x63dd24e7cc258f8a, stored LE.
    assert fingerprint(parse('"null"')) == (0x63DD24E7CC258F8A).to_bytes(8, "little")


def test_every_schema_field_is_documented() -> None:
    def fields(node: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(node, dict):
            found += node.get("fields", [])
            for value in node.values():
                found += fields(value)
        elif isinstance(node, list):
            for value in node:
                found += fields(value)
        return found

    for record in RECORDS:
        schema = json.loads((default_schema_dir() / f"{record}.avsc").read_text())
        assert schema["namespace"] == "tokenbudget.v1" and schema.get("doc")
        undocumented = [f["name"] for f in fields(schema) if not f.get("doc")]
        assert not undocumented, f"{record}: {undocumented}"


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        (b"", "bad_header", "shorter than the 10-byte"),
        (b"\xc3\x01\x00", "bad_header", "shorter than the 10-byte"),
        (b'{"event_id": "e-1", "session_id": "s-1"}', "bad_header", "bad marker 7b 22"),
        (MARKER + bytes(8) + b"\x02", "unknown_schema", "unknown writer schema fingerprint"),
    ],
)
def test_bytes_that_are_not_ours_are_decode_errors(
    codec: AvroCodec, data: bytes, kind: str, words: str
) -> None:
    with pytest.raises(DecodeError, match=words) as caught:
        codec.loads(TURN_EVENT, data)
    assert caught.value.kind == kind
    assert not caught.value.retriable
    assert str(caught.value).startswith("cannot decode tokenbudget.v1.TurnEvent: ")


def test_random_bytes_are_decode_errors(codec: AvroCodec) -> None:
    rng = random.Random(7)
    for size in range(0, 200, 3):
        with pytest.raises(DecodeError):
            codec.loads(TURN_EVENT, rng.randbytes(size))
        with pytest.raises(DecodeError):  # our header, garbage body
            codec.loads(
                TURN_EVENT, codec.dumps(TURN_EVENT, turn())[:HEADER_SIZE] + rng.randbytes(size)
            )


def test_every_truncation_and_trailing_garbage_is_a_bad_body(codec: AvroCodec) -> None:
    data = codec.dumps(TURN_EVENT, session_start())
    for end in range(HEADER_SIZE, len(data)):
        with pytest.raises(DecodeError) as caught:
            codec.loads(TURN_EVENT, data[:end])
        assert caught.value.kind == "bad_body"
    with pytest.raises(DecodeError, match="1 bytes left after the body"):
        codec.loads(TURN_EVENT, data + b"\x00")


def test_a_record_of_another_type_is_refused(codec: AvroCodec) -> None:
    data = codec.dumps(BUDGET_COMMAND, truncate_command())
    with pytest.raises(DecodeError, match=r"hold a tokenbudget\.v1\.BudgetCommand") as caught:
        codec.loads(TURN_EVENT, data)
    assert caught.value.kind == "wrong_record"


def test_holds_tells_the_record_type_from_the_header_alone(codec: AvroCodec) -> None:
    """The turns topic also carries forwarded summarizer answers; the header says which."""
    for kind, value in SAMPLES:
        data = codec.dumps(kind, value)
        assert codec.holds(kind, data)
        assert codec.holds(COMPRESSED_HISTORY, data) == (kind is COMPRESSED_HISTORY)
    answer = codec.dumps(COMPRESSED_HISTORY, next(v for k, v in SAMPLES if k is COMPRESSED_HISTORY))
    assert codec.holds(COMPRESSED_HISTORY, answer[:HEADER_SIZE])  # the body is not read
    for junk in (b"", b"\xc3\x01", MARKER + bytes(8), b"not avro at all", None):
        assert not codec.holds(COMPRESSED_HISTORY, junk)


def _raw_turn(message: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    record = TURN_EVENT.to_record(turn())
    if message is not None:
        changes["message"] = {**record["message"], **message}
    return {**record, **changes}


def _raw_start(**changes: Any) -> dict[str, Any]:
    record = TURN_EVENT.to_record(session_start())
    return {**record, "session_start": {**record["session_start"], **changes}}


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (_raw_turn(message={"role": "robot"}), "unknown role 'robot'"),
        (_raw_turn(message={"id": ""}), "needs a non-empty id"),
        (_raw_turn(message={"component": "memory"}), "unknown component 'memory'"),
        (_raw_turn(message={"role": "tool", "tool_call_id": None}), "needs tool_call_id"),
        (_raw_turn(event_id=""), "needs an event_id and a session_id"),
        (_raw_turn(seq=-1), "seq -1 is negative"),
        ({**_raw_turn(), "message": None}, "a TURN event needs its message"),
        (_raw_start(context_limit=-5), "context limit must be positive, got -5"),
        (_raw_start(model=""), "needs a model name"),
        (_raw_start(policy={"histroy": 0.3}), "unknown policy keys: histroy"),
        (_raw_start(policy={"history": 1.5}), "over 100%"),
        (_raw_start(tool_schemas=["{not json"]), "tool schema 0 is not JSON"),
        (_raw_start(tool_schemas=["[1, 2]"]), "tool schema 0 is not a JSON object"),
        (_raw_start(strategy="random"), "unknown strategy 'random'"),
    ],
)
def test_invalid_content_is_a_decode_error_naming_the_problem(
    codec: AvroCodec, record: dict[str, Any], words: str
) -> None:
    data = codec.encode("TurnEvent", record)  # a producer that skipped validation
    with pytest.raises(DecodeError, match=words) as caught:
        codec.loads(TURN_EVENT, data)
    assert caught.value.kind == "invalid"


def test_unknown_rule_in_a_command_is_a_decode_error(codec: AvroCodec) -> None:
    record = {**BUDGET_COMMAND.to_record(truncate_command()), "rule": "vibes"}
    with pytest.raises(DecodeError, match="unknown rule 'vibes'"):
        codec.loads(BUDGET_COMMAND, codec.encode("BudgetCommand", record))


def test_encoding_a_value_that_does_not_fit_names_the_field(codec: AvroCodec) -> None:
    with pytest.raises(EncodeError, match="/seq = 'seven' \\(str\\) is not a valid long"):
        codec.encode("TurnEvent", {**TURN_EVENT.to_record(turn()), "seq": "seven"})
    with pytest.raises(EncodeError, match="unknown field\\(s\\) 'agent'"):
        codec.encode("TurnEvent", {**TURN_EVENT.to_record(turn()), "agent": "x"})
    stamped = Message(id="m-2", role="user", content="hi", timestamp="yesterday")  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="/message/timestamp = 'yesterday'"):
        codec.dumps(TURN_EVENT, TurnEvent("e-5", "s-1", 5, "TURN", T0, message=stamped))


# --- schema evolution -----------------------------------------------------------------------


def _older_turn_event_schema(codec: AvroCodec) -> dict[str, Any]:
    """TurnEvent as a producer from before `end_reason`, `tokenizer` and `strategy` wrote it."""
    schema = json.loads(codec.registry.current("TurnEvent").canonical_form)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "end_reason"]
    start = next(f for f in schema["fields"] if f["name"] == "session_start")["type"][1]
    start["fields"] = [f for f in start["fields"] if f["name"] not in ("tokenizer", "strategy")]
    return schema


def _producer(schema: dict[str, Any]) -> AvroCodec:
    registry = SchemaRegistry()
    registry.add(parse(json.dumps(schema)), current=True)
    return AvroCodec(registry)


def test_an_older_writer_is_read_with_the_current_schema(codec: AvroCodec, tmp_path: Path) -> None:
    old = _older_turn_event_schema(codec)
    record = TURN_EVENT.to_record(session_start())
    del record["end_reason"], record["session_start"]["tokenizer"]
    del record["session_start"]["strategy"]
    data = _producer(old).encode("TurnEvent", record)

    with pytest.raises(DecodeError) as caught:  # a consumer that never saw the old schema
        codec.loads(TURN_EVENT, data)
    assert caught.value.kind == "unknown_schema"

    shutil.copytree(default_schema_dir(), tmp_path, dirs_exist_ok=True)
    (tmp_path / "history").mkdir(exist_ok=True)
    (tmp_path / "history" / "TurnEvent.v0.avsc").write_text(json.dumps(old))
    event = AvroCodec(SchemaRegistry.load(tmp_path)).loads(TURN_EVENT, data)
    assert event.end_reason is None  # defaults fill the fields the old writer did not have
    assert event.session_start is not None
    assert event.session_start.tokenizer is None and event.session_start.strategy is None
    assert event.session_start.policy == session_start().session_start.policy  # type: ignore[union-attr]


def test_a_newer_writer_with_an_extra_field_is_read_when_its_schema_is_known(
    codec: AvroCodec,
) -> None:
    new = json.loads(codec.registry.current("TurnEvent").canonical_form)
    new["fields"].append({"name": "agent_id", "type": "string"})
    data = _producer(new).encode("TurnEvent", {**TURN_EVENT.to_record(turn()), "agent_id": "a7"})
    registry = SchemaRegistry.load()
    registry.add(parse(json.dumps(new)))
    event = AvroCodec(registry).loads(TURN_EVENT, data)
    assert TURN_EVENT.to_record(event) == TURN_EVENT.to_record(turn())


def test_an_incompatible_writer_is_refused_with_the_reason(codec: AvroCodec) -> None:
    bad = json.loads(codec.registry.current("TurnEvent").canonical_form)
    next(f for f in bad["fields"] if f["name"] == "seq")["type"] = "string"
    data = _producer(bad).encode("TurnEvent", {**TURN_EVENT.to_record(turn()), "seq": "7"})
    registry = SchemaRegistry.load()
    registry.add(parse(json.dumps(bad)))
    with pytest.raises(DecodeError, match="cannot be read as the current schema") as caught:
        AvroCodec(registry).loads(TURN_EVENT, data)
    assert caught.value.kind == "incompatible_schema"
    assert "/fields/2/type" in str(caught.value)  # names the field (seq) that cannot resolve


# --- the mapping to core models --------------------------------------------------------------


def test_message_with_every_kind_of_part_round_trips(codec: AvroCodec) -> None:
    message = Message(
        id="u-9",
        role="user",
        content=(
            TextPart("results:"),
            ToolResultPart("call-1", "42 rows", is_error=False),
            ToolResultPart("call-2", "permission denied", is_error=True),
            ToolCallPart("call-3", "retry", "{}"),
        ),
        name="alice",
        timestamp=T0,
        truncated=True,
        summary_of=("u-1", "u-2"),
        pinned=True,
    )
    event = TurnEvent("e-9", "s-1", 9, TurnEventType.TURN, T0, message=message)
    back = codec.loads(TURN_EVENT, codec.dumps(TURN_EVENT, event)).message
    assert back is not None
    assert back.content == message.content
    assert back.component is Component.PINNED and back.pinned and back.truncated
    assert (back.id, back.role, back.name, back.timestamp) == ("u-9", "user", "alice", T0)
    assert back.summary_of == ("u-1", "u-2")


def test_policy_keeps_int_tokens_and_float_fractions_apart(codec: AvroCodec) -> None:
    policy = Policy(history=2048, pinned=0.2, tool_schemas=0, scratchpad=1.0 - 0.95, critical=1)
    start = SessionStart("claude-sonnet-4", 200_000, policy)
    event = TurnEvent("e-0", "s-2", 0, TurnEventType.SESSION_START, T0, session_start=start)
    back = codec.loads(TURN_EVENT, codec.dumps(TURN_EVENT, event)).session_start
    assert back is not None and back.policy == policy
    for name in ("history", "pinned", "tool_schemas", "scratchpad", "critical", "warn"):
        assert type(getattr(back.policy, name)) is type(getattr(policy, name)), name
    assert back.policy.budgets(200_000).per_component == policy.budgets(200_000).per_component


def test_default_policy_travels_as_an_empty_map() -> None:
    record = TURN_EVENT.to_record(
        TurnEvent(
            "e-0", "s-3", 0, "SESSION_START", T0, session_start=SessionStart("gpt-4o", 128_000)
        )
    )
    assert record["session_start"]["policy"] == {}


def test_command_carries_the_action_and_its_replacement(codec: AvroCodec) -> None:
    command = codec.loads(BUDGET_COMMAND, codec.dumps(BUDGET_COMMAND, truncate_command()))
    assert (command.command_id, command.seq) == ("s-1/7/0", 7)
    action = command.action
    assert (action.kind, action.rule, action.tokens_freed) == (
        ActionKind.TRUNCATE,
        Rule.OVERSIZED_TOOL_RESULT,
        3000,
    )
    assert action.replacement is not None and action.replacement.truncated
    assert action.replacement.tool_call_id == "c-3"


def test_plan_ids_are_deterministic_per_session_seq_and_step() -> None:
    action = Action(ActionKind.DROP, Rule.SLIDING_WINDOW, ("u1",), 10, 5, "old")
    first = BudgetCommand.plan("s-1", 4, [action, action], T0)
    again = BudgetCommand.plan("s-1", 4, [action, action], T0 + 60)
    assert [c.command_id for c in first] == [c.command_id for c in again] == ["s-1/4/0", "s-1/4/1"]


def test_snapshot_keeps_every_component_and_the_level(codec: AvroCodec) -> None:
    sent = snapshot_event()
    record = BUDGET_SNAPSHOT.to_record(sent)
    assert record["level"] == "CRITICAL" and record["utilization"] == sent.snapshot.utilization
    back = codec.loads(BUDGET_SNAPSHOT, codec.dumps(BUDGET_SNAPSHOT, sent)).snapshot
    assert back == sent.snapshot
    assert back.level is AlertLevel.CRITICAL
    assert list(back.components) == list(Component)


def test_dead_letter_keeps_the_original_bytes_and_the_reason(codec: AvroCodec) -> None:
    junk = b"\xc3\x01" + bytes(8) + b"\xff"
    with pytest.raises(DecodeError) as caught:
        codec.loads(TURN_EVENT, junk)
    letter = DeadLetter.of(
        caught.value, topic="agent.turns", partition=0, offset=9, key=None, value=junk, timestamp=T0
    )
    back = codec.loads(DEAD_LETTER, codec.dumps(DEAD_LETTER, letter))
    assert back == letter
    assert back.value == junk and back.key is None and back.error_class == "DecodeError"
    assert "unknown writer schema fingerprint" in back.reason


def test_failed_summary_needs_an_error() -> None:
    with pytest.raises(ValueError, match="FAILED without an error"):
        CompressedHistory("s", "s-1", "c", ("u1",), "llm", SummaryStatus.FAILED, T0)


texts = st.text(max_size=200)


@given(
    content=st.one_of(
        texts,
        st.lists(
            st.one_of(
                st.builds(TextPart, texts),
                st.builds(ToolCallPart, st.text(min_size=1), texts, texts),
                st.builds(ToolResultPart, st.text(min_size=1), texts, st.booleans()),
            ),
            max_size=4,
        ).map(tuple),
    ),
    role=st.sampled_from(["system", "user", "assistant"]),
    pinned=st.booleans(),
    timestamp=st.none() | st.floats(allow_nan=False),
)
def test_any_message_survives_the_wire(
    codec: AvroCodec, content: Any, role: str, pinned: bool, timestamp: float | None
) -> None:
    message = Message(id="m", role=role, content=content, pinned=pinned, timestamp=timestamp)  # type: ignore[arg-type]
    event = TurnEvent("e", "s", 1, TurnEventType.TURN, T0, message=message)
    back = codec.loads(TURN_EVENT, codec.dumps(TURN_EVENT, event)).message
    assert back is not None
    assert message_to_record(back) == message_to_record(message)
    assert back.content == message.content and back.component is message.component


def test_public_names_are_sorted_and_importable() -> None:
    names = streams.codecs.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(streams.codecs, n) for n in names)


def test_commands_written_by_the_first_schema_still_decode(codec: AvroCodec) -> None:
    command = codec.loads(BUDGET_COMMAND, bytes.fromhex(GOLDEN_V1_COMMAND))
    assert command.model is None and command.action.segment == ()
    expected = BUDGET_COMMAND.to_record(truncate_command())
    assert BUDGET_COMMAND.to_record(command) == expected | {"model": None, "segment": []}


def test_a_turn_written_with_the_first_schema_stays_readable(codec: AvroCodec) -> None:
    event = codec.loads(TURN_EVENT, bytes.fromhex(GOLDEN_V1_TURN))
    assert event.usage is None
    assert TURN_EVENT.to_record(event) == TURN_EVENT.to_record(turn())

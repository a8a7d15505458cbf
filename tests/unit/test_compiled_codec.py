"""The compiled fast path against the `avro` package alone: same bytes, same values, same errors.

`AvroCodec(registry)` writes and reads with closures compiled from the schema and falls back to
the `avro` package whenever they are not sure; `AvroCodec(registry, compiled=False)` is the
package alone. Every outcome here must be the same for both: the bytes written, the value read,
or the error (class, message and `kind`).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import json
import math
import random
from collections.abc import Callable, Iterator
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

import pytest
from avro.io import DatumReader, DatumWriter, validate
from avro.schema import ArraySchema, MapSchema, RecordSchema, Schema, UnionSchema, parse

from streams.budget import Message, Policy, TextPart, ToolCallPart, ToolResultPart
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    COMPRESSED_HISTORY,
    DEAD_LETTER,
    RECORD_TYPES,
    TURN_EVENT,
    AvroCodec,
    CompressedHistory,
    DeadLetter,
    RecordType,
    SchemaRegistry,
    SessionStart,
    SummaryStatus,
    TurnEvent,
    TurnEventType,
    Usage,
)
from streams.codecs.compiled import Unsupported, compile_check, compile_reader, compile_writer
from streams.codecs.registry import default_schema_dir
from streams.codecs.single_object import HEADER_SIZE, fingerprint, header
from streams.corpus import generate_conversation
from streams.errors import DecodeError, EncodeError
from tests.unit.test_codecs import GOLDEN_V1_COMMAND, GOLDEN_V1_TURN, SAMPLES
from tests.unit.test_fuzz_codec import valid_events
from tests.unit.test_processor import drive, processor

REGISTRY = SchemaRegistry.load()
FAST = AvroCodec(REGISTRY)
AVRO = AvroCodec(REGISTRY, compiled=False)
T0 = 1_700_000_000.25


# --- material: real records of every type --------------------------------------------------


def _corpus() -> list[tuple[RecordType[Any], Any]]:
    """Two generated sessions through the processor: their events, snapshots and commands."""
    events: list[TurnEvent] = []
    for kind, strategy in (("research", "summarization"), ("coding", "cascade")):
        conversation = generate_conversation(3, turns=30, kind=kind)
        sid = f"{kind}-3"
        start = SessionStart(
            "gpt-4o",
            4000,
            Policy(history=0.3, output_reserve=256),
            str(conversation.messages[0].content),
            tools=({"name": "grep", "parameters": {"type": "object"}},),
            task=conversation.task,
            strategy=strategy,
        )
        events.append(TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, T0, start))
        turns = [m for m in conversation.messages if m.role != "system"]
        events += [
            TurnEvent(f"{sid}/{i}", sid, i, TurnEventType.TURN, T0 + i, message=m)
            for i, m in enumerate(turns, 1)
        ]
    out = drive(processor(), events)
    assert not out.rejected and out.commands and out.snapshots
    answers = [
        CompressedHistory(
            f"sum-{c.command_id}",
            c.session_id,
            c.command_id,
            c.action.message_ids,
            "extractive",
            SummaryStatus.OK,
            T0,
            summary="Backups: nightly, fine. Tickets: CORE-3003 blocked. ✔ naïve 🙂",
            token_count=17,
            source_seq=c.seq,
        )
        for c in out.commands
        if c.action.kind.name == "SUMMARIZE"
    ]
    letters = [
        DeadLetter.of(
            DecodeError("corrupt or truncated body", kind="bad_body"),
            topic="agent.turns",
            partition=p,
            offset=2**40 + p,
            key=None if p % 2 else b"\x00\xffkey",
            value=bytes(range(p * 7 % 256)),
            timestamp=T0,
            source_timestamp=None if p % 3 else T0 - p,
        )
        for p in range(6)
    ]
    return [
        *((TURN_EVENT, e) for e in events),
        *((BUDGET_SNAPSHOT, s) for s in out.snapshots),
        *((BUDGET_COMMAND, c) for c in out.commands),
        *((COMPRESSED_HISTORY, a) for a in answers),
        *((DEAD_LETTER, d) for d in letters),
    ]


def _edge_events() -> list[tuple[RecordType[Any], Any]]:
    """Values at the edges: empty, long, non-ASCII text, negative and large numbers."""
    long_text = "ü" * 70 + "x" * 5000  # a length that takes a multi-byte varint
    start = SessionStart(
        "claude-sonnet-4",
        2**40,
        Policy(history=0.25, output_reserve=2**20, warn=0.8),
        "",
        task=None,
        tokenizer="tok.json",
    )
    message = Message(
        id="m-ü",
        role="user",
        content=(
            TextPart(""),
            TextPart(long_text),
            ToolCallPart("c", "n", "{}"),
            ToolResultPart("c", "🙂", is_error=True),
        ),
        pinned=True,
        timestamp=-1.5,
        truncated=True,
        summary_of=tuple(f"id-{i}" for i in range(70)),
        name="名前",
    )
    return [
        (TURN_EVENT, TurnEvent("e", "s", 2**62, TurnEventType.SESSION_START, 0.0, start)),
        (TURN_EVENT, TurnEvent("e", "s", 64, TurnEventType.TURN, -0.0, message=message)),
        (TURN_EVENT, TurnEvent("e", "s", 63, TurnEventType.TASK_UPDATE, 1e300, task="")),
        (TURN_EVENT, TurnEvent("e", "s", 65, TurnEventType.SESSION_END, T0)),
        (
            TURN_EVENT,
            TurnEvent("e", "s", 9, TurnEventType.USAGE, T0, usage=Usage(2**33, 8, 0, 1)),
        ),
    ]


REAL: list[tuple[RecordType[Any], Any]] = [
    *SAMPLES,
    *((TURN_EVENT, e) for e in valid_events()),
    *_edge_events(),
    *_corpus(),
]
ENCODED: list[tuple[str, bytes]] = [(kind.name, AVRO.dumps(kind, value)) for kind, value in REAL]


def _body(name: str, datum: Any) -> bytes:
    """The compiled writer's bytes, called directly (no fallback to hide behind)."""
    out = bytearray()
    compile_writer(REGISTRY.current(name))(out, datum)
    return bytes(out)


def test_the_material_covers_every_record_type_and_payload() -> None:
    assert {kind.name for kind, _ in REAL} == {kind.name for kind in RECORD_TYPES}
    events = [v for k, v in REAL if k is TURN_EVENT]
    assert {e.type for e in events} == set(TurnEventType)
    assert {type(e.message.content) for e in events if e.message} == {str, tuple}
    commands = [v for k, v in REAL if k is BUDGET_COMMAND]
    assert {c.action.kind.name for c in commands} >= {"DROP", "TRUNCATE", "SUMMARIZE"}
    assert any(c.action.segment for c in commands) and any(c.action.replacement for c in commands)
    assert len(REAL) > 250


# --- (a) real records: same bytes, equal values ----------------------------------------------


def test_every_record_type_compiles_for_both_directions() -> None:
    for kind in RECORD_TYPES:
        FAST.loads(kind, FAST.dumps(kind, next(v for k, v in REAL if k is kind)))
        head, _, _, fast, valid = FAST._writers[kind.name]
        assert fast is not None and valid is not None
        assert FAST._readers[(head[2:], kind.name)][1] is not None
        assert AVRO._writers[kind.name][3] is None  # the comparison codec never compiles


@pytest.mark.parametrize("checked", [False, True])
def test_real_records_encode_to_the_same_bytes(checked: bool) -> None:
    for kind, value in REAL:
        record = kind.to_record(value)
        expected = AVRO.encode(kind.name, record, checked=checked)
        assert FAST.encode(kind.name, record, checked=checked) == expected
        assert _body(kind.name, record) == expected[HEADER_SIZE:]
        assert compile_check(REGISTRY.current(kind.name))(record)


def test_real_records_decode_to_equal_values() -> None:
    for name, data in ENCODED:
        expected = AVRO.decode(data, name)
        assert repr(FAST.decode(data, name)) == repr(expected)  # repr: types and NaN too
        value, end = compile_reader(REGISTRY.current(name))(data, HEADER_SIZE)
        assert end == len(data) and repr(value) == repr(expected)
    for kind, value in REAL:
        data = FAST.dumps(kind, value)
        assert kind.to_record(FAST.loads(kind, data)) == kind.to_record(AVRO.loads(kind, data))


def test_the_fast_path_needs_no_help_from_the_avro_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*args: object) -> None:
        raise AssertionError("the avro package was used")

    codec = AvroCodec(REGISTRY)
    monkeypatch.setattr(DatumWriter, "write_data", boom)
    monkeypatch.setattr(DatumWriter, "write", boom)
    monkeypatch.setattr(DatumReader, "read", boom)
    for kind, value in REAL:
        assert kind.to_record(codec.loads(kind, codec.dumps(kind, value))) == kind.to_record(value)
    for name, data in ENCODED:  # a bytearray or memoryview is read the same
        assert codec.decode(bytearray(data), name) == codec.decode(memoryview(data), name)


# --- (b) mutated bytes: the same value or the same DecodeError --------------------------------


def _decoded(codec: AvroCodec, data: bytes, name: str) -> tuple[str, ...]:
    try:
        return ("value", repr(codec.decode(data, name)))
    except DecodeError as error:
        return ("error", type(error).__name__, str(error), error.kind)


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """A valid encoding, broken: bits flipped, bytes set, cut, inserted, deleted or spliced."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        at = rng.randrange(HEADER_SIZE, max(HEADER_SIZE + 1, len(out)))  # the body
        how = rng.choice(["flip", "set", "cut", "insert", "delete", "splice", "varint", "dup"])
        if how == "flip" and at < len(out):
            out[at] ^= 1 << rng.randrange(8)
        elif how == "set" and at < len(out):
            out[at] = rng.choice((0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif how == "cut":
            del out[at:]
        elif how == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif how == "delete":
            del out[at : at + rng.randint(1, 8)]
        elif how == "splice":
            other = rng.choice(pool)
            out[at:] = other[rng.randrange(HEADER_SIZE, len(other)) :]
        elif how == "varint":  # a long, negative or overlong varint where a length may start
            out[at:at] = rng.choice(
                (
                    b"\xff" * 9 + b"\x01",
                    b"\xff" * 10 + b"\x01",
                    b"\x80" * 9 + b"\x02",
                    b"\x81\x80\x80\x80\x80\x80\x80\x80\x80\x01",
                    b"\x01",
                    b"\x03",
                    b"\x7f",
                    b"\x80\x00",
                )
            )
        elif how == "dup":
            end = min(len(out), at + rng.randint(1, 16))
            out[at:at] = out[at:end]
    return bytes(out)


def test_mutated_bodies_decode_the_same_as_with_the_avro_package() -> None:
    rng = random.Random(20_250_611)
    pools: dict[str, list[bytes]] = {}
    for name, data in ENCODED:
        pools.setdefault(name, []).append(data)
    readers = {name: compile_reader(REGISTRY.current(name)) for name in pools}
    accepted = refused = 0
    for _ in range(6000):
        name, original = rng.choice(ENCODED)
        data = _mutate(rng, original, pools[name])
        expected = _decoded(AVRO, data, name)
        assert _decoded(FAST, data, name) == expected, data.hex()
        try:  # the compiled reader alone: whatever it accepts, avro reads as the same value
            value, end = readers[name](data, HEADER_SIZE)
        except Exception:
            refused += 1
            continue
        if end != len(data):
            refused += 1
            continue
        accepted += 1
        assert expected == ("value", repr(value)), data.hex()
    assert accepted > 400 and refused > 3000  # both ways were exercised


def test_truncations_and_trailing_bytes_are_the_same_decode_errors() -> None:
    for name, data in ENCODED[::7]:
        for end in range(HEADER_SIZE, len(data)):
            assert _decoded(FAST, data[:end], name) == _decoded(AVRO, data[:end], name)
        for extra in (b"\x00", b"\x02abc"):
            outcome = _decoded(FAST, data + extra, name)
            assert outcome == _decoded(AVRO, data + extra, name)
            assert outcome[0] == "error" and "left after the body" in outcome[2]


def _turn_body_prefix() -> bytes:
    """A TURN event whose body starts 02 'e' 02 's' 02 <type> <timestamp: 8> <session_start>."""
    record = {**_turn(), "event_id": "e", "session_id": "s", "seq": 1}
    data = FAST.encode(TURN_EVENT.name, record)
    assert data[HEADER_SIZE : HEADER_SIZE + 6] == b"\x02e\x02s\x02\x02"  # type TURN: 1
    assert data[HEADER_SIZE + 14] == 0  # session_start: the null branch
    return data


@pytest.mark.parametrize(
    ("index", "words"),
    [
        (b"\x01", "branch index -1"),  # zig-zag -1: a negative union index
        (b"\x7f", "branch index -64"),
        (b"\x04", "branch index 2"),  # [null, SessionStart] has no branch 2
        (b"\x80\x01", "branch index 64"),
        (b"\x80" * 9 + b"\x02", "Varint is too long"),  # a 10th byte past bit 63
        (b"\xff" * 10 + b"\x01", "Varint is too long"),  # 11 bytes
        (b"\x81" + b"\x80" * 8 + b"\x01", "branch index -4611686018427387905"),  # 10 bytes: fine
        (b"\x80\x00", "value"),  # a non-canonical 0: avro reads it, so must we
    ],
)
def test_union_indexes_out_of_range_are_refused_as_by_avro(index: bytes, words: str) -> None:
    data = _turn_body_prefix()
    at = HEADER_SIZE + 14
    broken = data[:at] + index + data[at + 1 :]
    outcome = _decoded(FAST, broken, TURN_EVENT.name)
    assert outcome == _decoded(AVRO, broken, TURN_EVENT.name)
    if words == "value":
        assert outcome[0] == "value"
    else:
        assert outcome[0] == "error" and words in outcome[2] and outcome[3] == "bad_body"


@pytest.mark.parametrize("index", [b"\x01", b"\x0a", b"\x7f", b"\xff\x01", b"\x00", b"\x08"])
def test_enum_indexes_out_of_range_are_refused_as_by_avro(index: bytes) -> None:
    data = _turn_body_prefix()
    at = HEADER_SIZE + 5
    broken = data[:at] + index + data[at + 1 :]
    outcome = _decoded(FAST, broken, TURN_EVENT.name)
    assert outcome == _decoded(AVRO, broken, TURN_EVENT.name)
    if index in (b"\x00", b"\x08"):  # SESSION_START, USAGE: symbols (loads would refuse them)
        assert outcome[0] == "value"
    else:
        assert outcome[0] == "error" and "enum index" in outcome[2]


# --- (c) older writer schemas still resolve ----------------------------------------------------


def _fit(schema: Schema, datum: Any) -> Any:
    """`datum` cut down to what an older `schema` has (its fields only)."""
    if isinstance(schema, RecordSchema) and isinstance(datum, dict):
        return {f.name: _fit(f.type, datum.get(f.name)) for f in schema.fields}
    if isinstance(schema, UnionSchema):
        for branch in schema.schemas:
            fitted = _fit(branch, datum)
            if validate(branch, fitted):
                return fitted
    if isinstance(schema, ArraySchema) and isinstance(datum, list):
        return [_fit(schema.items, item) for item in datum]
    if isinstance(schema, MapSchema) and isinstance(datum, dict):
        return {key: _fit(schema.values, value) for key, value in datum.items()}
    return datum


def test_records_of_older_writer_schemas_resolve_through_the_avro_package() -> None:
    history = sorted((default_schema_dir() / "history").glob("*.avsc"))
    assert history
    codec = AvroCodec(REGISTRY)  # a fresh cache: which path each header takes is checked below
    rng = random.Random(11)
    read = 0
    for path in history:
        old = parse(path.read_text())
        name = old.fullname
        assert fingerprint(old) != fingerprint(REGISTRY.current(name))
        producer = SchemaRegistry()
        producer.add(old, current=True)
        writer = AvroCodec(producer)
        for kind, value in REAL:
            if kind.name != name:
                continue
            datum = _fit(old, kind.to_record(value))
            if not validate(old, datum):
                continue  # a value the old schema cannot hold (a USAGE event)
            data = writer.encode(name, datum)
            assert data == AvroCodec(producer, compiled=False).encode(name, datum)
            assert _decoded(codec, data, name) == _decoded(AVRO, data, name)
            assert _decoded(codec, data, name)[0] == "value"
            assert codec._readers[(fingerprint(old), name)][1] is None  # resolution: avro's
            read += 1
            for _ in range(5):
                broken = _mutate(rng, data, [data])
                assert _decoded(codec, broken, name) == _decoded(AVRO, broken, name)
    assert read > 100
    for golden, kind in ((GOLDEN_V1_TURN, TURN_EVENT), (GOLDEN_V1_COMMAND, BUDGET_COMMAND)):
        data = bytes.fromhex(golden)
        assert _decoded(FAST, data, kind.name) == _decoded(AVRO, data, kind.name)
        assert kind.to_record(FAST.loads(kind, data)) == kind.to_record(AVRO.loads(kind, data))


# --- (d) datums that do not fit: the same EncodeError -----------------------------------------


def _encoded(codec: AvroCodec, name: str, datum: Any, checked: bool) -> tuple[Any, ...]:
    try:
        return ("bytes", codec.encode(name, datum, checked=checked))
    except Exception as error:  # EncodeError, or what avro lets through (OverflowError, ...)
        return ("error", type(error).__name__, str(error))


def _turn() -> dict[str, Any]:
    return TURN_EVENT.to_record(next(v for k, v in SAMPLES if k is TURN_EVENT))


def _start() -> dict[str, Any]:
    return TURN_EVENT.to_record(next(v for _, v in SAMPLES if getattr(v, "session_start", None)))


def _with(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    record = copy.deepcopy(record)
    *parents, last = path.split("/")
    node: Any = record
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return record


_DELETE = object()
WRONG: list[tuple[str, Callable[[], dict[str, Any]], str, Any]] = [
    ("seq as a str", _turn, "seq", "seven"),
    ("seq as a float", _turn, "seq", 7.0),
    ("seq as None", _turn, "seq", None),
    ("an unknown enum symbol", _turn, "type", "HELLO"),
    ("an enum symbol in lower case", _turn, "type", "turn"),
    ("a missing field without default", _turn, "session_id", _DELETE),
    ("a missing field with a default", _turn, "task", _DELETE),  # written as null: fine
    ("timestamp as a str", _turn, "message/timestamp", "yesterday"),
    ("pinned as an int", _turn, "message/pinned", 1),
    ("content as an int", _turn, "message/content", 5),
    ("a part that is no record", _turn, "message/content/0", "text"),
    ("a part with an unknown key", _turn, "message/content/0", {"text": "a", "x": 1}),
    ("an empty part", _turn, "message/content/0", {}),
    ("a part missing a field", _turn, "message/content/1", {"id": "c", "name": "n"}),
    ("summary_of as a str", _turn, "message/summary_of", "ab"),  # in a union: validated
    ("summary_of with an int", _turn, "message/summary_of", ["a", 1]),
    ("a message as a list", _turn, "message", ["m"]),
    ("a message with an unknown key", _turn, "message/colour", "red"),
    ("a policy with a str value", _start, "session_start/policy/history", "lots"),
    ("a policy with a bool value", _start, "session_start/policy/history", True),
    ("a policy with an int key", _start, "session_start/policy", {1: 0.5}),
    ("a policy as a list", _start, "session_start/policy", [("history", 0.5)]),
    ("a long too large", _turn, "seq", 2**63),
    ("a long too small", _turn, "seq", -(2**63) - 1),
    ("a double too large", _turn, "timestamp", 10**400),
    ("a lone surrogate", _turn, "event_id", "\ud800"),
    ("bytes for a string", _turn, "event_id", b"e-1"),
    (
        "a record as a MappingProxy",
        _start,
        "session_start",
        MappingProxyType(_start()["session_start"]),
    ),
]


@pytest.mark.parametrize(("what", "base", "path", "value"), WRONG, ids=[w[0] for w in WRONG])
@pytest.mark.parametrize("checked", [False, True])
def test_datums_that_do_not_fit_give_the_same_outcome(
    what: str, base: Callable[[], dict[str, Any]], path: str, value: Any, checked: bool
) -> None:
    datum = _with(base(), path, value)
    outcome = _encoded(FAST, TURN_EVENT.name, datum, checked)
    assert outcome == _encoded(AVRO, TURN_EVENT.name, datum, checked)
    fits = what in ("a missing field with a default", "a policy with a bool value")  # bool: an int
    if fits or (not checked and what in ("a long too large", "a long too small")):
        assert outcome[0] == "bytes"  # what the avro package accepts (write_data checks no range)
    elif what != "a double too large":  # OverflowError from struct, as from the avro package
        assert outcome[:2] == ("error", "EncodeError"), outcome


def test_an_int_out_of_range_for_int_is_an_encode_error_when_checked() -> None:
    record = DEAD_LETTER.to_record(next(v for k, v in REAL if k is DEAD_LETTER))
    for partition in (2**31, -(2**31) - 1, True, 3.0):
        datum = {**record, "partition": partition}
        for checked in (False, True):
            outcome = _encoded(FAST, DEAD_LETTER.name, datum, checked)
            assert outcome == _encoded(AVRO, DEAD_LETTER.name, datum, checked)
        refused = _encoded(FAST, DEAD_LETTER.name, datum, True)[:2] == ("error", "EncodeError")
        assert refused == (partition is not True)  # True is an int in range, to avro too
        written = _encoded(FAST, DEAD_LETTER.name, datum, False)[0] == "bytes"
        assert written == (partition != 3.0)  # an unchecked write checks the type, not the range
    with pytest.raises(EncodeError, match="/partition = 2147483648 \\(int\\) is not a valid int"):
        FAST.encode(DEAD_LETTER.name, {**record, "partition": 2**31})


class Level(StrEnum):
    OK = "OK"
    WARN = "warn"


class Small(IntEnum):
    ONE = 1


WEIRD: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    63,
    64,
    -65,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    2**70,
    Small.ONE,
    0.5,
    -0.0,
    math.nan,
    math.inf,
    "",
    "x",
    "TURN",
    "OK",
    "DROP",
    Level.OK,
    Level.WARN,
    "é🙂",
    "\udcff",
    b"",
    b"x",
    bytearray(b"x"),
    [],
    ["a"],
    [1],
    ("t",),
    {},
    {"text": "x"},
    {"id": "c", "name": "n", "arguments": "{}"},
    {"tool_call_id": "c", "content": "r", "is_error": False},
    {"a": 1},
    {1: 2},
    {"history": 0.5, "output_reserve": 100},
    {"history": True},
    MappingProxyType({"text": "x"}),
]


def _weird(rng: random.Random) -> Any:
    value = rng.choice(WEIRD)
    return copy.deepcopy(value) if isinstance(value, list | dict) else value  # never shared


def _positions(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a nested record where a value can be replaced, deleted or added."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _positions(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*path, i)
            yield from _positions(value, (*path, i))


def _mangle(rng: random.Random, record: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(record)
    for _ in range(rng.choice((1, 1, 2))):
        *parents, last = rng.choice(list(_positions(record)))
        node: Any = record
        for key in parents:
            node = node[key]
        how = rng.random()
        if how < 0.75:
            node[last] = _weird(rng)
        elif how < 0.85 and isinstance(node, dict):
            del node[last]
        elif isinstance(node, dict):
            node[rng.choice(("extra", "text", "model", 7))] = _weird(rng)
        elif isinstance(node[last], list):
            node[last] = tuple(node[last])
    return record


def test_mangled_datums_encode_the_same_as_with_the_avro_package() -> None:
    rng = random.Random(611)
    base = [(kind.name, kind.to_record(value)) for kind, value in REAL[:120] + REAL[-40:]]
    written = refused = 0
    for _ in range(2500):
        name, record = rng.choice(base)
        datum = _mangle(rng, record)
        checked = rng.random() < 0.5
        outcome = _encoded(FAST, name, datum, checked)
        assert outcome == _encoded(AVRO, name, datum, checked), (datum, checked)
        if outcome[0] == "bytes":
            written += 1
        else:
            refused += 1
    assert written > 300 and refused > 300


# --- every kind of schema the closures know, and the ones they leave to avro -----------------

SINK = {
    "type": "record",
    "name": "Sink",
    "namespace": "test.compiled",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "s", "type": "string"},
        {"name": "y", "type": "bytes"},
        {"name": "x", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {
            "name": "e",
            "type": {
                "type": "enum",
                "name": "Colour",
                "symbols": ["RED", "GREEN", "BLUE"],
                "default": "RED",
            },
        },
        {"name": "m", "type": {"type": "map", "values": ["null", "int", "string"]}},
        {
            "name": "u",
            "type": [
                "null",
                "boolean",
                "int",
                "long",
                "float",
                "double",
                "bytes",
                "string",
                {"type": "array", "items": "long"},
                {"type": "map", "values": "double"},
                "Colour",
                "Four",
                {
                    "type": "record",
                    "name": "Point",
                    "fields": [
                        {"name": "px", "type": "int"},
                        {"name": "py", "type": "int", "default": 0},
                    ],
                },
            ],
        },
        {"name": "points", "type": {"type": "array", "items": "Point"}},
        {"name": "empty", "type": {"type": "record", "name": "Empty", "fields": []}},
    ],
}
UNION_VALUES: list[Any] = [
    None,
    True,
    5,
    -(2**40),
    2**63,
    0.25,
    b"ab",
    b"abcd",
    "s",
    "GREEN",
    [1, 2],
    {"k": 1.5},
    {"k": 1},
    {"px": 1, "py": 2},
    {"px": 1},
    {},
]


def _sink(rng: random.Random) -> dict[str, Any]:
    return {
        "i": rng.choice((0, -1, 2**31 - 1, -(2**31), rng.randint(-1000, 1000))),
        "l": rng.choice((0, 2**63 - 1, -(2**63), rng.randint(-(2**40), 2**40))),
        "f": rng.choice((0.0, 1.5, -2.0, 3, 1e-45, math.inf)),
        "d": rng.choice((0.0, -0.0, 1e300, math.nan, 7, rng.random())),
        "b": rng.random() < 0.5,
        "s": rng.choice(("", "x", "naïve 🙂", "z" * 200)),
        "y": rng.randbytes(rng.randint(0, 70)),
        "x": rng.randbytes(4),
        "e": rng.choice(("RED", "GREEN", "BLUE")),
        "m": {f"k{j}": rng.choice((None, j, f"v{j}", True)) for j in range(rng.randint(0, 4))},
        "u": rng.choice(UNION_VALUES),
        "points": [{"px": j, "py": -j} for j in range(rng.randint(0, 3))],
        "empty": {},
    }


@pytest.fixture(scope="module")
def sink() -> tuple[AvroCodec, AvroCodec]:
    registry = SchemaRegistry()
    registry.add(parse(json.dumps(SINK)), current=True)
    return AvroCodec(registry), AvroCodec(registry, compiled=False)


def test_every_kind_of_schema_is_written_and_read_the_same(
    sink: tuple[AvroCodec, AvroCodec],
) -> None:
    fast, avro = sink
    name = "test.compiled.Sink"
    rng = random.Random(3)
    encoded = []
    for _ in range(600):
        datum = _sink(rng)
        for checked in (False, True):
            outcome = _encoded(fast, name, datum, checked)
            assert outcome == _encoded(avro, name, datum, checked), datum
        if outcome[0] == "bytes":
            encoded.append(outcome[1])
    assert len(encoded) > 300
    pool = list(encoded)
    for data in encoded:
        assert _decoded(fast, data, name) == _decoded(avro, data, name)
        for _ in range(8):
            broken = _mutate(rng, data, pool)
            assert _decoded(fast, broken, name) == _decoded(avro, broken, name), broken.hex()
    for _ in range(1500):
        datum = _mangle(rng, _sink(rng))
        checked = rng.random() < 0.5
        assert _encoded(fast, name, datum, checked) == _encoded(avro, name, datum, checked)


def test_an_enum_index_past_the_symbols_is_the_default_via_avro() -> None:
    schema = {
        "type": "record",
        "name": "Pick",
        "namespace": "test.compiled",
        "fields": [
            {"name": "e", "type": {"type": "enum", "name": "AB", "symbols": ["A", "B"]}},
            {
                "name": "d",
                "type": {"type": "enum", "name": "CD", "symbols": ["C", "D"], "default": "C"},
            },
        ],
    }
    registry = SchemaRegistry()
    registry.add(parse(json.dumps(schema)), current=True)
    fast, avro = AvroCodec(registry), AvroCodec(registry, compiled=False)
    name = "test.compiled.Pick"
    head = fast.encode(name, {"e": "A", "d": "D"})[:HEADER_SIZE]
    for body in (b"\x02\x02", b"\x02\x04", b"\x02\x01", b"\x04\x00", b"\x01\x00"):
        assert _decoded(fast, head + body, name) == _decoded(avro, head + body, name)
    assert fast.decode(head + b"\x02\x04", name) == {"e": "B", "d": "C"}  # 2: the default
    assert _decoded(fast, head + b"\x04\x00", name)[0] == "error"  # no default: refused


LEFT_TO_AVRO: list[dict[str, Any]] = [
    {
        "type": "record",
        "name": "D",
        "namespace": "test.compiled",
        "fields": [{"name": "day", "type": {"type": "int", "logicalType": "date"}}],
    },
    {
        "type": "record",
        "name": "Node",
        "namespace": "test.compiled",
        "fields": [
            {"name": "value", "type": "long"},
            {"name": "next", "type": ["null", "Node"]},
        ],
    },
    {
        "type": "record",
        "name": "Money",
        "namespace": "test.compiled",
        "fields": [
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            }
        ],
    },
]


@pytest.mark.parametrize("schema", LEFT_TO_AVRO, ids=["date", "recursive", "decimal"])
def test_what_the_closures_do_not_specialize_is_left_to_avro(schema: dict[str, Any]) -> None:
    parsed = parse(json.dumps(schema))
    with pytest.raises(Unsupported):
        compile_writer(parsed)
    with pytest.raises(Unsupported):
        compile_reader(parsed)
    registry = SchemaRegistry()
    registry.add(parsed, current=True)
    fast, avro = AvroCodec(registry), AvroCodec(registry, compiled=False)
    name = parsed.fullname
    datum = {
        "D": {"day": datetime.date(2024, 6, 11)},
        "Node": {"value": 1, "next": {"value": 2, "next": None}},
        "Money": {"amount": decimal.Decimal("12.34")},
    }[schema["name"]]
    data = fast.encode(name, datum)
    assert data == avro.encode(name, datum)
    assert fast.decode(data, name) == avro.decode(data, name) == datum
    assert fast._writers[name][3] is None
    assert fast._readers[(data[2:HEADER_SIZE], name)][1] is None


def test_a_collection_limit_in_the_environment_is_left_to_avro(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = FAST.dumps(*next((k, v) for k, v in REAL if k is BUDGET_SNAPSHOT))
    monkeypatch.setenv("AVRO_MAX_COLLECTION_ITEMS", "2")
    outcome = _decoded(FAST, data, BUDGET_SNAPSHOT.name)
    assert outcome == _decoded(AVRO, data, BUDGET_SNAPSHOT.name)
    assert outcome[0] == "error" and "more than 2 elements" in outcome[2]


def test_the_header_is_the_avro_codecs() -> None:
    for kind in RECORD_TYPES:
        value = next(v for k, v in REAL if k is kind)
        data = FAST.dumps(kind, value)
        assert data[:HEADER_SIZE] == header(fingerprint(REGISTRY.current(kind.name)))


def test_arrays_of_items_that_take_no_bytes_are_read_by_avro() -> None:
    schema = {
        "type": "record",
        "name": "Nulls",
        "namespace": "test.compiled",
        "fields": [
            {"name": "nulls", "type": {"type": "array", "items": "null"}},
            {"name": "tail", "type": "string"},
        ],
    }
    registry = SchemaRegistry()
    registry.add(parse(json.dumps(schema)), current=True)
    fast, avro = AvroCodec(registry), AvroCodec(registry, compiled=False)
    name = "test.compiled.Nulls"
    for count in (0, 1, 5):
        datum = {"nulls": [None] * count, "tail": "t"}
        data = fast.encode(name, datum)
        assert data == avro.encode(name, datum)
        assert fast.decode(data, name) == avro.decode(data, name) == datum
    head = data[:HEADER_SIZE]
    for body in (b"\x03\x00\x00\x02t", b"\x03\x02\x00\x02t", b"\xfe\x0f\x00\x02t"):
        assert _decoded(fast, head + body, name) == _decoded(avro, head + body, name)

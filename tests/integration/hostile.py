"""Hostile and broken `agent.turns` records for the fuzz test, by category, from a fixed seed.

Every builder returns `Record`s (category, key, value). Whether the worker must dead-letter one
is not decided here: the test runs every record through the same decoder and turn processor
locally (`Oracle`), and the worker must agree with it record for record.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from avro.io import BinaryEncoder, DatumWriter
from avro.schema import parse

from streams.budget import Action, ActionKind, BudgetManager, LexicalScorer, Message, Policy, Rule
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    DEAD_LETTER,
    TURN_EVENT,
    BudgetCommand,
    BudgetSnapshot,
    DeadLetter,
    SessionStart,
    TurnEvent,
    TurnEventType,
    default_codec,
)
from streams.codecs.single_object import HEADER_SIZE, fingerprint, header
from streams.codecs.turns import turn_event_to_record
from streams.errors import DecodeError, TokenBudgetError
from streams.processors.limits import Limits
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor

CODEC = default_codec()


@dataclass(frozen=True)
class Record:
    """One record to publish, and what kind of input it is."""

    category: str
    key: bytes | None
    value: bytes | None


def encode(event: TurnEvent) -> Record:
    """A valid event as its record (keyed by its session)."""
    return Record("valid", event.session_id.encode(), CODEC.dumps(TURN_EVENT, event))


def raw(category: str, record: dict, key: bytes = b"raw") -> Record:
    """A TurnEvent wire record that fits the schema but need not be valid."""
    return Record(category, key, CODEC.encode("TurnEvent", record))


def turn(sid: str, seq: int, content: str, **kw: object) -> TurnEvent:
    message = Message(id=f"{sid}/m{seq}", role="user", content=content, **kw)  # type: ignore[arg-type]
    return TurnEvent(f"{sid}/{seq}", sid, seq, TurnEventType.TURN, 1.0, message=message)


def start(sid: str, model: str = "gpt-4o", limit: int = 8000, **kw: object) -> TurnEvent:
    session = SessionStart(model, limit, Policy(), "You are an agent.", **kw)  # type: ignore[arg-type]
    return TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=session)


def record_of(event: TurnEvent) -> dict:
    return turn_event_to_record(event)


# -- undecodable ---------------------------------------------------------------------------
def random_bytes(rng: random.Random, n: int) -> list[Record]:
    sizes = [0, 1, 2, 9, 10, 11, 64, 300, 2000]
    return [Record("random_bytes", b"junk", rng.randbytes(rng.choice(sizes))) for _ in range(n)]


def random_body(rng: random.Random, n: int, valid: bytes) -> list[Record]:
    head = valid[:HEADER_SIZE]  # a TurnEvent header, then garbage
    return [
        Record("random_body", b"junk", head + rng.randbytes(rng.randint(1, 400))) for _ in range(n)
    ]


def truncated(rng: random.Random, n: int, valid: list[bytes]) -> list[Record]:
    out = []
    for _ in range(n):
        data = rng.choice(valid)
        out.append(
            Record("truncated_avro", b"cut", data[: rng.randint(HEADER_SIZE, len(data) - 1)])
        )
    return out


def wrong_schema(n: int) -> list[Record]:
    """Valid Avro of other records: a snapshot, a command, a dead letter."""
    snapshot = BudgetSnapshot.of("x", 0, "gpt-4o", BudgetManager("gpt-4o", 1000).snapshot([]), 0.0)
    letter = DeadLetter("e", "r", "E", "t", 0, 0, None, b"v", 0.0)
    action = Action(ActionKind.DROP, Rule.SLIDING_WINDOW, ("m",), 10, 5, "window")
    command = BudgetCommand("w/0/0", "w", 0, action, 0.0)
    values = [
        CODEC.dumps(BUDGET_SNAPSHOT, snapshot),
        CODEC.dumps(DEAD_LETTER, letter),
        CODEC.dumps(BUDGET_COMMAND, command),
    ]
    return [Record("wrong_schema", b"w", values[i % len(values)]) for i in range(n)]


def _schema_variant(change: Callable[[list[dict]], list[dict]]) -> object:
    schema = CODEC.registry.current("TurnEvent").to_json()
    schema["fields"] = change(list(schema["fields"]))
    return parse(json.dumps(schema))


def _write(schema: object, datum: dict) -> bytes:
    out = io.BytesIO()
    out.write(header(fingerprint(schema)))  # type: ignore[arg-type]
    DatumWriter(schema).write(datum, BinaryEncoder(out))
    return out.getvalue()


def missing_and_extra_fields(n: int) -> list[Record]:
    """Writer schemas with a field less or more (unknown fingerprints), records missing what
    their type needs, and valid bodies with bytes after them."""
    base = record_of(turn("x", 1, "hello"))
    fewer = _schema_variant(lambda fields: [f for f in fields if f["name"] != "timestamp"])
    extra = _schema_variant(lambda fields: [*fields, {"name": "priority", "type": "int"}])
    variants = [
        Record(
            "missing_field",
            b"x",
            _write(fewer, {k: v for k, v in base.items() if k != "timestamp"}),
        ),
        Record("extra_field", b"x", _write(extra, base | {"priority": 3})),
        raw("missing_field", base | {"message": None}),
        raw("missing_field", base | {"event_id": ""}),
        raw("missing_field", record_of(start("x")) | {"session_start": None}),
        raw("missing_field", base | {"type": "USAGE"}),
        Record("extra_field", b"x", CODEC.dumps(TURN_EVENT, turn("x", 1, "hi")) + b"\x02\x04"),
    ]
    return [variants[i % len(variants)] for i in range(n)]


def bad_numbers(n: int) -> list[Record]:
    base = record_of(turn("x", 1, "hello"))
    begin = record_of(start("x"))
    usage = {"prompt_tokens": -5, "completion_tokens": 0, "context_seq": 0, "context_tokens": 1}
    variants = [
        raw("bad_number", base | {"seq": -1}),
        raw("bad_number", base | {"seq": -(2**63)}),
        raw(
            "bad_number", begin | {"session_start": begin["session_start"] | {"context_limit": -8}}
        ),
        raw("bad_number", begin | {"session_start": begin["session_start"] | {"context_limit": 0}}),
        raw("bad_number", base | {"type": "USAGE", "message": None, "usage": usage}),
        raw(
            "bad_number",
            begin | {"session_start": begin["session_start"] | {"policy": {"history": -0.5}}},
        ),
    ]
    return [variants[i % len(variants)] for i in range(n)]


def invalid_utf8(rng: random.Random, n: int) -> list[Record]:
    out = []
    for i in range(n):
        marker = "Ω" * 6  # 12 bytes to overwrite with invalid UTF-8
        event = turn(f"utf-{i}", 1, f"text {marker} more") if i % 2 else start(f"utf{marker}{i}")
        data = CODEC.dumps(TURN_EVENT, event)
        bad = bytes(rng.choice([0xFF, 0xFE, 0xC0, 0x80]) for _ in range(12))
        out.append(Record("invalid_utf8", b"utf", data.replace(marker.encode(), bad, 1)))
    return out


def invalid_values(n: int) -> list[Record]:
    base = record_of(turn("x", 1, "hello"))
    begin = record_of(start("x"))
    message = base["message"]
    variants = [
        raw("invalid_value", base | {"message": message | {"role": "wizard"}}),
        raw("invalid_value", base | {"message": message | {"component": "memory"}}),
        raw("invalid_value", base | {"message": message | {"role": "tool"}}),
        raw("invalid_value", base | {"message": message | {"id": ""}}),
        raw(
            "invalid_value",
            begin | {"session_start": begin["session_start"] | {"strategy": "yolo"}},
        ),
        raw(
            "invalid_value",
            begin | {"session_start": begin["session_start"] | {"tool_schemas": ["{not json"]}},
        ),
        raw("invalid_value", begin | {"session_start": begin["session_start"] | {"model": ""}}),
        raw("invalid_value", base | {"session_id": "a\x1fm:b"}),
        raw("invalid_value", base | {"message": message | {"id": "m" * 600}}),
    ]
    return [variants[i % len(variants)] for i in range(n)]


def never_started(n: int) -> list[Record]:
    records = [encode(turn(f"ghost-{i}", 1 + i % 3, "anyone there?")) for i in range(n)]
    return [Record("never_started", r.key, r.value) for r in records]


def mutated(rng: random.Random, n: int) -> list[Record]:
    """Valid events of throwaway sessions with bytes flipped; some still decode."""
    out = []
    for i in range(n):
        sid = f"chaff-{i % 50}"
        event = start(sid) if i < 50 else turn(sid, 1 + i // 50, f"chaff {i} " * rng.randint(1, 20))
        data = bytearray(CODEC.dumps(TURN_EVENT, event))
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(HEADER_SIZE, len(data))] ^= 1 << rng.randrange(8)
        try:  # a mutation that still decodes keeps per-session order: key it by its session
            key = CODEC.loads(TURN_EVENT, bytes(data)).session_id.encode()
        except DecodeError:
            key = sid.encode()
        out.append(Record("mutated", key, bytes(data)))
    return out


# -- the oracle ------------------------------------------------------------------------------
@dataclass
class Oracle:
    """The decoder and the turn processor, run locally over the same records in order."""

    limits: Limits
    processor: TurnProcessor = field(init=False)
    out: dict[str, Outputs] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    ignored: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.processor = TurnProcessor(SessionStore({}, LexicalScorer()), limits=self.limits)

    def feed(self, records: list[Record]) -> None:
        """Predict each record's fate: `reasons[i]` for a dead letter, `i in ignored` for a
        redelivery (a seq at or below its session's cursor)."""
        for i, record in enumerate(records):
            try:
                self.limits.check_event_size(record.key, record.value)
                event = CODEC.loads(TURN_EVENT, record.value)  # type: ignore[arg-type]
            except (DecodeError, TokenBudgetError) as error:
                self.reasons[i] = _reason(error)
                continue
            out = self.out.setdefault(event.session_id, Outputs())
            rejected, duplicates = len(out.rejected), out.duplicates
            self.processor.handle(event, out)
            if out.duplicates > duplicates:
                self.ignored.add(i)
            for _, error in out.rejected[rejected:]:
                self.reasons[i] = _reason(error)

    def sessions(self) -> Iterator[str]:
        """Sessions the oracle sent snapshots for."""
        return (sid for sid, out in self.out.items() if out.snapshots)


def _reason(error: BaseException) -> str:
    """The reason the worker's dead letter gives for `error`."""
    return DeadLetter.of(
        error, topic="", partition=0, offset=0, key=None, value=b"", timestamp=0.0
    ).reason

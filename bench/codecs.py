"""Throughput of the Avro codecs on a typical turn (a ~500-character user message).

The pipeline must take more than 2,000 turns/s on 2 cores, i.e. about 1,000 turns/s per core.
Per turn the worker decodes one TurnEvent and encodes one BudgetSnapshot (commands are rarer), so
the per-turn line below is the codec's share of that budget. Printed in ops/s (best of 3):

- `uncached`: what a naive codec does per message: parse the schema, build a DatumWriter or
  DatumReader, then write or read;
- `encode`/`decode`: the cached codec on plain dicts (`encode` validates the whole datum first);
- `dumps`/`loads`: the typed path (`TurnEvent` ↔ bytes, mapping and validation included;
  `dumps` skips avro's redundant whole-datum validation pass, values are still type-checked).

These use the codec as the worker does, on its fast path (the schemas compiled to closures,
`streams.codecs.compiled`). The last block times the same operations on the `avro` package alone
(`AvroCodec(registry, compiled=False)`, what the fast path falls back to) and the speed-up.

Run: `.venv/bin/python bench/codecs.py [--quick]`
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

from avro.io import BinaryDecoder, BinaryEncoder, DatumReader, DatumWriter
from avro.schema import parse

from streams.budget import Ledger, Message, Policy
from streams.codecs import (
    BUDGET_SNAPSHOT,
    TURN_EVENT,
    AvroCodec,
    BudgetSnapshot,
    SchemaRegistry,
    TurnEvent,
    TurnEventType,
)
from streams.codecs.single_object import HEADER_SIZE, header

PROSE = "The budget worker keeps an exact, per-session ledger of tokens by component. " * 8


def typical_turn(i: int) -> TurnEvent:
    """A user turn of about 500 characters."""
    text = f"Turn {i}. {PROSE}"[:500]
    message = Message(id=f"msg-{i}", role="user", content=text, timestamp=1.7e9 + i)
    return TurnEvent(f"evt-{i}", "session-42", i, TurnEventType.TURN, 1.7e9 + i, message=message)


def rate(fn: Callable[[], object], n: int) -> float:
    """Best of three runs of `n` calls, in calls per second."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    """Print ops/s for each path and the per-turn codec budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    n = 500 if parser.parse_args().quick else 5000

    registry = SchemaRegistry.load()
    codec = AvroCodec(registry)
    package = AvroCodec(registry, compiled=False)
    event = typical_turn(7)
    record = TURN_EVENT.to_record(event)
    data = codec.dumps(TURN_EVENT, event)
    schema_json = codec.registry.current("TurnEvent").canonical_form
    budgets = Policy().budgets(128_000)
    counted = [Message(id=f"m{i}", role="user", content="x", token_count=120) for i in range(40)]
    snapshot = BudgetSnapshot.of(
        "session-42", 7, "gpt-4o", Ledger.of(budgets, counted).snapshot(estimated=False), 1.7e9
    )
    snapshot_record = BUDGET_SNAPSHOT.to_record(snapshot)
    assert codec.dumps(BUDGET_SNAPSHOT, snapshot) == package.dumps(BUDGET_SNAPSHOT, snapshot)
    assert codec.decode(data, "TurnEvent") == package.decode(data, "TurnEvent")

    def uncached_encode() -> bytes:
        schema = parse(schema_json)
        out = io.BytesIO()
        out.write(header(schema.fingerprint()))
        DatumWriter(schema).write(record, BinaryEncoder(out))
        return out.getvalue()

    def uncached_decode() -> object:
        schema = parse(schema_json)
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        return DatumReader(schema, schema).read(BinaryDecoder(body))

    print(
        f"typical TurnEvent: {len(event.message.content)} characters of content, "  # type: ignore[union-attr]
        f"{len(data)} bytes on the wire"
    )
    rows = [
        ("uncached encode", rate(uncached_encode, n // 10)),
        ("uncached decode", rate(uncached_decode, n // 10)),
        ("encode (dict, validated)", rate(lambda: codec.encode("TurnEvent", record), n)),
        ("decode (dict)", rate(lambda: codec.decode(data, "TurnEvent"), n)),
        ("dumps TurnEvent", rate(lambda: codec.dumps(TURN_EVENT, event), n)),
        ("loads TurnEvent", rate(lambda: codec.loads(TURN_EVENT, data), n)),
        ("dumps BudgetSnapshot", rate(lambda: codec.dumps(BUDGET_SNAPSHOT, snapshot), n)),
    ]
    for name, ops in rows:
        print(f"{name:<28} {ops:>10,.0f} ops/s  {1e6 / ops:8.1f} µs")
    found = dict(rows)
    per_turn = 1 / found["loads TurnEvent"] + 1 / found["dumps BudgetSnapshot"]
    print(
        f"{'per turn (loads + snapshot)':<28} {1 / per_turn:>10,.0f} turns/s per core "
        f"{per_turn * 1e6:8.1f} µs = {per_turn * 1000 * 100:.0f}% of a core at 1,000 turns/s"
    )
    print(
        f"{'round trip TurnEvent':<28} "
        f"{1 / (1 / found['dumps TurnEvent'] + 1 / found['loads TurnEvent']):>10,.0f} ops/s"
    )

    def snapshot_encode(c: AvroCodec) -> Callable[[], bytes]:
        return lambda: c.encode("BudgetSnapshot", snapshot_record, checked=False)

    def turn_decode(c: AvroCodec) -> Callable[[], object]:
        return lambda: c.decode(data, "TurnEvent")

    print("\ncompiled closures vs the avro package alone (what the fast path falls back to):")
    pairs = [
        ("decode TurnEvent (dict)", turn_decode),
        ("encode BudgetSnapshot (dict)", snapshot_encode),
        ("encode TurnEvent (validated)", lambda c: lambda: c.encode("TurnEvent", record)),
        ("loads TurnEvent", lambda c: lambda: c.loads(TURN_EVENT, data)),
        ("dumps TurnEvent", lambda c: lambda: c.dumps(TURN_EVENT, event)),
        ("dumps BudgetSnapshot", lambda c: lambda: c.dumps(BUDGET_SNAPSHOT, snapshot)),
    ]
    compared: dict[str, tuple[float, float]] = {}
    for name, make in pairs:
        fast, slow = rate(make(codec), n), rate(make(package), n)
        compared[name] = fast, slow
        print(
            f"{name:<28} compiled {fast:>9,.0f} ops/s {1e6 / fast:7.1f} µs   "
            f"avro package {slow:>8,.0f} ops/s {1e6 / slow:7.1f} µs   {fast / slow:4.1f}x"
        )
    for label, names in (
        ("per turn, codec only", ("decode TurnEvent (dict)", "encode BudgetSnapshot (dict)")),
        ("per turn (loads + snapshot)", ("loads TurnEvent", "dumps BudgetSnapshot")),
    ):
        fast_us = sum(1e6 / compared[name][0] for name in names)
        slow_us = sum(1e6 / compared[name][1] for name in names)
        print(
            f"{label:<28} compiled {fast_us:7.1f} µs   avro package {slow_us:7.1f} µs   "
            f"saves {slow_us - fast_us:.1f} µs per turn"
        )


if __name__ == "__main__":
    main()

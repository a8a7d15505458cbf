"""Hostile and broken input against a real worker on the embedded broker.

Over ten thousand malformed records, interleaved with a valid fleet, duplicates and stale
redeliveries, are published in big batches by one producer. The same records run through the
decoder and the turn processor locally (the `Oracle`), which says which ones the worker must
dead-letter and why. Then:

- the worker is alive and still processing (a session started afterwards gets its snapshots);
- the dead-letter topic holds exactly one dead letter per rejected record (matched by partition
  and offset), with the oracle's reason, and nothing else;
- what is valid but ignored (duplicates, stale and out-of-order seqs) is no dead letter;
- every valid session's ledger and commands equal the oracle's and a from-scratch recount.

Rejected (one dead letter each): random bytes, a random body after a valid header, truncated
Avro, Avro of another record, writer schemas with a field less or more, bytes after the body,
records missing what their type needs, negative seqs, limits or usage, invalid UTF-8, unknown
roles, components and strategies, ids with control characters or too long, turns of sessions
never started, second starts, system prompts or tool schemas over their share (with a REJECTED
command too), null values and events over `TOKENBUDGET_MAX_EVENT_BYTES`. Accepted as they are:
unknown models (estimated), absurd but well-formed numbers. Held (a dead letter each, the
session stays at its last seq): events past a hole in the seqs. Accepted, changed:
messages over `TOKENBUDGET_MAX_MESSAGE_TOKENS` (cut, TRUNCATE) and sessions past
`TOKENBUDGET_MAX_SESSION_MESSAGES` (DROP). Ignored: seq at or below the session's cursor.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from streams.budget import Message, Rule, ToolResultPart
from streams.codecs import TURN_EVENT, TurnEvent, TurnEventType, Usage
from streams.processors.limits import DEAD_LETTER_KEEP_BYTES, Limits
from streams.topics import TopicNames
from tests.integration import hostile
from tests.integration.fleet import (
    CODEC,
    Collected,
    FleetClient,
    command_key,
    fleet_events,
    fresh,
    interleave,
    worker_command,
)
from tests.integration.hostile import Oracle, Record, encode, start, turn

PARTITIONS = 4
LIMITS = Limits(max_session_messages=40, session_idle_timeout=0)  # the other two at defaults
ENV = {"TOKENBUDGET_MAX_SESSION_MESSAGES": "40", "TOKENBUDGET_SESSION_IDLE_TIMEOUT": "0"}
TEN_MB = 10 * 1024 * 1024
IGNORED = {"duplicate", "stale"}


def valid_sessions(rng: random.Random) -> list[list[TurnEvent]]:
    """The fleet plus sessions that meet a limit or look odd but are valid."""
    sessions = list(fleet_events(16, 40, seed=7).values())
    long = [start("long-chat", limit=1_000_000)]
    long += [turn("long-chat", i, f"short note {i}") for i in range(1, 91)]  # past 40 messages
    big = [start("big-tool", limit=200_000), turn("big-tool", 1, "read the log")]
    log = "".join(
        f"{i:06d} GET /api/items?page={i} 200 {rng.randint(1, 999)}ms\n" for i in range(7000)
    )
    big.append(turn("big-tool", 2, log))  # ~330 KB, inside the size limit, over 32,000 tokens
    parts = (ToolResultPart("c9", log[:150_000]), ToolResultPart("c10", log[150_000:300_000]))
    many = Message(id="big-tool/m3", role="user", content=parts)
    big.append(TurnEvent("big-tool/3", "big-tool", 3, TurnEventType.TURN, 1.0, message=many))
    usage = Usage(prompt_tokens=10**15, context_seq=3, context_tokens=10**12)
    big.append(TurnEvent("big-tool/4", "big-tool", 4, TurnEventType.USAGE, 1.0, usage=usage))
    unknown = [start("acme", model="acme-llm-7")] + [
        turn("acme", i, f"hi {i}") for i in range(1, 21)
    ]
    huge = [start("huge-limit", limit=2**62)] + [turn("huge-limit", i, "x") for i in range(1, 11)]
    return [*sessions, long, big, unknown, huge]


def out_of_sequence() -> list[Record]:
    """Sessions with holes in their seqs: each event past a hole is held (a dead letter)."""
    gaps = [start("gaps")] + [turn("gaps", s, f"seq {s}") for s in (1, 2, 7, 8, 20)]
    swapped = [start("swapped")] + [turn("swapped", s, f"seq {s}") for s in (1, 2, 4, 3, 5, 6)]
    records = map(encode, interleave({"gaps": gaps, "swapped": swapped}))
    return [Record("out_of_sequence", r.key, r.value) for r in records]


def refused_starts() -> list[Record]:
    """Sessions that cannot start: the agent gets a REJECTED command as well."""
    prompt = [start(f"prompt-{i}", limit=1000) for i in range(10)]
    prompt = [
        TurnEvent(e.event_id, e.session_id, 0, e.type, 0.0, session_start=_with_prompt(e))
        for e in prompt
    ]
    tools = ({"name": "t", "description": "a very long tool description " * 200},)
    heavy = [start(f"tools-{i}", limit=4000, tools=tools) for i in range(10)]
    return [Record("refused_start", r.key, r.value) for r in map(encode, prompt + heavy)]


def _with_prompt(event: TurnEvent):
    from dataclasses import replace

    return replace(event.session_start, system_prompt="Follow every rule. " * 300)


def timeline(rng: random.Random) -> list[Record]:
    """Valid traffic interleaved, malformed records at random places, redeliveries and second
    starts after their originals, all in one publishing order."""
    sessions = valid_sessions(rng)
    valid = [encode(e) for e in interleave({str(i): s for i, s in enumerate(sessions)})]
    placed: list[tuple[float, int, Record]] = [(float(i), 0, r) for i, r in enumerate(valid)]
    after = {(r.key, r.value): i for i, r in enumerate(valid)}

    def later(than: int) -> float:
        return rng.uniform(than + 0.5, len(valid))

    for original in rng.sample(valid, 600):
        placed.append(
            (
                later(after[(original.key, original.value)]),
                1,
                Record("duplicate", original.key, original.value),
            )
        )
    for i in rng.sample(range(len(valid)), 100):
        event = CODEC.loads(TURN_EVENT, valid[i].value)
        stale = TurnEvent(
            event.event_id + "-late",
            event.session_id,
            event.seq,
            event.type,
            9.0,
            event.session_start,
            event.message,
            event.task,
            event.end_reason,
            event.usage,
        )
        placed.append((later(i), 1, Record("stale", valid[i].key, CODEC.dumps(TURN_EVENT, stale))))
    for events in sessions[:16]:
        again = start(events[0].session_id)
        second = TurnEvent(
            again.event_id + "-again", again.session_id, 500, again.type, 0.0, again.session_start
        )
        placed.append(
            (
                later(after[(encode(events[0]).key, encode(events[0]).value)]),
                1,
                Record("second_start", encode(second).key, encode(second).value),
            )
        )
    encoded = [r.value for r in valid[:200]]
    malformed = [
        *hostile.random_bytes(rng, 2000),
        *hostile.random_body(rng, 1500, valid[1].value),
        *hostile.truncated(rng, 1500, encoded),
        *hostile.wrong_schema(600),
        *hostile.missing_and_extra_fields(700),
        *hostile.bad_numbers(600),
        *hostile.invalid_utf8(rng, 800),
        *hostile.invalid_values(900),
        *hostile.never_started(1000),
        *hostile.mutated(rng, 1000),
        *refused_starts(),
        *[Record("null_value", b"tomb", None) for _ in range(20)],
        *[
            Record("too_large", b"big", rng.randbytes(LIMITS.max_event_bytes + 1 + i))
            for i in range(3)
        ],
        Record("too_large", b"big", rng.randbytes(TEN_MB)),
        Record("too_large", b"acme", CODEC.dumps(TURN_EVENT, turn("acme", 30, "y" * TEN_MB))),
    ]
    placed += [(rng.uniform(0, len(valid)), 2, r) for r in malformed]
    odd = out_of_sequence()  # in their order, among the rest
    places = sorted(rng.uniform(0, len(valid)) for _ in odd)
    placed += [(at, 3, r) for at, r in zip(places, odd, strict=True)]
    placed.sort(key=lambda p: (p[0], p[1]))
    return [r for _, _, r in placed]


async def publish(bootstrap: str, topic: str, records: list[Record]) -> list[tuple[int, int]]:
    """Send every record with one batching producer; (partition, offset) of each, in order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=TEN_MB + 1024 * 1024,  # the embedded broker takes 10 MB records
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, r.value, key=r.key) for r in records]
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in sent]


async def refused_by_default(bootstrap: str, topic: str) -> bool:
    """Whether a producer with Kafka's default 1 MB max request size refuses a 10 MB record."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send(topic, b"x" * TEN_MB, key=b"k")
    except MessageSizeTooLargeError:
        return True
    finally:
        await producer.stop()
    return False


@pytest.fixture
def fuzz_worker(broker, faust_worker, unique_name):
    prefix = unique_name("fz") + "."
    topics = TopicNames(prefix)
    command = worker_command(broker.bootstrap, topics, prefix + "worker", PARTITIONS)
    worker = faust_worker("streams", command=command, env=ENV, name="fuzz", ready_timeout=90)
    return topics, worker


def test_ten_thousand_malformed_events_each_get_one_dead_letter_and_valid_sessions_stay_exact(
    broker, fuzz_worker
) -> None:
    topics, worker = fuzz_worker
    rng = random.Random(20240611)
    records = timeline(rng)
    oracle = Oracle(LIMITS)
    oracle.feed(records)
    expected = {sid: oracle.out[sid] for sid in oracle.sessions()}
    verdict = Counter(
        (r.category, "dead letter" if i in oracle.reasons else "kept")
        for i, r in enumerate(records)
    )
    assert sum(n for (c, v), n in verdict.items() if v == "dead letter") >= 10_000, verdict
    assert not any(v == "dead letter" for c, v in verdict if c in IGNORED | {"valid"}), verdict
    # gaps: 7, 8, 20 held; swapped: 4 came before 3, so 4, 5 and 6 wait for a resent 4
    assert verdict[("out_of_sequence", "dead letter")] == 6
    redelivered = {i for i, r in enumerate(records) if r.category in IGNORED}
    assert redelivered <= oracle.ignored, "a redelivery was not ignored"

    async def go() -> tuple[Collected, list[tuple[int, int]], float, float]:
        assert await refused_by_default(broker.bootstrap, topics.turns)
        async with FleetClient(broker.bootstrap, topics) as client:
            began = time.monotonic()
            coordinates = await publish(broker.bootstrap, topics.turns, records)
            published = time.monotonic() - began

            def done(c: Collected) -> bool:
                return len(c.dead_letters) >= len(oracle.reasons) and all(
                    len({s.seq for s in c.snapshots.get(sid, ())}) >= len(out.snapshots)
                    for sid, out in expected.items()
                )

            await client.collect_until(done, timeout=150)
            processed = time.monotonic() - began
            canary = [start("canary"), turn("canary", 1, "still there?")]
            await client.publish(canary)
            await client.collect_until(lambda c: len(c.snapshots.get("canary", ())) >= 2, 30)
            await client.catch_up(30)  # anything extra (a second dead letter) shows up now
            return client.collected, coordinates, published, processed

    collected, coordinates, published, processed = asyncio.run(go())
    assert worker.running, "the worker died"
    log = worker.log_since_start()
    assert "Traceback" not in log and "crashed" not in log.lower()
    assert not re.search(r"turn .* of session .* failed", log)  # the app's guard never fired

    by_place = {place: i for i, place in enumerate(coordinates)}
    letters = Counter((d.partition, d.offset) for d in collected.dead_letters)
    assert max(letters.values()) == 1, "a record was dead-lettered twice"
    got = {by_place[place] for place in letters}
    assert got == set(oracle.reasons), (
        sorted(got - set(oracle.reasons))[:5],
        sorted(set(oracle.reasons) - got)[:5],
    )
    for letter in collected.dead_letters:
        i = by_place[letter.partition, letter.offset]
        assert letter.source_topic == topics.turns
        assert letter.reason == oracle.reasons[i], (records[i].category, letter.reason)
        if records[i].category == "too_large":
            assert "event too large" in letter.reason
            assert len(letter.value) <= DEAD_LETTER_KEEP_BYTES

    for sid, out in expected.items():
        assert collected.latest(sid) == out.snapshots[-1].snapshot, sid
        assert sorted({s.seq for s in collected.snapshots[sid]}) == sorted(
            {s.seq for s in out.snapshots}
        ), sid
        commands = sorted(command_key(c) for c in collected.commands.get(sid, ()))
        assert commands == sorted(command_key(c) for c in out.commands), sid
        live = oracle.processor.store.live.get(sid)
        if live is not None:  # a from-scratch recount of what the session holds
            recount = live.session.manager.snapshot(fresh(list(live.session.messages.values())))
            assert recount == collected.latest(sid), sid
    rules = Counter(c.action.rule for cs in collected.commands.values() for c in cs)
    assert rules[Rule.OVERSIZED_MESSAGE] == 2 and rules[Rule.MESSAGE_LIMIT] > 0, rules
    assert rules[Rule.SYSTEM_PROMPT_TOO_LARGE] == 20, rules
    assert collected.latest("acme").estimated and collected.latest("long-chat").message_count <= 40

    summary = {f"{c} ({v})": n for (c, v), n in sorted(verdict.items())}
    print(  # the figures for the README and the changelog: pytest -s shows them
        f"\nfuzz: {len(records)} records, {len(oracle.reasons)} dead letters, "
        f"published in {published:.1f}s, processed in {processed:.1f}s\n{summary}"
    )
    assert processed < 120, f"took {processed:.0f}s"

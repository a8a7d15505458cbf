"""The budget worker on the real embedded broker: exact ledgers, duplicates, dead letters,
two workers, and recovery after SIGKILL. Real Faust worker processes, real aiokafka clients."""

from __future__ import annotations

import os
import random
import re
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.broker import free_port
from streams.budget import BudgetManager, Message, Session
from streams.codecs import BUDGET_SNAPSHOT, TURN_EVENT, TurnEvent, TurnEventType
from streams.topics import TopicNames
from tests.integration.fleet import (
    CODEC,
    Collected,
    FleetClient,
    command_key,
    fleet_events,
    fresh,
    interleave,
    replay,
    run,
    worker_command,
)

PARTITIONS = 4


@pytest.fixture
def pipeline(broker, faust_worker, unique_name) -> Callable[..., object]:
    """Start budget workers on fresh topics: `pipeline(n)` → (topics, [workers])."""
    prefix = unique_name("tb") + "."
    topics = TopicNames(prefix)
    app_id = prefix + "worker"

    def start(
        count: int = 1, env: dict[str, str] | None = None, **kw: object
    ) -> tuple[TopicNames, list[object]]:
        command = worker_command(broker.bootstrap, topics, app_id, PARTITIONS, **kw)
        workers = [
            faust_worker("streams", command=command, name=f"budget{i}", ready_timeout=90, env=env)
            for i in range(count)
        ]
        return topics, workers

    return start


def exchange(
    broker, topics: TopicNames, events: list, done: Callable[[Collected], bool], timeout: float
) -> Collected:
    """Publish `events`, then read the output topics until `done(collected)`."""

    async def go() -> Collected:
        async with FleetClient(broker.bootstrap, topics) as client:
            await client.publish(events)
            await client.collect_until(done, timeout=timeout)
            return client.collected

    return run(go())  # type: ignore[return-value]


def all_snapshots(expected: dict[str, object]) -> Callable[[Collected], bool]:
    def done(collected: Collected) -> bool:
        return all(
            len({s.seq for s in collected.snapshots.get(sid, ())}) >= e.snapshots  # type: ignore[attr-defined]
            for sid, e in expected.items()
        )

    return done


def assert_exact(
    collected: Collected, expected: dict[str, object], events, *, in_order: bool = True
) -> None:
    """Every session's final ledger and commands equal the core's replay and a recount."""
    for sid, e in expected.items():
        seqs = [s.seq for s in collected.snapshots[sid]]
        assert set(seqs) == set(range(e.snapshots)), sid  # type: ignore[attr-defined]
        if in_order:  # after a crash, at-least-once may repeat a few snapshots
            assert seqs == sorted(seqs), sid
        assert collected.latest(sid) == e.snapshot, sid  # type: ignore[attr-defined]
        commands = sorted({command_key(c) for c in collected.commands.get(sid, ())})
        assert commands == sorted(set(e.commands)), sid  # type: ignore[attr-defined]
        # an agent applying the commands to its own history ends with what the ledger says
        start = events[sid][0].session_start
        agent = Session(BudgetManager(start.model, start.context_limit, start.policy))
        agent.add(Message(id=f"{sid}/system", role="system", content=start.system_prompt))
        by_seq: dict[int, list] = {}
        for command in collected.commands.get(sid, ()):
            by_seq.setdefault(command.seq, []).append(command.action)
        for event in events[sid][1:]:
            agent.add(fresh([event.message])[0])
            agent.apply(by_seq.get(event.seq, []))
        recount = agent.manager.snapshot(fresh(list(agent.messages.values())))
        assert recount == collected.latest(sid), sid


def test_fifty_sessions_stay_exact_and_commands_fire_at_thresholds(broker, pipeline) -> None:
    topics, _ = pipeline()
    fleet = fleet_events(50, 40)
    expected = replay(interleave(fleet))
    assert sum(len(e.commands) for e in expected.values()) > 50  # thresholds are crossed

    collected = exchange(broker, topics, interleave(fleet), all_snapshots(expected), 180)
    assert_exact(collected, expected, fleet)
    assert all(len(collected.snapshots[sid]) == 41 for sid in fleet)  # no duplicates either
    assert collected.dead_letters == []


@pytest.mark.parametrize("window", ["0", "0.05"])
def test_micro_batches_fill_from_a_backlog_and_lose_and_reorder_nothing(
    broker, pipeline, window
) -> None:
    # Three turns per micro-batch: the backlog of a burst fills batch after batch (the stream
    # waits for each to be handled); a window makes a batch wait for more after its first turn.
    port = free_port()
    topics, _ = pipeline(
        env={"TOKENBUDGET_BATCH_SIZE": "3", "TOKENBUDGET_BATCH_WINDOW": window},
        metrics_port=port,
    )
    fleet = fleet_events(8, 20, seed=2)
    expected = replay(interleave(fleet))

    collected = exchange(broker, topics, interleave(fleet), all_snapshots(expected), 120)
    assert_exact(collected, expected, fleet)
    assert all(len(collected.snapshots[sid]) == 21 for sid in fleet)
    sizes = batch_sizes(port)  # the backlog of the burst filled batches, never past 3
    print(f"\nmicro-batches by size, window {window} s: {sizes}")
    assert sizes[3.0] > 0 and sizes[float("inf")] == 0, sizes
    assert sum(size * n for size, n in sizes.items() if size <= 3) >= 8 * 21


def batch_sizes(port: int) -> dict[float, int]:
    """The worker's micro-batches by size (the `tokenbudget_batch_turns` buckets, de-cumulated)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    cumulative = {
        float(sample.labels["le"]): int(sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "tokenbudget_batch_turns"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    out, below = {}, 0
    for bound in sorted(cumulative):
        out[bound] = cumulative[bound] - below
        below = cumulative[bound]
    return out


def test_duplicates_and_redeliveries_change_nothing(broker, pipeline) -> None:
    topics, _ = pipeline()
    fleet = fleet_events(6, 30, seed=1)
    ordered = interleave(fleet)
    expected = replay(ordered)
    rng = random.Random(3)
    noisy: list[TurnEvent] = []
    for event in ordered:
        noisy.append(event)
        if rng.random() < 0.3:
            noisy.append(event)  # producer retry
    noisy += ordered[: len(ordered) // 2]  # a whole range redelivered

    collected = exchange(broker, topics, noisy, all_snapshots(expected), 120)
    assert_exact(collected, expected, fleet)
    for sid in fleet:
        assert len(collected.snapshots[sid]) == 31


def test_malformed_events_go_to_the_dead_letter_topic_and_valid_sessions_stay_exact(
    broker, pipeline
) -> None:
    topics, _ = pipeline()
    fleet = fleet_events(5, 25, seed=2)
    ordered = interleave(fleet)
    expected = replay(ordered)
    snapshot_bytes = CODEC.dumps(BUDGET_SNAPSHOT, _any_snapshot())
    good = CODEC.dumps(TURN_EVENT, ordered[1])
    bad: list[tuple[bytes, bytes]] = [
        (b"junk-1", os.urandom(64)),
        (b"junk-2", b""),
        (b"junk-3", good[:-7]),  # truncated Avro
        (b"junk-4", snapshot_bytes),  # valid Avro, wrong schema
        (
            b"ghost",
            CODEC.dumps(
                TURN_EVENT,
                TurnEvent(
                    "g/1",
                    "ghost",
                    1,
                    TurnEventType.TURN,
                    0.0,
                    message=Message(id="m", role="user", content="hello?"),
                ),
            ),
        ),
    ]
    mixed: list[object] = []
    for i, event in enumerate(ordered):
        mixed.append(event)
        if i % 20 == 0 and bad:
            mixed.append(bad.pop())

    def done(c: Collected) -> bool:
        return all_snapshots(expected)(c) and len(c.dead_letters) >= 5

    collected = exchange(broker, topics, mixed, done, 120)
    assert_exact(collected, expected, fleet)
    reasons = sorted(d.reason for d in collected.dead_letters)
    assert len(reasons) == 5
    assert any("never started" in r for r in reasons)
    assert any("header" in r or "marker" in r for r in reasons)
    assert all(d.source_topic == topics.turns and d.offset >= 0 for d in collected.dead_letters)


def assigned(worker, topic: str) -> set[int]:
    """The partitions of `topic` the worker's last rebalance gave it (from Faust's log table)."""
    lines = [x for x in worker.log_since_start().splitlines() if f"| {topic} " in x]
    if not lines:
        return set()
    found: set[int] = set()
    for item in re.search(r"\{(.*)\}", lines[-1]).group(1).split(","):
        low, _, high = item.strip().partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def test_two_workers_split_partitions_and_agree_with_one(broker, pipeline, wait_for) -> None:
    topics, workers = pipeline(2)

    def split() -> bool:
        a, b = (assigned(w, topics.turns) for w in workers)
        return bool(a) and bool(b) and not a & b and a | b == set(range(PARTITIONS))

    wait_for(split, timeout=90)
    fleet = fleet_events(12, 30, seed=4)
    expected = replay(interleave(fleet))

    collected = exchange(broker, topics, interleave(fleet), all_snapshots(expected), 180)
    assert_exact(collected, expected, fleet)
    assert split()  # no worker left the group meanwhile


def test_a_killed_worker_recovers_its_tables_from_the_changelog(broker, pipeline, wait_for) -> None:
    # memory store: the tables are rebuilt from the changelog alone. (rocksdb:// is not tested
    # here: Tansu 0.6 under-reports a partition's end offset after multi-record batches, which
    # fails Faust's RocksDB consistency check on restart.)
    topics, (worker,) = pipeline()
    fleet = fleet_events(8, 30, seed=5)
    first = {sid: events[:16] for sid, events in fleet.items()}
    expected_first = replay(interleave(first))
    expected = replay(interleave(fleet))

    exchange(broker, topics, interleave(first), all_snapshots(expected_first), 150)
    worker.kill()
    worker.start()
    worker.wait_ready(90)
    # Publish once the restarted worker holds every partition: Faust 0.15 can skip an event
    # that arrives while a rebalance is still recovering tables (docs/FAUST_ON_TANSU.md).
    wait_for(lambda: assigned(worker, topics.turns) == set(range(PARTITIONS)), timeout=90)
    rest = {sid: events[16:] for sid, events in fleet.items()}
    collected = exchange(broker, topics, interleave(rest), all_snapshots(expected), 150)
    assert_exact(collected, expected, fleet, in_order=False)


def _any_snapshot():
    from streams.budget import BudgetManager
    from streams.codecs import BudgetSnapshot

    snap = BudgetManager("gpt-4o", 1000).snapshot([])
    return BudgetSnapshot.of("x", 0, "gpt-4o", snap, 0.0)

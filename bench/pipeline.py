"""End-to-end throughput and latency of the budget worker on the embedded broker.

One Tansu broker and one `tokenbudget worker` process (4 partitions), as in the demo. For
importance scoring off (`--no-scoring`, lexical ranking), on (the local MiniLM embedder) and on
with static embeddings distilled from it (`TOKENBUDGET_EMBEDDING_STATIC`):

1. throughput: publish N turns of S generated sessions as fast as the producer goes and time
   until the last snapshot arrives (turns/s);
2. latency: publish at a fixed rate below saturation and measure publish → snapshot per turn
   (p50 / p99, same clock on both ends);
3. where the time goes: the same turns through the worker's code path in-process (decode,
   process, encode) under cProfile, top functions by own time;
4. changelog bytes one turn writes, for a 10-message and a 1,000-message session.

Every throughput and latency run starts on a fresh broker with a fresh worker (see `stack`).

Run: `.venv/bin/python bench/pipeline.py [--quick]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.broker import EmbeddedBroker, end_offsets, free_port
from streams.budget import LexicalScorer, Message, Policy
from streams.codecs import (
    BUDGET_SNAPSHOT,
    TURN_EVENT,
    SessionStart,
    TurnEvent,
    TurnEventType,
    default_codec,
)
from streams.corpus import generate_conversation
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor
from streams.topics import TopicNames
from streams.worker import command_line

CODEC = default_codec()
ROOT = Path(__file__).resolve().parents[1]


def sessions(count: int, turns: int, tag: str) -> list[list[TurnEvent]]:
    """Generated sessions: a start and `turns` turns each, ids unique per run."""
    out = []
    for n in range(count):
        sid = f"{tag}-{n:04d}"
        conversation = generate_conversation(seed=n, turns=turns)
        messages = [m for m in conversation.messages if m.role != "system"][:turns]
        start = SessionStart(
            "gpt-4o", 8000, Policy(), "You are a careful agent.", task=conversation.task
        )
        events = [
            TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=start)
        ]
        events += [
            TurnEvent(f"{sid}/{i + 1}", sid, i + 1, TurnEventType.TURN, 0.0, message=m)
            for i, m in enumerate(messages)
        ]
        out.append(events)
    return out


def interleave(groups: list[list[TurnEvent]]) -> list[TurnEvent]:
    """Round-robin across sessions, each in order."""
    out = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def stamped(event: TurnEvent) -> bytes:
    """The event's bytes with the publish time in its timestamp."""
    return CODEC.dumps(
        TURN_EVENT,
        TurnEvent(
            event.event_id,
            event.session_id,
            event.seq,
            event.type,
            time.time(),
            event.session_start,
            event.message,
            event.task,
            event.end_reason,
        ),
    )


class Worker:
    """A `tokenbudget worker` subprocess."""

    def __init__(
        self, bootstrap: str, prefix: str, scoring: bool, workdir: Path, static: bool = False
    ) -> None:
        self.log = workdir / f"worker-{prefix}log"
        args = command_line(
            bootstrap,
            topic_prefix=prefix,
            app_id=prefix + "app",
            data_dir=str(workdir / f"{prefix}data"),
            web_port=free_port(),
            scoring=scoring,
            loglevel="warn",
        )
        env = os.environ | ({"TOKENBUDGET_EMBEDDING_STATIC": "true"} if static else {})
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def wait_ready(bootstrap: str, topics: TopicNames, timeout: float = 120) -> None:
    """Publish a probe session until its snapshot comes back (worker joined and processing)."""
    probe = sessions(1, 0, "probe")[0][0]
    consumer = AIOKafkaConsumer(
        topics.events, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    deadline = time.monotonic() + timeout
    try:
        await producer.send_and_wait(topics.turns, stamped(probe), key=probe.session_id.encode())
        while time.monotonic() < deadline:
            if await consumer.getmany(timeout_ms=500):
                return
        raise SystemExit("the worker did not answer within the deadline")
    finally:
        await producer.stop()
        await consumer.stop()


async def drive(
    bootstrap: str, topics: TopicNames, events: list[TurnEvent], rate: float | None
) -> tuple[float, list[float]]:
    """Publish `events` (at `rate`/s, or flat out) and wait for every snapshot.

    Returns the wall time from first publish to last snapshot and the per-turn latencies.
    """
    want = {(e.session_id, e.seq) for e in events}
    consumer = AIOKafkaConsumer(
        topics.events,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        group_id=None,
        fetch_max_wait_ms=20,  # a long poll held open would be measured as latency
    )
    await consumer.start()
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=2 if rate else 20, max_batch_size=1 << 20
    )
    await producer.start()
    latencies: list[float] = []
    published: dict[tuple[str, int], float] = {}
    started = time.time()

    async def publish() -> None:
        for i, event in enumerate(events):
            if rate:
                delay = started + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            data = stamped(event)
            published[(event.session_id, event.seq)] = time.time()
            await producer.send(topics.turns, data, key=event.session_id.encode())
        await producer.flush()

    sender = asyncio.create_task(publish())
    while want:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        now = time.time()
        for records in batch.values():
            for record in records:
                snap = CODEC.loads(BUDGET_SNAPSHOT, record.value)
                key = (snap.session_id, snap.seq)
                if key in want:
                    want.discard(key)
                    latencies.append(now - published[key])
        if time.time() - started > 600:
            raise SystemExit(f"{len(want)} snapshots missing after 600 s")
    elapsed = time.time() - started
    await sender
    await producer.stop()
    await consumer.stop()
    return elapsed, latencies


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; this process when None)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process."""
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def profile(events: list[TurnEvent], scoring: bool) -> str:
    """Top functions by own time for the worker's per-turn code path, in-process."""
    from streams.app import prime_batch

    scorer = LexicalScorer()
    if scoring:
        from streams.adapters.embedding import default_scorer

        scorer = default_scorer()
    processor = TurnProcessor(SessionStore({}, scorer))
    processor.handle(sessions(1, 1, "warm")[0][0], Outputs())  # one-time loads stay out
    data = [CODEC.dumps(TURN_EVENT, e) for e in events]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for chunk in range(0, len(data), 256):
        decoded = [CODEC.loads(TURN_EVENT, d) for d in data[chunk : chunk + 256]]
        known = {
            sid: (live.session.task, live.start.strategy or processor.default_strategy)
            for sid, live in processor.store.live.items()
        }
        prime_batch(decoded, scorer, known, processor.default_strategy)
        for event in decoded:
            out = Outputs()
            processor.handle(event, out)
            for snapshot in out.snapshots:
                CODEC.dumps(BUDGET_SNAPSHOT, snapshot)
    profiler.disable()
    elapsed = time.perf_counter() - started
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    lines = [x for x in text.getvalue().splitlines() if x.strip()][-13:]
    return f"in-process: {len(events) / elapsed:.0f} turns/s\n" + "\n".join(lines)


async def changelog_bytes(bootstrap: str, prefix: str, topics: TopicNames) -> dict[int, int]:
    """Bytes the worker's changelogs grow by for one more turn of a 10 / 1,000-message session."""
    changelogs = [f"{prefix}app-sessions-changelog"]
    out = {}
    for length in (10, 1000):
        sid = f"long-{length}"
        start = SessionStart("gpt-4o", 10_000_000, Policy(), "You are a careful agent.")
        body = "a steady stream of agent chatter about the build and the deploy " * 3
        events = [
            TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=start)
        ]
        events += [
            TurnEvent(
                f"{sid}/{i}",
                sid,
                i,
                TurnEventType.TURN,
                0.0,
                message=Message(id=f"m{i}", role="user", content=body),
            )
            for i in range(1, length + 1)
        ]
        await drive(bootstrap, topics, events[:-1], None)
        before = await _bytes(bootstrap, changelogs)
        await drive(bootstrap, topics, events[-1:], None)
        await asyncio.sleep(1.5)  # the changelog producer flushes on its own schedule
        out[length] = await _bytes(bootstrap, changelogs) - before
    return out


async def _bytes(bootstrap: str, topics: list[str]) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    total = 0
    try:
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in (consumer.partitions_for_topic(t) or range(4))
        ]
        consumer.assign(parts)
        ends = await end_offsets(bootstrap, parts)
        pending = {tp for tp in parts if ends[tp] > 0}
        await consumer.seek_to_beginning(*parts)
        while pending:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break
            for tp, records in batch.items():
                total += sum(len(r.key or b"") + len(r.value or b"") for r in records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return total


@contextlib.asynccontextmanager
async def stack(
    workdir: Path, prefix: str, scoring: bool, static: bool
) -> AsyncIterator[tuple[EmbeddedBroker, Worker, TopicNames]]:
    """A fresh broker and one worker, warmed up with 200 turns.

    Each measurement gets its own: Tansu's in-memory engine spends more CPU per fetched record
    as a partition fills up (`bench/tansu_fetch.py`), so a run on a broker that already holds
    earlier runs' records would measure the broker's history, not the worker. The warm-up keeps
    first-call costs (the model's first batches above all) out of the figures.
    """
    with EmbeddedBroker(log_path=workdir / f"broker-{prefix}log") as broker:
        topics = TopicNames(prefix)
        worker = Worker(broker.bootstrap, prefix, scoring, workdir, static)
        try:
            await wait_ready(broker.bootstrap, topics)
            await drive(broker.bootstrap, topics, interleave(sessions(10, 20, "warm")), None)
            yield broker, worker, topics
        finally:
            worker.stop()


async def bench(args: argparse.Namespace) -> None:
    """Run every measurement and print the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    count, turns = (50, 40) if args.quick else (200, 50)
    scored = (20, 40) if args.quick else (40, 40)  # the model bounds this run: keep it short
    runs = {"off": [(False, False)], "on": [(True, False)], "static": [(True, True)]}
    for scoring, static in runs.get(args.only, [(False, False), (True, False), (True, True)]):
        label = "scoring on " if scoring else "scoring off"
        label += " (static embeddings)" if static else ""
        n, length = scored if scoring and not static else (count, turns)
        prefix = f"bench{int(scoring)}{int(static)}."
        async with stack(workdir, prefix, scoring, static) as (broker, worker, topics):
            events = interleave(sessions(n, length, f"t{prefix}"))
            pids = {"worker": worker.process.pid, "broker": broker.pid, "bench": None}
            before = cpu_split(pids)
            elapsed, _ = await drive(broker.bootstrap, topics, events, None)
            spent = {k: v - before[k] for k, v in cpu_split(pids).items()}
            throughput = len(events) / elapsed
            print(
                f"{label}: {len(events)} turns in {elapsed:.1f} s = {throughput:.0f} turns/s",
                flush=True,
            )
            print(
                f"{label}: CPU per turn: "
                + ", ".join(f"{k} {v / len(events) * 1e6:.0f} µs" for k, v in spent.items())
                + f" (2 cores = {2e6 / throughput:.0f} µs per turn at this rate)",
                flush=True,
            )
            if not scoring:
                grown = await changelog_bytes(broker.bootstrap, prefix, topics)
                print(
                    f"changelog bytes for one turn: 10-message session {grown[10]} B, "
                    f"1,000-message session {grown[1000]} B",
                    flush=True,
                )
        for share in (0.25, 0.5):  # of the throughput just measured
            rate = max(20.0, round(throughput * share, -1))
            async with stack(workdir, f"{prefix}{share}.", scoring, static) as (broker, _, topics):
                events = interleave(sessions(n // 2, length, f"l{share}{prefix}"))
                events = events[: int(rate * (10 if args.quick else 20))]
                _, latencies = await drive(broker.bootstrap, topics, events, rate)
            print(
                f"{label}: at {rate:.0f} turns/s ({share:.0%} of that), publish → "
                f"snapshot p50 {statistics.median(latencies) * 1000:.1f} ms, p99 "
                f"{percentile(latencies, 0.99) * 1000:.1f} ms",
                flush=True,
            )
        if not static:
            print(profile(interleave(sessions(40, 40, "p")), scoring), flush=True)


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sessions, shorter runs")
    parser.add_argument(
        "--only",
        choices=("off", "on", "static"),
        help="one run only: scoring off, on (the model), or on with TOKENBUDGET_EMBEDDING_STATIC",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    asyncio.run(bench(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: a small agent fleet through the embedded broker, a budget worker and the
summarizer.

Starts Tansu on a free loopback port, one `tokenbudget worker` and one `tokenbudget summarizer`
process, publishes generated research and coding sessions a round of turns at a time, like
agents that pause for their LLM calls (one session with a system prompt over its share),
follows the snapshots, commands, summaries and dead letters live, and prints a report. Every
process it started is stopped on the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.broker import EmbeddedBroker, free_port
from streams.budget import ActionKind, BudgetManager, Message, Policy
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    COMPRESSED_HISTORY,
    DEAD_LETTER,
    TURN_EVENT,
    SessionStart,
    TurnEvent,
    TurnEventType,
    default_codec,
)
from streams.corpus import generate_fleet
from streams.report import bar
from streams.summarizer.service import command_line as summarizer_command_line
from streams.topics import TopicNames
from streams.worker import command_line

CODEC = default_codec()


def fleet(sessions: int, turns: int, seed: int) -> dict[str, list[TurnEvent]]:
    """Generated sessions as turn events; the last one has a system prompt over its share."""
    out: dict[str, list[TurnEvent]] = {}
    for n, conversation in enumerate(generate_fleet(sessions, turns, seed)):
        sid = f"agent-{n:02d}-{conversation.kind}"
        prompt = "You are a careful agent. Cite sources. " * (400 if n == sessions - 1 else 1)
        limit = (6_000, 8_000, 12_000)[n % 3]
        start = SessionStart("gpt-4o", limit, Policy(), prompt, task=conversation.task)
        events = [
            TurnEvent(
                f"{sid}/0", sid, 0, TurnEventType.SESSION_START, time.time(), session_start=start
            )
        ]
        messages = [m for m in conversation.messages if m.role != "system"][:turns]
        events += [
            TurnEvent(f"{sid}/{i + 1}", sid, i + 1, TurnEventType.TURN, time.time(), message=m)
            for i, m in enumerate(messages)
        ]
        out[sid] = events
    return out


def unmanaged_overflows(events: list[TurnEvent]) -> int:
    """LLM calls (before each assistant turn) whose full history exceeds the context limit."""
    start = events[0].session_start
    assert start is not None
    manager = BudgetManager(start.model, start.context_limit, start.policy)
    total = manager.count(Message(id="s", role="system", content=start.system_prompt)) + 3
    overflows = 0
    for event in events[1:]:
        assert event.message is not None
        if event.message.role == "assistant" and total > start.context_limit:
            overflows += 1
        total += manager.count(event.message.uncounted())
    return overflows


class Progress:
    """What has come back so far."""

    def __init__(self) -> None:
        self.snapshots: dict[str, list] = {}
        self.rules: Counter[str] = Counter()
        self.letters: list = []
        self.received = 0
        self.asked = 0
        self.answered = 0
        self.applied = 0

    def take(self, topics: TopicNames, topic: str, value: bytes) -> None:
        """Account for one record of an output topic."""
        if topic == topics.events:
            snap = CODEC.loads(BUDGET_SNAPSHOT, value)
            self.snapshots.setdefault(snap.session_id, []).append(snap)
            self.received += 1
        elif topic == topics.commands:
            action = CODEC.loads(BUDGET_COMMAND, value).action
            asked = action.kind is ActionKind.SUMMARIZE and action.replacement is None
            applied = action.kind is ActionKind.SUMMARIZE and not asked
            label = " (asked for)" if asked else " (applied)" if applied else ""
            self.rules[f"{action.kind.value} {action.rule.value}{label}"] += 1
            self.asked += asked
            self.applied += applied
        elif topic == topics.compressed:
            CODEC.loads(COMPRESSED_HISTORY, value)
            self.answered += 1
        else:
            self.letters.append(CODEC.loads(DEAD_LETTER, value))

    def line(self) -> str:
        """The live progress line: counts and the three fullest sessions."""
        hottest = sorted(
            ((s[-1].snapshot.utilization, sid) for sid, s in self.snapshots.items()),
            reverse=True,
        )[:3]
        return (
            f"  {self.received:>5} snapshots · {sum(self.rules.values()):>4} commands · "
            f"summaries {self.applied}/{self.asked} · "
            + "  ".join(f"{sid[:8]} {bar(u, 10)} {u:>4.0%}" for u, sid in hottest)
        )


async def follow(
    bootstrap: str,
    topics: TopicNames,
    sessions: dict[str, list[TurnEvent]],
    timeout: float,
    pace: float = 0.3,
) -> Progress:
    """Publish the fleet a round at a time, `pace` seconds apart, and read everything back,
    with a live progress line; then wait (briefly) for the summaries still in flight."""
    want_snapshots = sum(len(e) for sid, e in sessions.items() if not sid.endswith("rejected"))
    want_letters = sum(len(e) for sid, e in sessions.items() if sid.endswith("rejected"))
    consumer = AIOKafkaConsumer(
        topics.events,
        topics.commands,
        topics.compressed,
        topics.dead_letters,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_wait_ms=20,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    progress = Progress()
    queues = [list(e) for e in sessions.values()]
    live = sys.stdout.isatty()
    started = time.monotonic()
    last_line = 0.0

    async def read(wait: float) -> None:
        nonlocal last_line
        batch = await consumer.getmany(timeout_ms=int(wait * 1000))
        for tp, records in batch.items():
            for record in records:
                progress.take(topics, tp.topic, record.value)
        now = time.monotonic()
        if now - last_line > (0.2 if live else 5.0):
            last_line = now
            print(("\r" if live else "") + progress.line(), end="" if live else "\n", flush=True)
        if now - started > timeout:
            raise TimeoutError(f"only {progress.received} snapshots arrived in {timeout:.0f} s")

    try:
        while any(queues):  # a round of turns, like a fleet of agents between LLM calls
            for queue in queues:
                if queue:
                    event = queue.pop(0)
                    await producer.send(
                        topics.turns, CODEC.dumps(TURN_EVENT, event), key=event.session_id.encode()
                    )
            await producer.flush()
            round_end = time.monotonic() + pace
            while time.monotonic() < round_end:
                await read(max(0.01, round_end - time.monotonic()))
        while progress.received < want_snapshots or len(progress.letters) < want_letters:
            await read(0.2)
        grace = time.monotonic() + 20  # summaries still being written
        while progress.answered < progress.asked and time.monotonic() < grace:
            await read(0.2)
        settle = time.monotonic() + 2  # the worker applying the last answers
        while time.monotonic() < settle:
            await read(0.2)
    finally:
        if live:
            print("\r" + progress.line())
        await producer.stop()
        await consumer.stop()
    return progress


def run_stream_demo(sessions: int = 12, turns: int = 40, seed: int = 7) -> int:
    """Run the streaming demo; returns the exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="tokenbudget-demo-"))
    generated = fleet(sessions, turns, seed)
    rejected = list(generated)[-1]  # an agent stops after REJECTED; its next two turns still go
    generated[f"{rejected}-rejected"] = generated.pop(rejected)[:3]
    topics = TopicNames("demo.")
    print(
        f"Starting the embedded broker, a budget worker and the summarizer (logs in {workdir}) …",
        flush=True,
    )
    started = time.monotonic()
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        worker = subprocess.Popen(
            command_line(
                broker.bootstrap,
                topic_prefix=topics.prefix,
                app_id="demo-worker",
                data_dir=str(workdir / "worker-data"),
                web_port=free_port(),
                loglevel="warn",
            ),
            stdout=(workdir / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        summarizer = subprocess.Popen(
            summarizer_command_line(
                broker.bootstrap,
                topic_prefix=topics.prefix,
                group="demo-summarizer",
                loglevel="warn",
            ),
            stdout=(workdir / "summarizer.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            total = sum(len(e) for e in generated.values())
            print(
                f"Publishing {len(generated)} agent sessions, {total} events, on "
                f"{broker.bootstrap} …",
                flush=True,
            )
            progress = asyncio.run(follow(broker.bootstrap, topics, generated, timeout=600))
        finally:
            for process in (summarizer, worker):
                process.terminate()
            for process in (summarizer, worker):
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    return report(generated, progress, time.monotonic() - started)


def report(generated: dict[str, list[TurnEvent]], progress: Progress, elapsed: float) -> int:
    """Print the per-session and fleet report; non-zero if a managed context ever overflowed."""
    snapshots, rules, letters = progress.snapshots, progress.rules, progress.letters
    print(
        f"\n{'session':<26}{'limit':>7}{'peak':>7}{'final':>7}  {'level':<9}"
        f"{'overflows without budget':>25}"
    )
    managed_overflows = 0
    unmanaged = 0
    for sid, events in generated.items():
        start = events[0].session_start
        assert start is not None
        if sid not in snapshots:
            print(f"{sid:<26}{start.context_limit:>7,}   rejected at session start")
            continue
        series = [s.snapshot for s in snapshots[sid]]
        peak = max(s.utilization for s in series)
        managed_overflows += sum(s.used > s.context_limit for s in series)
        lost = unmanaged_overflows(events)
        unmanaged += lost
        print(
            f"{sid:<26}{start.context_limit:>7,}{peak:>7.0%}{series[-1].utilization:>7.0%}  "
            f"{series[-1].level.value:<9}{lost:>25}"
        )
    print("\nCommands sent to agents, by kind and rule:")
    for rule, count in rules.most_common():
        print(f"  {rule:<40}{count:>5}")
    print(
        f"\nSummaries: {progress.asked} asked for, {progress.answered} written, "
        f"{progress.applied} applied (an answer whose segment was pruned meanwhile is not)"
    )
    print(f"\nDead letters: {len(letters)}")
    for letter in letters[:5]:
        print(f"  {letter.source_topic}/{letter.partition}/{letter.offset}: {letter.reason}")
    print(
        f"\nWithout budget management {unmanaged} LLM calls would have exceeded their context "
        f"limit; with it, {managed_overflows} did. Done in {elapsed:.0f} s."
    )
    return 1 if managed_overflows else 0

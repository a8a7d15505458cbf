"""`make demo`: a small agent fleet through the embedded broker and a real budget worker.

Starts Tansu on a free loopback port and one `tokenbudget worker` process, publishes generated
research and coding sessions turn by turn (one session with a system prompt over its share),
follows the snapshots, commands and dead letters live, and prints a report. Every process it
started is stopped on the way out, also on Ctrl-C or an error.
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
from streams.budget import BudgetManager, Message, Policy
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    DEAD_LETTER,
    TURN_EVENT,
    SessionStart,
    TurnEvent,
    TurnEventType,
    default_codec,
)
from streams.corpus import generate_fleet
from streams.report import bar
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


async def follow(
    bootstrap: str, topics: TopicNames, sessions: dict[str, list[TurnEvent]], timeout: float
) -> tuple[dict[str, list], Counter[str], list]:
    """Publish the fleet and read everything back, with a live progress line."""
    want_snapshots = sum(len(e) for sid, e in sessions.items() if not sid.endswith("rejected"))
    want_letters = sum(len(e) for sid, e in sessions.items() if sid.endswith("rejected"))
    consumer = AIOKafkaConsumer(
        topics.events,
        topics.commands,
        topics.dead_letters,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_wait_ms=20,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    snapshots: dict[str, list] = {}
    rules: Counter[str] = Counter()
    letters: list = []
    queues = [list(e) for e in sessions.values()]
    live = sys.stdout.isatty()
    started = time.monotonic()
    try:
        while any(queues):  # round-robin, like a fleet of agents taking turns
            for queue in queues:
                if queue:
                    event = queue.pop(0)
                    await producer.send(
                        topics.turns, CODEC.dumps(TURN_EVENT, event), key=event.session_id.encode()
                    )
        await producer.flush()
        received = 0
        last_line = 0.0
        while received < want_snapshots or len(letters) < want_letters:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"only {received} of the snapshots arrived in {timeout:.0f} s")
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    if tp.topic == topics.events:
                        snap = CODEC.loads(BUDGET_SNAPSHOT, record.value)
                        snapshots.setdefault(snap.session_id, []).append(snap)
                        received += 1
                    elif tp.topic == topics.commands:
                        command = CODEC.loads(BUDGET_COMMAND, record.value)
                        rules[f"{command.action.kind.value} {command.action.rule.value}"] += 1
                    else:
                        letters.append(CODEC.loads(DEAD_LETTER, record.value))
            now = time.monotonic()
            if now - last_line > (0.2 if live else 5.0):
                last_line = now
                hottest = sorted(
                    ((s[-1].snapshot.utilization, sid) for sid, s in snapshots.items()),
                    reverse=True,
                )[:3]
                line = (
                    f"  {received:>5} turns processed · {sum(rules.values()):>4} commands · "
                    + "  ".join(f"{sid[:8]} {bar(u, 10)} {u:>4.0%}" for u, sid in hottest)
                )
                print(("\r" if live else "") + line, end="" if live else "\n", flush=True)
    finally:
        if live:
            print()
        await producer.stop()
        await consumer.stop()
    return snapshots, rules, letters


def run_stream_demo(sessions: int = 12, turns: int = 40, seed: int = 7) -> int:
    """Run the streaming demo; returns the exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="tokenbudget-demo-"))
    generated = fleet(sessions, turns, seed)
    rejected = list(generated)[-1]  # an agent stops after REJECTED; its next two turns still go
    generated[f"{rejected}-rejected"] = generated.pop(rejected)[:3]
    topics = TopicNames("demo.")
    print(f"Starting the embedded broker and a budget worker (logs in {workdir}) …", flush=True)
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
        try:
            total = sum(len(e) for e in generated.values())
            print(
                f"Publishing {len(generated)} agent sessions, {total} events, on "
                f"{broker.bootstrap} …",
                flush=True,
            )
            snapshots, rules, letters = asyncio.run(
                follow(broker.bootstrap, topics, generated, timeout=600)
            )
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
    return report(generated, snapshots, rules, letters, time.monotonic() - started)


def report(
    generated: dict[str, list[TurnEvent]],
    snapshots: dict[str, list],
    rules: Counter[str],
    letters: list,
    elapsed: float,
) -> int:
    """Print the per-session and fleet report; non-zero if a managed context ever overflowed."""
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
    print(f"\nDead letters: {len(letters)}")
    for letter in letters[:5]:
        print(f"  {letter.source_topic}/{letter.partition}/{letter.offset}: {letter.reason}")
    print(
        f"\nWithout budget management {unmanaged} LLM calls would have exceeded their context "
        f"limit; with it, {managed_overflows} did. Done in {elapsed:.0f} s."
    )
    return 1 if managed_overflows else 0

"""Idle sessions are evicted by a real worker: the agent is told, the session's table rows are
deleted on the changelog, and a later turn of the session is a dead letter."""

from __future__ import annotations

import asyncio
import json
import re
import time

from aiokafka import AIOKafkaConsumer

from streams.broker import end_offsets
from streams.budget import ActionKind, Rule
from streams.processors.state import SEP
from streams.topics import TopicNames
from tests.integration.fleet import Collected, FleetClient, worker_command
from tests.integration.hostile import start, turn

PARTITIONS = 4
IDLE = ("idle-a", "idle-b")


def evicted(c: Collected, sid: str) -> bool:
    return any(x.action.rule is Rule.IDLE_TIMEOUT for x in c.commands.get(sid, ()))


async def changelog(bootstrap: str, topic: str, timeout: float = 30) -> dict[str, bytes | None]:
    """The last value of every key of a changelog topic (None: deleted)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    latest: dict[str, bytes | None] = {}
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ends = await end_offsets(bootstrap, list(consumer.assignment()))
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, f"{topic} not read to its end in time"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    raw = record.key.decode()
                    latest[json.loads(raw) if raw.startswith('"') else raw] = record.value
    finally:
        await consumer.stop()
    return latest


def test_an_idle_session_is_evicted_with_its_rows_and_the_agent_is_told(
    broker, faust_worker, unique_name
) -> None:
    prefix = unique_name("ev") + "."
    topics, app_id = TopicNames(prefix), prefix + "worker"
    command = worker_command(broker.bootstrap, topics, app_id, PARTITIONS)
    env = {"TOKENBUDGET_SESSION_IDLE_TIMEOUT": "2"}  # swept every 0.5 s
    worker = faust_worker("streams", command=command, env=env, name="evict", ready_timeout=90)
    events = [start("idle-a"), *(turn("idle-a", i, f"note {i}") for i in (1, 2, 3))]
    events += [start("idle-b"), turn("idle-b", 1, "one note")]

    async def go() -> tuple[Collected, dict[str, bytes | None]]:
        async with FleetClient(broker.bootstrap, topics) as client:
            await client.publish(events)
            await client.collect_until(lambda c: all(evicted(c, s) for s in IDLE), timeout=60)
            await client.publish([turn("idle-a", 4, "back after a break")])
            await client.collect_until(lambda c: len(c.dead_letters) >= 1, timeout=30)
            rows = await changelog(broker.bootstrap, f"{app_id}-sessions-changelog")
            return client.collected, rows

    collected, rows = asyncio.run(go())
    for sid in IDLE:
        (command,) = [c for c in collected.commands[sid] if c.action.rule is Rule.IDLE_TIMEOUT]
        assert command.action.kind is ActionKind.REJECTED
        assert "TOKENBUDGET_SESSION_IDLE_TIMEOUT" in command.action.reason
        keys = [k for k in rows if k.startswith(sid + SEP)]
        assert len(keys) >= 3, keys  # start, cursor, messages: all written, then all deleted
        assert all(rows[k] is None for k in keys), {k: rows[k] for k in keys if rows[k]}
    (letter,) = collected.dead_letters
    assert "never started (or ended)" in letter.reason
    assert re.search(r"evicted \d idle session\(s\) \(no event for 2 s\)", worker.log_since_start())

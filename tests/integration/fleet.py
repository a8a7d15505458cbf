"""A simulated agent fleet for integration tests: publish turn events, collect what comes back,
and replay the same events through the core to know what the worker must have produced."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.broker import end_offsets
from streams.budget import LexicalScorer, Message, Policy, Snapshot
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    DEAD_LETTER,
    TURN_EVENT,
    BudgetCommand,
    DeadLetter,
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


def fleet_events(sessions: int, turns: int, seed: int = 0) -> dict[str, list[TurnEvent]]:
    """Per session: a start and `turns` turns from generated agent conversations."""
    fleet: dict[str, list[TurnEvent]] = {}
    for n in range(sessions):
        sid = f"session-{seed}-{n:03d}"
        conversation = generate_conversation(seed=seed * 1000 + n, turns=turns)
        messages = [m for m in conversation.messages if m.role != "system"][:turns]
        limit = (3000, 4000, 6000)[n % 3]
        start = SessionStart(
            "gpt-4o", limit, Policy(), "You are a careful agent.", task=conversation.task
        )
        events = [
            TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=start)
        ]
        events += [
            TurnEvent(f"{sid}/{i + 1}", sid, i + 1, TurnEventType.TURN, 0.0, message=m)
            for i, m in enumerate(messages)
        ]
        fleet[sid] = events
    return fleet


def interleave(fleet: dict[str, list[TurnEvent]]) -> list[TurnEvent]:
    """Round-robin across sessions, each session's events in order (like a live fleet)."""
    out: list[TurnEvent] = []
    queues = [list(events) for events in fleet.values()]
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


@dataclass
class Expected:
    """What the core computes for a session from its events alone."""

    commands: list[tuple[object, ...]]
    snapshot: Snapshot
    snapshots: int


def replay(events: Iterable[TurnEvent]) -> dict[str, Expected]:
    """Run events through a local turn processor (dict tables, lexical scorer)."""
    store = SessionStore({}, LexicalScorer())
    processor = TurnProcessor(store)
    out: dict[str, Outputs] = defaultdict(Outputs)
    for event in events:
        processor.handle(event, out[event.session_id])
    return {
        sid: Expected(
            [command_key(c) for c in o.commands], o.snapshots[-1].snapshot, len(o.snapshots)
        )
        for sid, o in out.items()
        if o.snapshots
    }


def command_key(command: BudgetCommand) -> tuple[object, ...]:
    """A command without its wall-clock time: what must be equal across runs."""
    a = command.action
    return (
        command.command_id,
        command.seq,
        a.kind,
        a.rule,
        a.message_ids,
        a.tokens_before,
        a.tokens_after,
    )


def fresh(messages: Sequence[Message]) -> list[Message]:
    """Copies without cached counts, for a from-scratch recount."""
    return [m.uncounted() for m in messages]


@dataclass
class Collected:
    """Everything read back from the output topics, per session."""

    snapshots: dict[str, list[object]] = field(default_factory=lambda: defaultdict(list))
    commands: dict[str, list[BudgetCommand]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def latest(self, sid: str) -> Snapshot:
        """The session's last snapshot."""
        return self.snapshots[sid][-1].snapshot  # type: ignore[attr-defined]


class FleetClient:
    """Publishes turn events and reads snapshots, commands and dead letters back."""

    def __init__(self, bootstrap: str, topics: TopicNames) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.collected = Collected()
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> FleetClient:
        self._consumer = AIOKafkaConsumer(
            self.topics.events,
            self.topics.commands,
            self.topics.dead_letters,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def publish(self, events: Iterable[TurnEvent | tuple[bytes, bytes]]) -> None:
        """Send events (or raw key/value pairs) keyed by session, in order, and flush."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            for event in events:
                if isinstance(event, TurnEvent):
                    key, value = event.session_id.encode(), CODEC.dumps(TURN_EVENT, event)
                else:
                    key, value = event
                await producer.send(self.topics.turns, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

    async def collect_until(self, done: Callable[[Collected], bool], timeout: float) -> None:
        """Read the output topics until `done(collected)` or fail at the deadline."""
        assert self._consumer is not None
        deadline = time.monotonic() + timeout
        while not done(self.collected):
            if time.monotonic() > deadline:
                counts = {k: len(v) for k, v in self.collected.snapshots.items()}
                raise AssertionError(f"timed out after {timeout}s; snapshots so far: {counts}")
            batch = await self._consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    self._take(tp.topic, record.value)

    async def catch_up(self, timeout: float) -> None:
        """Read every output topic up to its end offsets as of now."""
        assert self._consumer is not None
        consumer = self._consumer
        partitions = list(consumer.assignment())
        ends = await end_offsets(self.bootstrap, partitions)
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, "output topics not read to their end in time"
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    self._take(tp.topic, record.value)

    def _take(self, topic: str, value: bytes) -> None:
        if topic == self.topics.events:
            snapshot = CODEC.loads(BUDGET_SNAPSHOT, value)
            self.collected.snapshots[snapshot.session_id].append(snapshot)
        elif topic == self.topics.commands:
            command = CODEC.loads(BUDGET_COMMAND, value)
            self.collected.commands[command.session_id].append(command)
        else:
            self.collected.dead_letters.append(CODEC.loads(DEAD_LETTER, value))


def worker_command(
    bootstrap: str,
    topics: TopicNames,
    app_id: str,
    partitions: int,
    scoring: bool = False,
    store: str = "memory://",
    metrics_port: int = 0,
) -> Callable[..., list[str]]:
    """The `tokenbudget worker` command line for the conftest's worker fixture."""

    def command(worker: object) -> list[str]:
        return command_line(
            bootstrap,
            topic_prefix=topics.prefix,
            app_id=app_id,
            data_dir=str(worker.datadir),  # type: ignore[attr-defined]
            web_port=worker.web_port,  # type: ignore[attr-defined]
            partitions=partitions,
            scoring=scoring,
            store=store,
            metrics_port=metrics_port,
        )

    return command


def run(coro: object) -> object:
    """Run a coroutine from a sync test."""
    return asyncio.run(coro)  # type: ignore[arg-type]

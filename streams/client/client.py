"""`BudgetClient`: what an agent fleet imports to publish turns and get context-safe history.

One client serves any number of sessions of one process. It publishes `TurnEvent`s to
`agent.turns` and reads `budget.commands` and `budget.events` in the background, applying each
command to its local copy of the session (`Mirror`) once. `context()` waits until the worker
has processed every event published so far and the commands it decided are applied; if the
worker does not answer in time, the local core's cascade decides and the result says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.availability import install_outage_log
from streams.budget import Component, Message, Policy, Scorer
from streams.client.messages import Format, to_messages
from streams.client.mirror import Context, Mirror
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    TURN_EVENT,
    BudgetCommand,
    SessionStart,
    TurnEvent,
    TurnEventType,
    Usage,
    default_codec,
)
from streams.errors import (
    DecodeError,
    InvalidMessageError,
    RejectedEventError,
    TokenBudgetError,
)
from streams.topics import TopicNames

log = logging.getLogger("tokenbudget.client")
DEFAULT_TIMEOUT = 5.0


class UnknownSessionError(TokenBudgetError, KeyError):
    """The session was not started by this client (or has ended)."""


class BudgetClient:
    """Publishes an agent fleet's turns and keeps each session's history context-safe.

    `kafka_options` go to every aiokafka client as they are: the security settings
    (`security_protocol`, `sasl_mechanism`, `sasl_plain_username`, `ssl_context`, …), e.g.
    `BudgetClient(bootstrap, **streams.security.client_options())` to take them from the
    `TOKENBUDGET_*` environment like the worker does.

    `quiet_outages` (default on): while the broker is away, aiokafka logs an error per
    reconnect attempt, several a second per client; they are replaced by one WARNING when it
    goes and one INFO when it answers again (`tokenbudget.broker` logger, process-wide).
    """

    def __init__(
        self,
        bootstrap_servers: str = "127.0.0.1:9092",
        *,
        topic_prefix: str = "",
        partitions: int = 8,
        scorer: Scorer | None = None,
        quiet_outages: bool = True,
        **kafka_options: Any,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = TopicNames(topic_prefix)
        self.partitions = partitions
        self.scorer = scorer
        self.quiet_outages = quiet_outages
        self.kafka_options = kafka_options
        self.codec = default_codec()
        self.sessions: dict[str, Mirror] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._subscribers: list[tuple[str | None, asyncio.Queue[BudgetCommand]]] = []
        self._unsent: dict[str, list[TurnEvent]] = {}  # per session, oldest first
        self._sent: dict[str, list[TurnEvent]] = {}  # sent, not yet in a snapshot: may resend
        self._locks: dict[str, asyncio.Lock] = {}  # one sender per session keeps seq order
        self._resends: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> BudgetClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect: the producer, and a reader positioned at the end of the output topics."""
        from streams.broker import create_topics_async

        if self.quiet_outages:  # aiokafka logs every reconnect attempt; say it twice instead
            install_outage_log(self.bootstrap_servers)
        await create_topics_async(
            self.bootstrap_servers, self.topics.all(), self.partitions, options=self.kafka_options
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, acks="all", **self.kafka_options
        )
        await self._producer.start()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            **self.kafka_options,
        )
        await consumer.start()
        self._consumer = consumer
        partitions = [
            TopicPartition(topic, p)
            for topic in (self.topics.commands, self.topics.events)
            for p in sorted(await _partitions(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # fix the positions now, before anything is published
            await consumer.position(tp)
        self._reader = asyncio.create_task(self._read(), name="tokenbudget-client-reader")

    async def close(self) -> None:
        """Flush what was published and disconnect."""
        for task in list(self._resends):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    # -- publishing --------------------------------------------------------------------------
    async def start_session(
        self,
        session_id: str,
        *,
        model: str,
        context_limit: int,
        system_prompt: str = "",
        tools: Sequence[Mapping[str, Any]] = (),
        policy: Policy | Mapping[str, Any] | None = None,
        task: str | None = None,
        strategy: str | None = None,
    ) -> Mirror:
        """Start a session. Validation errors (a system prompt over its share, unknown policy
        keys, an unknown strategy) raise here, before anything is published."""
        if session_id in self.sessions:
            raise InvalidMessageError(f"session {session_id!r} was already started")
        resolved = policy if isinstance(policy, Policy) else Policy.from_mapping(policy)
        start = SessionStart(
            model, context_limit, resolved, system_prompt, tuple(tools), task, None, strategy
        )
        mirror = Mirror.begin(session_id, start, self.scorer)
        event = TurnEvent(
            f"{session_id}/0",
            session_id,
            0,
            TurnEventType.SESSION_START,
            time.time(),
            session_start=start,
        )
        self.sessions[session_id] = mirror  # before sending: its snapshot may come back fast
        try:
            await self._send(event)
        except BaseException:
            del self.sessions[session_id]
            self._forget(session_id)
            raise
        return mirror

    async def publish_turn(
        self, session_id: str, message: Message | Mapping[str, Any], *, format: Format = "auto"
    ) -> list[Message]:
        """Publish one turn: our `Message`, an OpenAI chat message or an Anthropic message
        (an Anthropic turn with several tool results becomes one event per result)."""
        mirror = self._mirror(session_id)
        messages = to_messages(message, f"{session_id}/{mirror.seq + 1}-", format)
        for m in messages:
            if m.id in mirror.session:
                raise InvalidMessageError(f"session {session_id!r} already has a message {m.id!r}")
        for m in messages:
            seq = mirror.next_seq()
            mirror.add(m)
            await self._send(
                TurnEvent(
                    f"{session_id}/{seq}",
                    session_id,
                    seq,
                    TurnEventType.TURN,
                    time.time(),
                    message=m,
                )
            )
        return messages

    async def update_task(self, session_id: str, task: str) -> None:
        """The session's task changed: importance scoring follows the new one."""
        mirror = self._mirror(session_id)
        seq = mirror.next_seq()
        mirror.session.task = task
        event = TurnEvent(
            f"{session_id}/{seq}",
            session_id,
            seq,
            TurnEventType.TASK_UPDATE,
            time.time(),
            task=task,
        )
        await self._send(event)

    async def report_usage(
        self, session_id: str, *, prompt_tokens: int, completion_tokens: int = 0
    ) -> None:
        """The provider's billed counts for the call made with the last returned context; the
        worker calibrates estimated models with them and measures the drift of exact ones."""
        mirror = self._mirror(session_id)
        context = mirror.last_context
        if context is None:
            raise InvalidMessageError(
                f"session {session_id!r}: report usage after a call made with context()"
            )
        usage = Usage(prompt_tokens, context.seq, context.tokens, completion_tokens)
        seq = mirror.next_seq()
        event = TurnEvent(
            f"{session_id}/{seq}", session_id, seq, TurnEventType.USAGE, time.time(), usage=usage
        )
        await self._send(event)

    async def end_session(self, session_id: str, reason: str | None = None) -> None:
        """End the session: the worker deletes its state; this client forgets it."""
        mirror = self._mirror(session_id)
        seq = mirror.next_seq()
        event = TurnEvent(
            f"{session_id}/{seq}",
            session_id,
            seq,
            TurnEventType.SESSION_END,
            time.time(),
            end_reason=reason,
        )
        await self._send(event)
        del self.sessions[session_id]
        self._forget(session_id)

    async def _send(self, event: TurnEvent) -> None:
        """Send the session's events not sent yet, then this one, in seq order.

        The mirror already holds the event's message and seq, so an event whose send failed
        (the broker away longer than the producer's request timeout) must still reach the
        worker: it goes again, first, with the session's next event. The worker ignores a copy
        of an event that did arrive (same seq).
        """
        if self._producer is None:
            raise RuntimeError("the client is not started: use `async with BudgetClient(...)`")
        async with self._lock(event.session_id):
            self._unsent.setdefault(event.session_id, []).append(event)
            await self._flush(event.session_id)

    async def _flush(self, session_id: str) -> None:
        """Send the session's queue, oldest first; the caller holds the session's lock."""
        assert self._producer is not None
        queue = self._unsent.get(session_id, [])
        sent = self._sent.setdefault(session_id, [])
        mirror = self.sessions.get(session_id)
        if mirror is not None and mirror.worker is not None:  # the worker has these: forget
            sent[:] = [e for e in sent if e.seq > mirror.worker.seq]
        while queue:
            first = queue[0]
            value, key = self.codec.dumps(TURN_EVENT, first), first.session_id.encode()
            await self._producer.send_and_wait(self.topics.turns, value, key=key)
            queue.pop(0)
            sent.append(first)

    async def _resend(self, session_id: str) -> None:
        """Send again what the worker has not acknowledged with a snapshot, in order.

        Kafka delivered them, but a consumer can still miss one: Faust 0.15.3 may skip a record
        while it rebalances (docs/FAUST_ON_TANSU.md). The worker then holds the session at the
        seq before the hole (later events are dead letters of kind `sequence_gap`) until the
        missing event comes again; the copies of events it has are ignored.
        """
        async with self._lock(session_id):
            mirror = self.sessions.get(session_id)
            if mirror is None:
                return
            done = mirror.worker.seq if mirror.worker is not None else -1
            again = [e for e in self._sent.pop(session_id, []) if e.seq > done]
            if again:
                log.info(
                    "session %s: resending seq %d-%d, not acknowledged by the worker",
                    session_id,
                    again[0].seq,
                    again[-1].seq,
                )
            self._unsent[session_id] = again + self._unsent.get(session_id, [])
            try:
                await self._flush(session_id)
            except KafkaError as error:  # still queued: they go first with the next event
                log.warning("session %s: resend failed, kept for later: %s", session_id, error)

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    def _forget(self, session_id: str) -> None:
        """Drop what this client keeps for sending a session's events."""
        for kept in (self._unsent, self._sent, self._locks):
            kept.pop(session_id, None)

    # -- reading -----------------------------------------------------------------------------
    async def context(self, session_id: str, timeout: float = DEFAULT_TIMEOUT) -> Context:
        """The context-safe history for the next LLM call, once the worker has processed every
        turn published so far; after `timeout` seconds, the local cascade's (`fallback`)."""
        mirror = self._mirror(session_id)
        deadline = time.monotonic() + timeout
        while not mirror.in_step():
            if mirror.rejected is not None:  # a rejected session never gets in step again
                break
            left = deadline - time.monotonic()
            if left <= 0:
                log.info(
                    "session %s: worker not in step after %.1fs; local fallback",
                    session_id,
                    timeout,
                )
                self._resend_later(session_id)
                return mirror.context(fallback=True)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        if mirror.rejected is not None:
            raise RejectedEventError(f"session {session_id!r} was rejected: {mirror.rejected}")
        return mirror.context(fallback=False)

    def _resend_later(self, session_id: str) -> None:
        """Resend in the background: the caller gets its fallback context now."""
        task = asyncio.create_task(self._resend(session_id), name=f"resend {session_id}")
        self._resends.add(task)
        task.add_done_callback(self._resends.discard)

    def headroom(self, session_id: str, component: Component | str = "tool_results") -> int:
        """Tokens still free for `component`, per the latest snapshot: cap a tool's output."""
        return self._mirror(session_id).headroom(component)

    async def commands(self, session_id: str | None = None) -> AsyncIterator[BudgetCommand]:
        """The raw control stream for this client's sessions (or one), each command once."""
        queue: asyncio.Queue[BudgetCommand] = asyncio.Queue()
        entry = (session_id, queue)
        self._subscribers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(entry)

    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    self._take(tp.topic, record.key, record.value)
            if batch:
                self._changed.set()

    def _take(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Apply one record of an output topic; other sessions' records are skipped."""
        if key is None or key.decode("utf-8", "replace") not in self.sessions:
            return
        try:
            if topic == self.topics.commands:
                command = self.codec.loads(BUDGET_COMMAND, value)
                mirror = self.sessions.get(command.session_id)
                if mirror is not None and mirror.apply(command):
                    for wanted, queue in self._subscribers:
                        if wanted in (None, command.session_id):
                            queue.put_nowait(command)
            else:
                snapshot = self.codec.loads(BUDGET_SNAPSHOT, value)
                mirror = self.sessions.get(snapshot.session_id)
                if mirror is not None:
                    mirror.observe(snapshot)
        except (DecodeError, TokenBudgetError) as error:
            log.warning("skipped an undecodable record on %s: %s", topic, error)

    def _mirror(self, session_id: str) -> Mirror:
        mirror = self.sessions.get(session_id)
        if mirror is None:
            raise UnknownSessionError(f"session {session_id!r} was not started by this client")
        return mirror


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float = 10.0) -> set[int]:
    """The topic's partitions, waiting for the metadata to list them."""
    deadline = time.monotonic() + timeout
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        if time.monotonic() > deadline:
            raise TokenBudgetError(f"topic {topic!r} has no partitions after {timeout}s")
        await consumer.topics()  # fetches fresh metadata

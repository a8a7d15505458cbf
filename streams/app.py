"""The Faust app: topics, tables and the turn processor, wired from one `Settings`.

Thin by design: records are decoded here (a decode error becomes a dead letter with the record's
coordinates), handed to `TurnProcessor` in micro-batches, and what it returns is sent before the
batch is acknowledged. New prunable messages of a whole batch, across sessions, are embedded in
one model call off the event loop, so the cascade later finds their vectors cached.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT

from streams.budget import LexicalScorer, Scorer
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    COMPRESSED_HISTORY,
    DEAD_LETTER,
    TURN_EVENT,
    CompressedHistory,
    DeadLetter,
    TurnEvent,
    TurnEventType,
    default_codec,
)
from streams.errors import DecodeError, TokenBudgetError
from streams.faust_fixes import (
    complete_flushes,
    exact_end_offsets,
    no_acks_for_skipped_records,
    short_fetch_waits,
)
from streams.metrics import WorkerMetrics
from streams.processors.batches import ready_batches
from streams.processors.limits import Limits
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor
from streams.security import KafkaSecurity
from streams.settings import Settings
from streams.sweep import install_idle_sweep
from streams.topics import TopicNames

log = logging.getLogger("tokenbudget.worker")
FREEZE_EVERY = 5000
SEND_EVERY = 0.002
"""Seconds of processing in a micro-batch before its snapshots and commands are let out."""


def build_scorer(settings: Settings) -> Scorer:
    """The embedding scorer, or the lexical one when scoring is off."""
    if not settings.scoring:
        return LexicalScorer()
    from streams.adapters.embedding import default_scorer

    return default_scorer()


def build_app(
    settings: Settings, scorer: Scorer | None = None, metrics: WorkerMetrics | None = None
) -> faust.App:
    """A configured Faust app with the budget worker's topics, tables and processors."""
    names = TopicNames(settings.topic_prefix)
    n = settings.partitions
    short_fetch_waits()
    no_acks_for_skipped_records()
    complete_flushes()
    security = KafkaSecurity.from_settings(settings)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
        store=settings.store,
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_host="127.0.0.1",
        topic_partitions=n,
        topic_replication_factor=1,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.session_timeout / 3,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        broker_credentials=security.faust_credentials(),
        # The largest record the worker writes is the dead letter of an event at the size limit,
        # or the JSON table row of its message (escapes can double text): room for either.
        producer_max_request_size=max(1_048_576, 2 * settings.max_event_bytes + 65_536),
    )
    if settings.embedded_broker:
        exact_end_offsets(app, settings.bootstrap, security.aiokafka_kwargs())
    # Table writes queue in Faust's producer buffer; past 100 pending it stalls the stream and
    # drains one message per wake-up. A turn writes two table rows, so a micro-batch of 256
    # turns needs room for about 600.
    app.producer.buffer.max_messages = 8 * settings.batch_size
    raw = {"key_type": bytes, "value_type": bytes, "partitions": n}
    turns = app.topic(names.turns, **raw)
    commands = app.topic(names.commands, **raw)
    events = app.topic(names.events, **raw)
    dead_letters = app.topic(names.dead_letters, **raw)
    compressed = app.topic(names.compressed, **raw)
    table = {"partitions": n, "key_type": str}  # json keys and values
    store = SessionStore(app.Table("sessions", **table), scorer or build_scorer(settings))
    limits = Limits.from_settings(settings)
    processor = TurnProcessor(store, settings.default_strategy, limits=limits)
    codec = default_codec()
    if metrics is None:  # unexposed, so the code below needs no None checks
        from prometheus_client import CollectorRegistry

        metrics = WorkerMetrics(CollectorRegistry())

    @app.agent(turns)
    async def process_turns(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """Decode, embed, process and publish, a micro-batch at a time."""
        processed = FREEZE_EVERY  # the first batch freezes what start-up loaded
        async for batch in ready_batches(stream, settings.batch_size, settings.batch_window):
            metrics.batch(len(batch))
            decoded: list[tuple[EventT, TurnEvent | CompressedHistory]] = []
            for event in batch:
                try:
                    limits.check_event_size(event.message.key, event.value)  # before decoding
                    decoded.append((event, _decode_input(event.value)))
                except (DecodeError, TokenBudgetError) as error:
                    await _dead_letter(event, error)
            started = time.perf_counter()
            turns_only = [e for _, e in decoded if isinstance(e, TurnEvent)]
            embedded = await _embed(turns_only, processor)
            if embedded:
                metrics.embedding(time.perf_counter() - started, embedded)
            processed += len(decoded)
            if processed >= FREEZE_EVERY:
                # Session state, like what start-up loaded (Faust, the tokenizer, the model),
                # is long-lived: keep the cyclic collector from walking it all (before the
                # start-up heap was frozen, a full collection stalled the worker for 61 ms).
                processed = 0
                gc.freeze()
            handed = time.perf_counter()
            for event, item in decoded:
                _current_event.set(weakref.ref(event))  # table writes go to this partition
                if isinstance(item, CompressedHistory):
                    await _apply_summary(event, item)
                    continue
                turn, out = item, Outputs()
                started = time.perf_counter()
                try:
                    processor.handle(turn, out)
                except Exception as error:  # a bug must not stop every session of the partition
                    log.exception("turn %s of session %r failed", turn.event_id, turn.session_id)
                    await _dead_letter(event, error)
                    continue
                await _publish(turn, out, event)
                ended = time.perf_counter()
                if ended - handed > SEND_EVERY:
                    # Let the producer ship what this batch has sent so far: without a turn of
                    # the event loop nothing leaves before the whole batch is done.
                    await asyncio.sleep(0)
                    handed = time.perf_counter()
                sent = event.message.timestamp  # producer's clock: clamp a skew at 0
                lag = max(0.0, time.time() - sent) if sent else None
                metrics.observe_turn(turn, out, ended - started, lag)
            metrics.flush()
            yield None

    def _decode_input(value: bytes) -> TurnEvent | CompressedHistory:
        """A turn, or a summarizer answer forwarded into the session's partition."""
        if codec.holds(COMPRESSED_HISTORY, value):
            return codec.loads(COMPRESSED_HISTORY, value)
        return codec.loads(TURN_EVENT, value)

    async def _apply_summary(event: EventT, summary: CompressedHistory) -> None:
        out = Outputs()
        try:
            processor.handle_summary(summary, out)
        except Exception as error:  # as for a turn: the partition goes on
            log.exception("summary %s of session %r failed", summary.summary_id, summary.session_id)
            await _dead_letter(event, error)
            return
        await _send(summary.session_id, out)
        metrics.observe_summary(summary, out)

    @app.agent(compressed)
    async def forward_summaries(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """Forward summarizer answers into their session's partition of the turns topic.

        A session's answers and turns are then one ordered input: a worker restarted after a
        crash reads them again in the order it first did, so it redoes the same decisions (with
        two inputs it could interleave them differently and contradict commands already sent).
        The answer is applied when it comes back on the turns topic; a forward repeated after a
        crash is applied once (its summary id is already in place).
        """
        async for event in stream.events():
            try:
                limits.check_event_size(event.message.key, event.value)
                summary = codec.loads(COMPRESSED_HISTORY, event.value)
            except (DecodeError, TokenBudgetError) as error:
                await _dead_letter(event, error)
            else:
                await turns.send(key=summary.session_id.encode(), value=event.value)
            yield None

    async def _publish(turn: TurnEvent, out: Outputs, event: EventT) -> None:
        await _send(turn.session_id, out)
        for _, error in out.rejected:
            await _dead_letter(event, error)

    async def _send(session_id: str, out: Outputs) -> None:
        key = session_id.encode()
        for command in out.commands:
            await commands.send(key=key, value=codec.dumps(BUDGET_COMMAND, command))
        for snapshot in out.snapshots:
            await events.send(key=key, value=codec.dumps(BUDGET_SNAPSHOT, snapshot))

    async def _dead_letter(event: EventT, error: BaseException) -> None:
        message = event.message
        key, value = limits.for_dead_letter(  # an oversized record keeps its first bytes only
            message.key if isinstance(message.key, bytes) else None,
            message.value if isinstance(message.value, bytes) else b"",
        )
        letter = DeadLetter.of(
            error,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=key,
            value=value,
            timestamp=time.time(),
            source_timestamp=message.timestamp,
        )
        log.warning("dead letter %s: %s", letter.event_id, letter.reason)
        metrics.dead_letter(error)
        await dead_letters.send(key=key, value=codec.dumps(DEAD_LETTER, letter))

    install_idle_sweep(app, processor, names.turns, n, _send, metrics)

    @app.on_partitions_revoked.connect
    async def _revoked(_app: Any, revoked: Any, **_: Any) -> None:
        store.forget()
        metrics.forget_sessions()

    return app


async def _embed(events: Sequence[TurnEvent], processor: TurnProcessor) -> int:
    """`prime_batch` in a worker thread, so the event loop keeps serving the consumer."""
    store = processor.store
    if getattr(store.scorer, "prime", None) is None:
        return 0
    known = {}
    for e in events:
        live = store.live.get(e.session_id)
        if live is not None:
            strategy = live.start.strategy or processor.default_strategy
            known[e.session_id] = (live.session.task, strategy)
    return await asyncio.get_running_loop().run_in_executor(
        None, prime_batch, events, store.scorer, known, processor.default_strategy
    )


RANKING = ("importance", "cascade")
"""Strategies whose sessions rank messages with the scorer."""


def prime_batch(
    events: Sequence[TurnEvent],
    scorer: Scorer,
    known: Mapping[str, tuple[str | None, str]] | None = None,
    default_strategy: str = "cascade",
) -> int:
    """Embed a batch's new prunable messages that may be ranked, across sessions, in one call.

    `sliding_window` and `summarization` sessions never rank their messages: theirs are not
    embedded. Embedding a `cascade` session's messages only when its importance step runs would
    halve the model's work (`bench/pipeline.py`: 67 → 131 turns/s), but that step runs inside a
    turn, on the event loop: publish → snapshot p99 went from 39 ms to 466 ms. `known`: each
    session's (task, strategy) before the batch; starts and task updates in the batch are
    followed in order. A long message embeds the passages sharing the most terms with its
    session's task. Returns the passages embedded (0 when the model was not called).
    """
    prime = getattr(scorer, "prime", None)
    if prime is None:
        return 0
    current = dict(known or {})
    messages, tasks = [], []
    for e in events:
        task, strategy = current.get(e.session_id, (None, default_strategy))
        if e.type is TurnEventType.SESSION_START and e.session_start is not None:
            start = e.session_start
            current[e.session_id] = (start.task, start.strategy or default_strategy)
        elif e.type is TurnEventType.TASK_UPDATE:
            current[e.session_id] = (e.task, strategy)
        elif (
            e.type is TurnEventType.TURN
            and e.message
            and e.message.component.prunable
            and strategy in RANKING
        ):
            messages.append(e.message)
            tasks.append(task or "")
    if not messages:
        return 0
    embedded = prime(messages, tasks)
    return embedded if isinstance(embedded, int) else len(messages)

"""The summarizer process: SUMMARIZE commands in, `CompressedHistory` events out.

Its own consumer group on `budget.commands`; every other command kind is skipped. Each planned
SUMMARIZE carries its segment, so the process keeps no session state. At-least-once: offsets are
committed only after the answers of a batch are acknowledged by the broker. A redelivered
command gets the same answer (same summary id, and the same text while the process remembers
it); the worker applies a given summary once. A backend failure after its retries becomes a
FAILED event: the worker then prunes as usual and asks again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from streams.budget import MessageCounter, resolve_model
from streams.codecs import (
    BUDGET_COMMAND,
    COMPRESSED_HISTORY,
    DEAD_LETTER,
    AvroCodec,
    CompressedHistory,
    DeadLetter,
    SummaryStatus,
    default_codec,
)
from streams.errors import DecodeError, TokenBudgetError
from streams.metrics import SummarizerMetrics
from streams.security import KafkaSecurity, client_options
from streams.settings import Settings
from streams.summarizer.backend import (
    SummarizerBackend,
    SummarizerError,
    SummaryRequest,
    fit_summary,
)
from streams.topics import TopicNames

log = logging.getLogger("tokenbudget.summarizer")
REMEMBERED = 1_000
"""Answers kept per process (~32 MB at 8k-token summaries), so a command sent again (a worker
recomputing a turn after a crash) gets the very same text back. A restarted summarizer
recomputes; the extractive backend gives the same text, an LLM may not, and the worker still
applies only the first answer it sees for a summary id."""


def build_backend(settings: Settings) -> SummarizerBackend:
    """The configured backend: `extractive` (default) or `openai`."""
    name = settings.summarizer_backend
    if name == "extractive":
        from streams.adapters.embedding import default_embedder
        from streams.summarizer.extractive import ExtractiveBackend

        return ExtractiveBackend(default_embedder())
    if name == "openai":
        from streams.summarizer.openai import OpenAIBackend

        return OpenAIBackend.from_settings(settings)
    raise TokenBudgetError(f"unknown summarizer backend {name!r} (expected extractive or openai)")


class Summarizer:
    """Answers summary requests with a backend; Kafka-free, so it is testable on its own."""

    def __init__(self, backend: SummarizerBackend, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.clock = clock
        self._counters: dict[str, MessageCounter] = {}
        self._answers: OrderedDict[str, CompressedHistory] = OrderedDict()

    def counter(self, model: str) -> MessageCounter:
        """The session model's counter, so the summary is sized as the worker will count it."""
        counter = self._counters.get(model)
        if counter is None:
            from streams.adapters.tokenizers import tokenizer_for

            spec = resolve_model(model)
            counter = MessageCounter(tokenizer_for(spec), spec.chat_format)
            self._counters[model] = counter
        return counter

    async def answer(self, request: SummaryRequest) -> CompressedHistory:
        """The summary (or the failure) for one request; a repeated request gets the same."""
        known = self._answers.get(request.command_id)
        if known is not None:
            return known
        started = time.perf_counter()
        try:
            counter = self.counter(request.model)
            text = await self.backend.summarize(request, counter)
            text, tokens = fit_summary(text, request, counter)
            answer = self._event(request, SummaryStatus.OK, summary=text, token_count=tokens)
            log.info(
                "summary %s for %s: %d messages into %d tokens (target %d) in %.2f s",
                answer.summary_id,
                request.command_id,
                len(request.segment),
                tokens,
                request.target_tokens,
                time.perf_counter() - started,
            )
        except SummarizerError as error:
            log.warning("summary for %s failed: %s", request.command_id, error)
            answer = self._event(request, SummaryStatus.FAILED, error=str(error))
        except Exception as error:  # a backend bug must not stop the summarizer
            log.exception("summary for %s failed unexpectedly", request.command_id)
            answer = self._event(
                request, SummaryStatus.FAILED, error=f"internal error: {type(error).__name__}"
            )
        self._answers[request.command_id] = answer
        while len(self._answers) > REMEMBERED:
            self._answers.popitem(last=False)
        return answer

    def _event(
        self, request: SummaryRequest, status: SummaryStatus, **fields: Any
    ) -> CompressedHistory:
        return CompressedHistory(
            summary_id=request.summary_id,
            session_id=request.session_id,
            source_command_id=request.command_id,
            replaces=request.replaces,
            backend=self.backend.name,
            status=status,
            created_at=self.clock(),
            source_seq=request.seq,
            **fields,
        )


class SummarizerService:
    """The consumer/producer loop around a `Summarizer`."""

    def __init__(
        self,
        settings: Settings,
        backend: SummarizerBackend,
        codec: AvroCodec | None = None,
        metrics: SummarizerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.names = TopicNames(settings.topic_prefix)
        self.summarizer = Summarizer(backend)
        self.codec = codec or default_codec()
        self.answered = 0
        if metrics is None:  # unexposed, so the loop needs no None checks
            from prometheus_client import CollectorRegistry

            metrics = SummarizerMetrics(CollectorRegistry(), backend.name)
        self.metrics = metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, summarize, produce, commit; until `stop` is set."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        settings = self.settings
        security = KafkaSecurity.from_settings(settings).aiokafka_kwargs()
        consumer = AIOKafkaConsumer(
            self.names.commands,
            bootstrap_servers=settings.bootstrap,
            **security,
            group_id=settings.summarizer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5, **security)
        if not await _start_with_retries(producer, consumer, settings.bootstrap, stop):
            await producer.stop()  # a no-op when it never started
            return
        log.info(
            "summarizer ready: %s as group %s, backend %s",
            self.names.commands,
            settings.summarizer_group,
            self.summarizer.backend.name,
        )
        limit = asyncio.Semaphore(settings.summarizer_concurrency)
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=64)
                for records in batches.values():
                    await self._handle(records, producer, limit)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle(self, records: list[Any], producer: Any, limit: asyncio.Semaphore) -> None:
        requests: list[SummaryRequest] = []
        for record in records:
            try:
                command = self.codec.loads(BUDGET_COMMAND, record.value)
            except (DecodeError, TokenBudgetError) as error:
                await self._dead_letter(record, error, producer)
                continue
            request = SummaryRequest.of(command)
            if request is not None:
                requests.append(request)

        async def bounded(request: SummaryRequest) -> CompressedHistory:
            async with limit:
                started = time.perf_counter()
                answer = await self.summarizer.answer(request)
                self.metrics.answered(answer, time.perf_counter() - started)
                return answer

        answers = await asyncio.gather(*(bounded(r) for r in requests))
        for answer in answers:  # in command order, so a session's answers stay ordered
            await producer.send_and_wait(
                self.names.compressed,
                key=answer.session_id.encode(),
                value=self.codec.dumps(COMPRESSED_HISTORY, answer),
            )
            self.answered += 1

    async def _dead_letter(self, record: Any, error: BaseException, producer: Any) -> None:
        letter = DeadLetter.of(
            error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            timestamp=time.time(),
            source_timestamp=record.timestamp / 1000 if record.timestamp else None,
        )
        log.warning("dead letter %s: %s", letter.event_id, letter.reason)
        self.metrics.dead_letter(error)
        await producer.send_and_wait(
            self.names.dead_letters, key=record.key, value=self.codec.dumps(DEAD_LETTER, letter)
        )


async def _start_with_retries(
    producer: Any, consumer: Any, bootstrap: str, stop: asyncio.Event
) -> bool:
    """Start both clients, waiting for the broker with backoff; one log line per state change.

    False when `stop` was set meanwhile (SIGTERM while the broker is away: a clean exit).
    """
    from aiokafka.errors import KafkaConnectionError

    from streams.availability import BrokerWait

    wait = BrokerWait(bootstrap, log)
    while not stop.is_set():
        try:
            await producer.start()
            await consumer.start()
        except KafkaConnectionError as error:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait.unreachable(error))
            continue
        wait.reachable()
        return True
    return False


def run_summarizer(settings: Settings, loglevel: str = "info") -> int:
    """Run the summarizer process until SIGTERM / Ctrl-C."""
    import signal

    from streams.availability import install_outage_log, wait_for_topics
    from streams.metrics import serve_metrics
    from streams.worker import LOG_LEVELS

    logging.basicConfig(
        level=LOG_LEVELS[loglevel],
        format="[%(asctime)s] %(name)s %(levelname)s: %(message)s",
    )
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not wait_for_topics(  # waits for a broker not up yet; SIGTERM meanwhile: exit 0
        settings.bootstrap,
        TopicNames(settings.topic_prefix).all(),
        settings.partitions,
        options=client_options(settings),  # bad TLS/SASL settings or a refusal fail here
    ):
        return 0
    install_outage_log(settings.bootstrap)  # a broker outage: two log lines, not thousands
    backend = build_backend(settings)
    from prometheus_client import CollectorRegistry

    metrics = SummarizerMetrics(CollectorRegistry(), backend.name)
    serve_metrics(
        metrics.registry, settings.metrics_host, settings.summarizer_metrics_port, "summarizer"
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await SummarizerService(settings, backend, metrics=metrics).run(stop)
        log.info("summarizer stopped")

    asyncio.run(main())
    return 0


def command_line(
    bootstrap: str,
    *,
    topic_prefix: str,
    group: str,
    partitions: int = 4,
    backend: str = "extractive",
    loglevel: str = "info",
    metrics_port: int | None = 0,
) -> list[str]:
    """The argv that runs the summarizer as its own process (demo, tests).

    `metrics_port` is off (0) by default here, like `streams.worker.command_line`; None leaves
    it to `TOKENBUDGET_SUMMARIZER_METRICS_PORT` (default 9465).
    """
    import sys

    metrics = [] if metrics_port is None else ["--metrics-port", str(metrics_port)]
    return [
        sys.executable,
        "-m",
        "streams",
        "summarizer",
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        topic_prefix,
        "--partitions",
        str(partitions),
        "--group",
        group,
        "--backend",
        backend,
        "--loglevel",
        loglevel,
        *metrics,
    ]

"""Prometheus metrics of the budget worker and the summarizer, on an injected registry.

The pure core knows nothing of this: the worker's agent hands every processed turn's `Outputs`
to `WorkerMetrics.observe_turn`, which only adds to plain dicts, and `flush()` moves the tallies
of a whole micro-batch into the registry. Per turn that is a few dict updates (~6 µs all told).

Every label is bounded by construction: model *family* (never the model name a client sent),
component, alert level, action kind and rule, summary outcome, backend kind, and a fixed set
of dead-letter reasons. Never a session id, agent id, message id or any text.
"""

from __future__ import annotations

import logging
import re
from collections import Counter as Tally
from functools import lru_cache
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streams.budget import ActionKind, Component, resolve_model
from streams.budget.ledger import AlertLevel
from streams.codecs import CompressedHistory, SummaryStatus, TurnEvent, TurnEventType
from streams.errors import (
    DecodeError,
    InvalidMessageError,
    RejectedEventError,
    SequenceGapError,
    SystemPromptTooLargeError,
    TokenBudgetError,
)

if TYPE_CHECKING:
    from streams.processors.turns import Outputs

log = logging.getLogger("tokenbudget.metrics")

UTILIZATION_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
"""Fine around the thresholds (70, 85, 95%), where operators look."""
TURN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
EMBEDDING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SUMMARY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
COUNT_ERROR_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)

MODEL_FAMILIES = ("openai-o200k", "openai-cl100k", "anthropic", "google", "other")
"""What `resolve_model` maps names to; their series exist from the start."""
SUMMARY_OUTCOMES = ("asked", "applied", "ignored", "failed")
"""asked: a SUMMARIZE planned; applied: an answer replaced its segment; ignored: an answer
found its segment already pruned (or the session ended); failed: the summarizer gave up."""
DECODE_KINDS = (
    "bad_header",
    "unknown_schema",
    "incompatible_schema",
    "wrong_record",
    "bad_body",
    "invalid",
    "too_large",
)
DEAD_LETTER_REASONS = (
    *(f"decode_{kind}" for kind in DECODE_KINDS),
    "rejected",
    "sequence_gap",
    "system_prompt_too_large",
    "invalid_message",
    "other",
)
PRUNING = frozenset({ActionKind.DROP, ActionKind.TRUNCATE, ActionKind.RESET})


@lru_cache(maxsize=1024)
def model_family(model: str) -> str:
    """The bounded family label of a model name: openai-o200k, openai-cl100k, anthropic, …"""
    family = resolve_model(model).family
    return family if family in MODEL_FAMILIES else "other"


def dead_letter_reason(error: BaseException) -> str:
    """A dead letter's metric label: one of `DEAD_LETTER_REASONS`, never the error's text."""
    if isinstance(error, DecodeError):
        return f"decode_{error.kind}" if error.kind in DECODE_KINDS else "other"
    if isinstance(error, SequenceGapError):
        return "sequence_gap"
    if isinstance(error, RejectedEventError):
        too_large = isinstance(error.__cause__, SystemPromptTooLargeError)
        return "system_prompt_too_large" if too_large else "rejected"
    if isinstance(error, InvalidMessageError):
        return "invalid_message"
    return "other"


def backend_kind(name: str) -> str:
    """`openai:gpt-4o-mini` → `openai`: the backend label carries no configured model name."""
    kind = re.split(r"[^a-z0-9_]", name.lower(), maxsplit=1)[0]
    return kind if kind in ("extractive", "openai") else "other"


def _dead_letters(registry: CollectorRegistry) -> Counter:
    counter = Counter(
        "tokenbudget_dead_letters",
        "Records sent to the dead-letter topic, by reason (a fixed category, not the text).",
        ("reason",),
        registry=registry,
    )
    for reason in DEAD_LETTER_REASONS:  # from 0, so rate() counts the very first dead letter
        counter.labels(reason)
    return counter


class WorkerMetrics:
    """The budget worker's metrics; tallies per micro-batch, `flush()` publishes them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        family_component = ("model_family", "component")
        self.turns = Counter(
            "tokenbudget_turns_processed",
            "Turns applied to a session ledger (duplicates and dead letters excluded).",
            family_component,
            registry=registry,
        )
        self.tokens = Counter(
            "tokenbudget_counted_tokens",
            "Tokens of the messages those turns added, as counted for the session's model.",
            family_component,
            registry=registry,
        )
        self.counted = Counter(
            "tokenbudget_counted_messages",
            "Messages counted, by method: exact (a real tokenizer) or estimated (none exists "
            "for the model family; such sessions get a larger safety margin).",
            ("model_family", "method"),
            registry=registry,
        )
        self.duplicates = Counter(
            "tokenbudget_duplicate_events",
            "Redelivered events ignored (seq at or below the session's cursor).",
            registry=registry,
        )
        self.pruned = Counter(
            "tokenbudget_pruned_turns",
            "Turns after which the cascade pruned (DROP, TRUNCATE or RESET).",
            registry=registry,
        )
        self.actions = Counter(
            "tokenbudget_actions",
            "Commands sent to agents, by action kind and the cascade rule that fired.",
            ("kind", "rule"),
            registry=registry,
        )
        self.freed = Counter(
            "tokenbudget_freed_tokens",
            "Tokens removed from sessions by those commands, by rule.",
            ("rule",),
            registry=registry,
        )
        self.summaries = Counter(
            "tokenbudget_summaries",
            "Summaries by outcome: asked (SUMMARIZE planned), applied, ignored (segment "
            "already pruned or session ended), failed (the summarizer gave up).",
            ("outcome",),
            registry=registry,
        )
        self.dead_letters = _dead_letters(registry)
        self.sessions = Gauge(
            "tokenbudget_sessions",
            "Sessions this worker owns, by alert level of their latest snapshot.",
            ("level",),
            registry=registry,
        )
        self.utilization = Histogram(
            "tokenbudget_session_utilization_ratio",
            "Utilization of the effective limit in each snapshot sent (used / effective limit).",
            buckets=UTILIZATION_BUCKETS,
            registry=registry,
        )
        self.turn_seconds = Histogram(
            "tokenbudget_turn_processing_seconds",
            "Time to process one turn event and hand its commands and snapshot to the producer.",
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self.lag = Histogram(
            "tokenbudget_turn_lag_seconds",
            "From the turn record's Kafka timestamp to the end of its processing.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.batch_turns = Histogram(
            "tokenbudget_batch_turns",
            "Events per micro-batch: 1 while the worker keeps up, more as a backlog builds "
            "(at most TOKENBUDGET_BATCH_SIZE).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.embedding_seconds = Histogram(
            "tokenbudget_embedding_seconds",
            "Duration of one embedding model call (a micro-batch's new prunable messages).",
            buckets=EMBEDDING_BUCKETS,
            registry=registry,
        )
        self.embedded = Counter(
            "tokenbudget_embedded_passages",
            "Passages of new prunable messages embedded for importance scoring.",
            registry=registry,
        )
        self.count_error = Histogram(
            "tokenbudget_count_error_ratio",
            "Our count of a context minus the provider's billed prompt tokens, over the bill "
            "(from usage reports): drift for exact models, calibration error for estimated ones.",
            ["model_family", "method"],
            buckets=COUNT_ERROR_BUCKETS,
            registry=registry,
        )
        # Known label values start at 0, so rate() counts a series' first increments too.
        for family in MODEL_FAMILIES:
            for component in Component:
                self.turns.labels(family, component.value)
                self.tokens.labels(family, component.value)
            for method in ("exact", "estimated"):
                self.counted.labels(family, method)
                self.count_error.labels(family, method)
        for outcome in SUMMARY_OUTCOMES:
            self.summaries.labels(outcome)
        self._levels: dict[str, AlertLevel] = {}
        self._level_counts = dict.fromkeys(AlertLevel, 0)
        self._reset_tallies()
        self._publish_levels()

    def _reset_tallies(self) -> None:
        self._turns: Tally[tuple[str, str]] = Tally()
        self._tokens: Tally[tuple[str, str]] = Tally()
        self._counted: Tally[tuple[str, str]] = Tally()
        self._actions: Tally[tuple[str, str]] = Tally()
        self._freed: Tally[str] = Tally()
        self._summaries: Tally[str] = Tally()
        self._duplicates = 0
        self._pruned = 0
        self._utilizations: list[float] = []
        self._turn_seconds: list[float] = []
        self._lags: list[float] = []

    def observe_turn(
        self, turn: TurnEvent, out: Outputs, seconds: float, lag: float | None = None
    ) -> None:
        """Tally one processed turn event and what it produced (published by `flush`)."""
        self._turn_seconds.append(seconds)
        if lag is not None:
            self._lags.append(lag)
        self._duplicates += out.duplicates
        self.observe(out)
        if out.duplicates or out.rejected:
            return
        if turn.type is TurnEventType.SESSION_END:
            self._set_level(turn.session_id, None)
        elif turn.type is TurnEventType.TURN and turn.message is not None and out.snapshots:
            snapshot = out.snapshots[-1]
            family = model_family(snapshot.model)
            key = (family, turn.message.component.value)
            self._turns[key] += 1
            self._tokens[key] += turn.message.token_count or 0
            method = "estimated" if snapshot.snapshot.estimated else "exact"
            self._counted[family, method] += 1

    def observe_summary(self, summary: CompressedHistory, out: Outputs) -> None:
        """Tally a summarizer answer the worker handled (applied, ignored or failed)."""
        if summary.status is SummaryStatus.FAILED:
            self._summaries["failed"] += 1
        self.observe(out)

    def observe(self, out: Outputs) -> None:
        """Tally commands and snapshots of any processing step."""
        for snapshot in out.snapshots:
            self._utilizations.append(snapshot.snapshot.utilization)
            self._set_level(snapshot.session_id, snapshot.snapshot.level)
        pruned = False
        for command in out.commands:
            action = command.action
            self._actions[action.kind.value, action.rule.value] += 1
            if action.tokens_freed > 0:
                self._freed[action.rule.value] += action.tokens_freed
            if action.kind in PRUNING:
                pruned = True
            elif action.kind is ActionKind.SUMMARIZE and action.replacement is None:
                self._summaries["asked"] += 1
        self._pruned += pruned
        for sample in out.usage:  # rare (one per LLM call): observed at once
            method = "estimated" if sample.estimated else "exact"
            self.count_error.labels(model_family(sample.model), method).observe(sample.error)
        self._summaries["applied"] += out.summaries_applied
        self._summaries["ignored"] += out.summaries_ignored

    def flush(self) -> None:
        """Publish what was tallied since the last flush (once per micro-batch)."""
        for (family, component), n in self._turns.items():
            self.turns.labels(family, component).inc(n)
        for (family, component), n in self._tokens.items():
            self.tokens.labels(family, component).inc(n)
        for (family, method), n in self._counted.items():
            self.counted.labels(family, method).inc(n)
        for (kind, rule), n in self._actions.items():
            self.actions.labels(kind, rule).inc(n)
        for rule, n in self._freed.items():
            self.freed.labels(rule).inc(n)
        for outcome, n in self._summaries.items():
            if n:
                self.summaries.labels(outcome).inc(n)
        if self._duplicates:
            self.duplicates.inc(self._duplicates)
        if self._pruned:
            self.pruned.inc(self._pruned)
        for histogram, values in (
            (self.utilization, self._utilizations),
            (self.turn_seconds, self._turn_seconds),
            (self.lag, self._lags),
        ):
            for value in values:
                histogram.observe(value)
        self._publish_levels()
        self._reset_tallies()

    def dead_letter(self, error: BaseException) -> None:
        """Count one dead letter under its bounded reason."""
        self.dead_letters.labels(dead_letter_reason(error)).inc()

    def batch(self, events: int) -> None:
        """Record the size of one micro-batch."""
        self.batch_turns.observe(events)

    def embedding(self, seconds: float, passages: int) -> None:
        """Record one embedding model call over `passages` passages."""
        self.embedding_seconds.observe(seconds)
        self.embedded.inc(passages)

    def forget_sessions(self) -> None:
        """After a rebalance: sessions count again from their next snapshot on this worker."""
        self._levels.clear()
        self._level_counts = dict.fromkeys(AlertLevel, 0)
        self._publish_levels()

    def forget_session(self, session_id: str) -> None:
        """A session evicted for idleness no longer counts (published by `flush`)."""
        self._set_level(session_id, None)

    def _set_level(self, session_id: str, level: AlertLevel | None) -> None:
        old = self._levels.get(session_id)
        if old is level:
            return
        if old is not None:
            self._level_counts[old] -= 1
        if level is None:
            del self._levels[session_id]
        else:
            self._level_counts[level] += 1
            self._levels[session_id] = level

    def _publish_levels(self) -> None:
        for level, count in self._level_counts.items():
            self.sessions.labels(level.value).set(count)


class SummarizerMetrics:
    """The summarizer process's metrics: summaries written by status, duration, dead letters."""

    def __init__(self, registry: CollectorRegistry, backend: str) -> None:
        self.registry = registry
        self.backend = backend_kind(backend)
        self.written = Counter(
            "tokenbudget_summarizer_summaries",
            "Answers written to history.compressed, by backend kind and status (ok, failed).",
            ("backend", "status"),
            registry=registry,
        )
        self.seconds = Histogram(
            "tokenbudget_summarizer_duration_seconds",
            "Time to answer one summary request (backend call, retries and fitting included).",
            ("backend",),
            buckets=SUMMARY_BUCKETS,
            registry=registry,
        )
        self.dead_letters = _dead_letters(registry)
        for status in SummaryStatus:
            self.written.labels(self.backend, status.value.lower())
        self.seconds.labels(self.backend)

    def answered(self, answer: CompressedHistory, seconds: float) -> None:
        """Record one answer and the time it took."""
        self.written.labels(self.backend, answer.status.value.lower()).inc()
        self.seconds.labels(self.backend).observe(seconds)

    def dead_letter(self, error: BaseException) -> None:
        """Count one dead letter under its bounded reason."""
        self.dead_letters.labels(dead_letter_reason(error)).inc()


def serve_metrics(registry: CollectorRegistry, host: str, port: int, process: str) -> int | None:
    """Serve `registry` at http://host:port/metrics from a daemon thread; port 0 = off.

    Returns the bound port (None when off). A port in use is a `TokenBudgetError` naming the
    setting, so a second process on the same machine fails at start, not silently unscraped.
    """
    if not port:
        log.info("%s metrics off (port 0)", process)
        return None
    try:
        server, _ = start_http_server(port, host, registry=registry)
    except OSError as error:
        raise TokenBudgetError(
            f"cannot serve the {process} metrics on {host}:{port}: {error.strerror or error}; "
            "pick another port with --metrics-port (0 turns metrics off)"
        ) from error
    bound = int(server.server_port)
    log.info("%s metrics on http://%s:%d/metrics", process, host, bound)
    return bound

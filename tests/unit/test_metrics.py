"""Worker and summarizer metrics: counts equal what the processor produced, every label value
is bounded (never a session id, model name or text), and /metrics is served over HTTP."""

from __future__ import annotations

import dataclasses
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from streams.broker import free_port
from streams.budget import ActionKind, Component, LexicalScorer, Policy, Rule
from streams.budget.ledger import AlertLevel
from streams.codecs import (
    TURN_EVENT,
    CompressedHistory,
    SessionStart,
    SummaryStatus,
    TurnEvent,
    TurnEventType,
    default_codec,
)
from streams.corpus import generate_conversation
from streams.errors import DecodeError, RejectedEventError, TokenBudgetError
from streams.metrics import (
    DEAD_LETTER_REASONS,
    SUMMARY_OUTCOMES,
    SummarizerMetrics,
    WorkerMetrics,
    backend_kind,
    dead_letter_reason,
    serve_metrics,
)
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor
from streams.summarizer.backend import SummaryRequest

T0 = 1_700_000_000.0
MODELS = ("gpt-4o", "gpt-4-turbo", "claude-sonnet-4-5", "gemini-2.5-pro", "my-llama-70b")
ALLOWED = {
    "model_family": {"openai-o200k", "openai-cl100k", "anthropic", "google", "other"},
    "component": {c.value for c in Component},
    "method": {"exact", "estimated"},
    "kind": {k.value for k in ActionKind},
    "rule": {r.value for r in Rule},
    "outcome": set(SUMMARY_OUTCOMES),
    "level": {level.value for level in AlertLevel},
    "reason": set(DEAD_LETTER_REASONS),
    "backend": {"extractive", "openai", "other"},
    "status": {"ok", "failed"},
}


def session_events(n: int, turns: int = 30) -> list[TurnEvent]:
    """A session start on one of `MODELS` and `turns` generated turns."""
    sid = f"agent-7f3a-session-{n:03d}"
    conversation = generate_conversation(seed=100 + n, turns=turns)
    messages = [m for m in conversation.messages if m.role != "system"][:turns]
    start = SessionStart(
        MODELS[n % len(MODELS)],
        (3000, 4000, 6000)[n % 3],
        Policy(),
        "You are a careful agent.",
        task=conversation.task,
    )
    events = [TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=start)]
    events += [
        TurnEvent(f"{sid}/{i + 1}", sid, i + 1, TurnEventType.TURN, 0.0, message=m)
        for i, m in enumerate(messages)
    ]
    return events


@dataclasses.dataclass
class Run:
    """A fleet processed with metrics: the registry and what the processor produced."""

    metrics: WorkerMetrics
    events: list[TurnEvent]
    outs: list[Outputs]
    answers: list[CompressedHistory]
    dead_letters: list[BaseException]

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def process_fleet() -> Run:
    """Ten sessions over five model families, duplicates, rejections, an ended session,
    summarizer answers (ok and failed) and undecodable records, in micro-batches of 32."""
    metrics = WorkerMetrics(CollectorRegistry())
    processor = TurnProcessor(SessionStore({}, LexicalScorer()), clock=lambda: T0)
    sessions = [session_events(n) for n in range(10)]
    events = [e for round_ in zip(*sessions, strict=True) for e in round_]
    big = dataclasses.replace(
        sessions[0][0].session_start, system_prompt="You must be careful. " * 400
    )
    events += [
        dataclasses.replace(sessions[0][0], session_id="too-big", session_start=big),
        dataclasses.replace(sessions[1][3], session_id="never-started"),
        *events[:40],  # redelivered
        TurnEvent(
            "end", sessions[2][0].session_id, len(sessions[2]), TurnEventType.SESSION_END, 0.0
        ),
    ]
    outs: list[Outputs] = []
    dead_letters: list[BaseException] = []
    for at in range(0, len(events), 32):
        for event in events[at : at + 32]:
            out = Outputs()
            processor.handle(event, out)
            metrics.observe_turn(event, out, 0.002, lag=0.05)
            for _, error in out.rejected:
                metrics.dead_letter(error)
                dead_letters.append(error)
            outs.append(out)
        metrics.flush()
    answers = []
    for i, command in enumerate(c for out in outs for c in out.commands):
        request = SummaryRequest.of(command)
        if request is None:
            continue
        ok = i % 3 != 0
        answer = CompressedHistory(
            request.summary_id,
            request.session_id,
            request.command_id,
            request.replaces,
            "extractive",
            SummaryStatus.OK if ok else SummaryStatus.FAILED,
            T0,
            summary="The agent compared three leads; lead 2 holds." if ok else "",
            error=None if ok else "backend timed out",
        )
        out = Outputs()
        processor.handle_summary(answer, out)
        metrics.observe_summary(answer, out)
        metrics.flush()
        outs.append(out)
        answers.append(answer)
    for value in (b"", b"\xc3\x01garbage", b"not avro at all"):
        try:
            default_codec().loads(TURN_EVENT, value)
        except DecodeError as error:
            metrics.dead_letter(error)
            dead_letters.append(error)
    return Run(metrics, events, outs, answers, dead_letters)


@pytest.fixture(scope="module")
def run() -> Run:
    return process_fleet()


def label_values(registry: CollectorRegistry) -> Iterator[tuple[str, str, str]]:
    """(metric sample name, label name, label value) of every exported sample."""
    for family in registry.collect():
        for sample in family.samples:
            for name, value in sample.labels.items():
                yield sample.name, name, value


def test_no_label_carries_a_session_id_model_name_or_text(run: Run) -> None:
    forbidden = {e.session_id for e in run.events} | {e.event_id for e in run.events}
    forbidden |= {e.message.id for e in run.events if e.message is not None}
    forbidden |= set(MODELS)
    texts = [e.message.text for e in run.events if e.message is not None]
    seen: dict[str, set[str]] = {}
    for sample, name, value in label_values(run.registry):
        assert value not in forbidden, (sample, name, value)
        assert not any(s in value for s in forbidden if len(s) > 8), (sample, name, value)
        assert not any(value in text for text in texts if len(value) > 12), (sample, value)
        if name == "le":
            float(value)  # histogram bucket bounds are numbers
            continue
        assert name in ALLOWED, f"{sample}: unexpected label {name!r}"
        assert value in ALLOWED[name], f"{sample}: {name}={value!r} is not a bounded value"
        seen.setdefault(name, set()).add(value)
    # The fleet really exercised the labels (a scan of zeros would pass vacuously).
    counted = "tokenbudget_counted_messages_total"
    used = {
        (family, method)
        for family in ALLOWED["model_family"]
        for method in ALLOWED["method"]
        if run.value(counted, model_family=family, method=method) > 0
    }
    assert {family for family, _ in used} == ALLOWED["model_family"]
    assert {method for _, method in used} == {"exact", "estimated"}
    assert {"DROP", "SUMMARIZE", "REJECTED"} <= seen["kind"]
    assert {"decode_bad_header", "rejected", "system_prompt_too_large"} <= set(
        dead_letter_reason(e) for e in run.dead_letters
    )


def test_counters_equal_what_the_processor_produced(run: Run) -> None:
    turns = Counter[tuple[str, str]]()
    for event, out in zip(run.events, run.outs, strict=False):
        if event.type is TurnEventType.TURN and out.snapshots and not out.duplicates:
            family = {"claude": "anthropic", "gemini": "google", "my-llama": "other"}
            model = out.snapshots[-1].model
            name = next((v for k, v in family.items() if model.startswith(k)), None)
            name = name or ("openai-o200k" if model == "gpt-4o" else "openai-cl100k")
            turns[name, event.message.component.value] += 1
    for (family, component), n in turns.items():
        labels = {"model_family": family, "component": component}
        assert run.value("tokenbudget_turns_processed_total", **labels) == n
    estimated = sum(n for (family, _), n in turns.items() if family in ("anthropic", "google"))
    estimated += sum(n for (family, _), n in turns.items() if family == "other")
    assert (
        sum(
            run.value("tokenbudget_counted_messages_total", model_family=f, method="estimated")
            for f in ALLOWED["model_family"]
        )
        == estimated
    )

    commands = [c for out in run.outs for c in out.commands]
    by_kind_rule = Counter((c.action.kind.value, c.action.rule.value) for c in commands)
    for (kind, rule), n in by_kind_rule.items():
        assert run.value("tokenbudget_actions_total", kind=kind, rule=rule) == n
    asked = [c for c in commands if SummaryRequest.of(c) is not None]
    ok = [a for a in run.answers if a.status is SummaryStatus.OK]
    summaries = {o: run.value("tokenbudget_summaries_total", outcome=o) for o in SUMMARY_OUTCOMES}
    assert summaries["asked"] == len(asked) > 0
    assert summaries["applied"] + summaries["ignored"] == len(ok) and summaries["applied"] > 0
    assert summaries["failed"] == len(run.answers) - len(ok) > 0

    assert run.value("tokenbudget_duplicate_events_total") == sum(o.duplicates for o in run.outs)
    pruning = {ActionKind.DROP, ActionKind.TRUNCATE, ActionKind.RESET}
    pruned = sum(any(c.action.kind in pruning for c in out.commands) for out in run.outs)
    assert run.value("tokenbudget_pruned_turns_total") == pruned > 0
    snapshots = sum(len(o.snapshots) for o in run.outs)
    assert run.value("tokenbudget_session_utilization_ratio_count") == snapshots
    assert run.value("tokenbudget_turn_processing_seconds_count") == len(run.events)
    reasons = Counter(dead_letter_reason(e) for e in run.dead_letters)
    for reason in DEAD_LETTER_REASONS:
        assert run.value("tokenbudget_dead_letters_total", reason=reason) == reasons[reason]


def test_sessions_gauge_counts_each_live_session_once_at_its_latest_level(run: Run) -> None:
    latest: dict[str, AlertLevel] = {}
    for out in run.outs:
        for snapshot in out.snapshots:
            latest[snapshot.session_id] = snapshot.snapshot.level
    ended = {e.session_id for e in run.events if e.type is TurnEventType.SESSION_END}
    expected = Counter(level.value for sid, level in latest.items() if sid not in ended)
    gauge = {lv.value: run.value("tokenbudget_sessions", level=lv.value) for lv in AlertLevel}
    assert gauge == {lv.value: expected[lv.value] for lv in AlertLevel}
    assert sum(gauge.values()) == 9  # ten sessions, one ended, the oversized one never began
    run.metrics.forget_sessions()  # a rebalance: counted again from their next snapshot
    assert all(run.value("tokenbudget_sessions", level=lv.value) == 0 for lv in AlertLevel)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (DecodeError("x", kind="bad_body"), "decode_bad_body"),
        (DecodeError("x", kind="something new"), "other"),
        (RejectedEventError("session 'agent-42' was never started"), "rejected"),
        (TokenBudgetError("anything"), "other"),
        (ValueError("free text"), "other"),
    ],
)
def test_dead_letter_reasons_are_a_fixed_set(error: BaseException, reason: str) -> None:
    assert dead_letter_reason(error) == reason


def test_summarizer_metrics_label_the_backend_kind_not_the_model() -> None:
    metrics = SummarizerMetrics(CollectorRegistry(), "openai:my-private-finetune")
    answer = CompressedHistory(
        "s1", "sess", "sess/1/0", ("a",), "openai:x", "FAILED", T0, error="HTTP 500"
    )
    metrics.answered(answer, 1.5)
    metrics.answered(dataclasses.replace(answer, status="OK", summary="done", error=None), 0.5)
    registry = metrics.registry
    total = "tokenbudget_summarizer_summaries_total"
    assert registry.get_sample_value(total, {"backend": "openai", "status": "failed"}) == 1
    assert registry.get_sample_value(total, {"backend": "openai", "status": "ok"}) == 1
    seconds = "tokenbudget_summarizer_duration_seconds_sum"
    assert registry.get_sample_value(seconds, {"backend": "openai"}) == 2.0
    for sample, name, value in label_values(registry):
        assert name == "le" or value in ALLOWED[name], (sample, name, value)
    assert backend_kind("extractive") == "extractive" and backend_kind("Bespoke") == "other"


def test_every_metric_is_named_and_documented_by_prometheus_conventions() -> None:
    registries = [WorkerMetrics(CollectorRegistry()).registry]
    registries.append(SummarizerMetrics(CollectorRegistry(), "extractive").registry)
    names = set()
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            assert family.name.startswith("tokenbudget_"), family.name
            assert family.documentation and len(family.documentation) > 20, family.name
            if family.type == "histogram":
                assert family.name.endswith(("_seconds", "_ratio", "_turns")), family.name
            for sample in family.samples:
                if family.type == "counter" and not sample.name.endswith("_created"):
                    assert sample.name.endswith("_total"), sample.name
    assert len(names) >= 15


def test_metrics_are_served_over_http_and_a_taken_port_is_a_clear_error() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    assert serve_metrics(metrics.registry, "127.0.0.1", 0, "worker") is None
    port = serve_metrics(metrics.registry, "127.0.0.1", free_port(), "worker")
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert "# HELP tokenbudget_turns_processed_total" in body
    assert 'tokenbudget_sessions{level="critical"} 0.0' in body
    with pytest.raises(TokenBudgetError, match=f"127.0.0.1:{port}.*--metrics-port"):
        serve_metrics(metrics.registry, "127.0.0.1", port, "worker")


def test_metrics_are_on_by_default_and_the_flags_reach_the_settings(monkeypatch) -> None:
    import streams.summarizer.service as service
    import streams.worker as worker
    from streams.cli import main
    from streams.settings import Settings

    for name in ("TOKENBUDGET_METRICS_PORT", "TOKENBUDGET_SUMMARIZER_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    assert (defaults.metrics_port, defaults.summarizer_metrics_port) == (9464, 9465)
    started: dict[str, object] = {}
    monkeypatch.setattr(worker, "run_worker", lambda s, _level: started.update(worker=s) or 0)
    monkeypatch.setattr(service, "run_summarizer", lambda s, _lvl: started.update(summ=s) or 0)
    assert main(["worker", "--metrics-port", "19464"]) == 0
    assert main(["summarizer", "--metrics-port", "0"]) == 0
    assert started["worker"].metrics_port == 19464  # type: ignore[attr-defined]
    assert started["summ"].summarizer_metrics_port == 0  # type: ignore[attr-defined]

    # Launchers of several processes (demo, tests, benches) leave metrics off unless asked.
    argv = worker.command_line("b:1", topic_prefix="", app_id="a", data_dir="d", web_port=1)
    assert argv[argv.index("--metrics-port") + 1] == "0"
    argv = service.command_line("b:1", topic_prefix="", group="g", metrics_port=None)
    assert "--metrics-port" not in argv
    argv = service.command_line("b:1", topic_prefix="", group="g", metrics_port=9999)
    assert argv[argv.index("--metrics-port") + 1] == "9999"


def test_the_pure_core_imports_no_metrics_and_no_io() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, streams.budget; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'prometheus_client', 'faust', 'aiokafka', 'asyncio', 'httpx', 'socket'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

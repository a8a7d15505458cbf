"""`tokenbudget top` without a terminal: folding snapshots and commands, ranking, and a screen
that never leaves the terminal's size."""

from __future__ import annotations

import pytest

from streams.budget import (
    Action,
    ActionKind,
    AlertLevel,
    Component,
    ComponentUsage,
    Message,
    Rule,
    Snapshot,
)
from streams.codecs import BUDGET_COMMAND, BUDGET_SNAPSHOT, BudgetCommand, BudgetSnapshot
from streams.codecs import default_codec as codec
from streams.top import ASCII, UNICODE, Rate, TopModel, render, screen_text
from streams.top.layout import Columns, meter, shorten
from streams.topics import TopicNames

SHARES = {
    Component.SYSTEM_PROMPT: 0.10,
    Component.TOOL_SCHEMAS: 0.05,
    Component.PINNED: 0.10,
    Component.HISTORY: 0.35,
    Component.TOOL_RESULTS: 0.25,
    Component.RAG_CONTEXT: 0.05,
    Component.SCRATCHPAD: 0.10,
}


def snapshot(utilization: float, limit: int = 4000, history: float | None = None) -> Snapshot:
    """A snapshot at `utilization` of `limit`, the history share filled to `history`."""
    used = round(utilization * limit)
    components = {c: ComponentUsage(c, 0, round(share * limit)) for c, share in SHARES.items()}
    hist_budget = components[Component.HISTORY].budget
    hist = round((history if history is not None else 0.5) * hist_budget)
    components[Component.HISTORY] = ComponentUsage(Component.HISTORY, hist, hist_budget)
    system = components[Component.SYSTEM_PROMPT].budget
    components[Component.SYSTEM_PROMPT] = ComponentUsage(
        Component.SYSTEM_PROMPT, max(0, used - hist), system
    )
    level = (
        AlertLevel.CRITICAL
        if utilization >= 0.95
        else AlertLevel.WARN
        if utilization >= 0.85
        else AlertLevel.INFO
        if utilization >= 0.7
        else AlertLevel.OK
    )
    return Snapshot(limit + 200, limit, 200, used, 3, level, False, 10, components)


def event(sid: str, seq: int, utilization: float, **kw: float) -> BudgetSnapshot:
    return BudgetSnapshot.of(sid, seq, "gpt-4o", snapshot(utilization, **kw), 1000.0 + seq)


def command(
    sid: str,
    seq: int,
    created_at: float,
    kind: ActionKind = ActionKind.DROP,
    rule: Rule = Rule.SLIDING_WINDOW,
    replacement: Message | None = None,
) -> BudgetCommand:
    action = Action(kind, rule, ("m1", "m2"), 3900, 2950, "history over its share", replacement)
    return BudgetCommand(f"{sid}/{seq}/0", sid, seq, action, created_at, "gpt-4o")


def fleet_model(sessions: int = 30, actions: int = 20) -> TopModel:
    model = TopModel(now=0.0)
    for n in range(sessions):
        model.add_snapshot(event(f"agent-{n:03d}-research-pipeline-eu-west", 5, n / sessions), 1.0)
    for n in range(actions):
        model.add_command(command(f"agent-{n:03d}-research-pipeline-eu-west", 5, 100.0 + n), 1.0)
    return model


def test_a_session_keeps_its_newest_snapshot_and_a_redelivered_older_one_changes_nothing() -> None:
    model = TopModel(now=0.0)
    model.add_snapshot(event("a", 1, 0.40), now=1.0)
    model.add_snapshot(event("a", 3, 0.90), now=1.0)
    model.add_snapshot(event("a", 2, 0.50), now=1.0)  # at-least-once: an old one again
    assert model.sessions["a"].seq == 3
    assert model.sessions["a"].snapshot.utilization == pytest.approx(0.90)
    assert model.snapshot_rate.total == 3


def test_sessions_rank_fullest_first_with_ties_broken_by_level_then_id() -> None:
    model = TopModel(now=0.0)
    for sid, utilization in [("cool", 0.2), ("hot", 0.97), ("warm", 0.86), ("b-tie", 0.5)]:
        model.add_snapshot(event(sid, 1, utilization), now=1.0)
    model.add_snapshot(event("a-tie", 1, 0.5), now=1.0)
    assert [r.session_id for r in model.ranked()] == ["hot", "warm", "a-tie", "b-tie", "cool"]
    assert model.levels() == {
        AlertLevel.CRITICAL: 1,
        AlertLevel.WARN: 1,
        AlertLevel.OK: 3,
    }


def test_the_latest_actions_are_the_newest_by_creation_time_whatever_the_arrival_order() -> None:
    model = TopModel(now=0.0, actions_kept=3)
    for created in [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]:  # partitions deliver out of order
        model.add_command(command("s", int(created), created), now=1.0)
    assert [a.created_at for a in model.latest_actions(10)] == [9.0, 7.0, 5.0]
    assert [a.created_at for a in model.latest_actions(2)] == [9.0, 7.0]
    assert model.command_rate.total == 6


def test_a_planned_summary_is_marked_and_an_applied_one_is_not() -> None:
    model = TopModel(now=0.0)
    summary = Message(id="sum", role="user", content="summary", pinned=True)
    model.add_command(command("s", 1, 1.0, ActionKind.SUMMARIZE, Rule.SUMMARIZATION), 1.0)
    model.add_command(command("s", 2, 2.0, ActionKind.SUMMARIZE, Rule.SUMMARIZATION, summary), 1.0)
    applied, planned = model.latest_actions(2)
    assert planned.planned and not applied.planned
    rows = screen_text(render(model, 80, 24, now=2.0)).splitlines()
    assert sum("summarization (asked)" in r for r in rows) == 1
    assert sum("SUMMARIZE" in r for r in rows) == 2


def test_records_are_decoded_by_topic_and_undecodable_bytes_are_counted_not_fatal() -> None:
    topics = TopicNames("p.")
    model = TopModel(now=0.0)
    model.take(topics, topics.events, codec().dumps(BUDGET_SNAPSHOT, event("a", 1, 0.5)), 1.0)
    model.take(topics, topics.commands, codec().dumps(BUDGET_COMMAND, command("a", 1, 5.0)), 1.0)
    model.take(topics, topics.events, b"\x00garbage", 1.0)
    model.take(topics, topics.commands, None, 1.0)
    assert list(model.sessions) == ["a"]
    assert [a.session_id for a in model.latest_actions(5)] == ["a"]
    assert model.undecodable == 2


def test_rates_count_arrivals_over_the_window_only() -> None:
    rate = Rate(started=0.0, window=5.0)
    rate.add(1.0, 10)
    rate.add(2.0, 10)
    assert rate.per_second(2.0) == pytest.approx(10.0)  # 20 in the first 2 s
    assert rate.per_second(5.5) == pytest.approx(20 / 5)
    assert rate.per_second(6.5) == pytest.approx(10 / 5)  # the arrivals at 1 s left the window
    assert rate.per_second(20.0) == 0.0
    assert rate.total == 20


@pytest.mark.parametrize("glyphs", [UNICODE, ASCII], ids=["unicode", "ascii"])
@pytest.mark.parametrize(
    ("width", "height"), [(80, 24), (100, 30), (60, 20), (40, 12), (20, 5), (200, 60), (10, 2)]
)
def test_the_screen_never_exceeds_the_terminal(width: int, height: int, glyphs) -> None:
    model = fleet_model()
    lines = render(model, width, height, now=2.0, source="127.0.0.1:9092 prefix p.", glyphs=glyphs)
    assert len(lines) <= height
    assert all(len("".join(text for text, _ in line)) <= width for line in lines)
    assert all(style for line in lines for _, style in line)


def test_an_80x24_screen_lists_the_hottest_session_first_with_bars_levels_and_actions() -> None:
    model = TopModel(now=0.0)
    model.add_snapshot(event("session-cool", 3, 0.30), now=1.0)
    model.add_snapshot(event("session-hot-0123456789abcdef0123456789", 7, 0.97, history=1.2), 1.0)
    model.add_snapshot(event("session-warm", 4, 0.88), now=1.0)
    model.add_command(command("session-warm", 4, 1_700_000_000.0), now=1.5)
    text = screen_text(render(model, 80, 24, now=2.0, source="127.0.0.1:9092"))
    rows = text.splitlines()
    assert len(rows) <= 24 and max(map(len, rows)) <= 80
    sessions = [r for r in rows if r.startswith("session-")]
    assert sessions[0].startswith("session-hot-0123…")  # cut to the column
    assert "crit" in sessions[0] and " 97%" in sessions[0]
    assert [s.split()[0] for s in sessions[1:]] == ["session-warm", "session-cool"]
    assert "█" in sessions[0]
    header = next(r for r in rows if r.startswith("session "))
    assert all(title in header for title in ("sys", "pin", "hist", "rag", "scr"))
    action = next(r for r in rows if "sliding_window" in r)
    assert "DROP" in action and "3,900→2,950" in action and "session-warm" in action
    assert "3 sessions: 1 crit 1 warn 0 info 1 ok" in rows[1]
    assert "snapshots/s" in rows[1] and "commands/s" in rows[1]


def test_more_sessions_than_rows_end_with_a_count_of_the_rest() -> None:
    lines = screen_text(render(fleet_model(sessions=50), 80, 24, now=2.0)).splitlines()
    assert len(lines) == 24
    more = next(r for r in lines if "more, lower utilization" in r)
    shown = sum(r.startswith("agent-") for r in lines)
    assert f"… {50 - shown} more" in more


def test_an_empty_view_says_what_it_waits_for() -> None:
    text = screen_text(render(TopModel(now=0.0), 80, 24, now=1.0))
    assert "waiting for snapshots" in text and "no commands yet" in text


def test_a_notice_from_the_kafka_client_takes_the_last_line() -> None:
    lines = render(fleet_model(), 80, 24, now=2.0, notice="Unable connect to node 1")
    assert len(lines) == 24
    assert lines[-1] == [("Unable connect to node 1", "warn")]


def test_columns_grow_with_the_width_and_component_bars_go_first_when_narrow() -> None:
    assert Columns.fit(80).total() <= 80 and Columns.fit(80).share >= 4
    assert Columns.fit(40).share == 0 and Columns.fit(40).total() <= 40
    wide = Columns.fit(160)
    assert wide.used and wide.share > Columns.fit(80).share and wide.ident >= 24


def test_bars_and_shortened_ids() -> None:
    assert meter(0.5, 4) == "██··"
    assert meter(1.7, 4) == "████"
    assert meter(0.5625, 4) == "██▎·"  # 2.25 cells
    assert meter(0.5, 4, ASCII) == "##.."
    assert shorten("abcdefghij", 5) == "abcd…"
    assert shorten("abc", 5) == "abc"
    assert len(shorten("x" * 100, 7, ASCII)) == 7

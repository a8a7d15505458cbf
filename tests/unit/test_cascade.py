"""The cascade's rules, one by one, and the edge cases that crash naive implementations."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from streams.budget import (
    STRATEGIES,
    ActionKind,
    BudgetManager,
    Component,
    LexicalScorer,
    Message,
    Policy,
    Rule,
    ToolCallPart,
)
from streams.errors import UnknownStrategyError
from tests.unit.builders import conversation

SMALL = Policy(history=300, tool_results=300)


def ids(messages: list[Message]) -> list[str]:
    return [m.id for m in messages]


def test_a_session_that_fits_is_left_alone(manager_factory) -> None:
    messages = conversation(2)
    prepared = manager_factory(100_000).prepare(messages, task="topic1")
    assert ids(prepared.messages) == ids(messages)
    assert prepared.actions == [] and prepared.dropped_ids == []
    assert prepared.snapshot == prepared.before


def test_an_empty_history_is_fine(manager_factory) -> None:
    prepared = manager_factory().prepare([])
    assert prepared.messages == [] and prepared.snapshot.used == 3  # reply priming only


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_fits_the_budget_and_keeps_order(manager_factory, strategy: str) -> None:
    messages = conversation(30)
    manager = manager_factory(policy=SMALL)
    prepared = manager.prepare(messages, task="topic7 detail3", strategy=strategy)
    snapshot = prepared.snapshot
    assert snapshot.components[Component.HISTORY].used <= 300
    assert snapshot.components[Component.TOOL_RESULTS].used <= 300
    assert snapshot.used <= snapshot.effective_limit
    order = {m.id: i for i, m in enumerate(messages)}
    kept = [order[m.id] for m in prepared.messages if m.id in order]
    assert kept == sorted(kept)
    assert prepared.messages[0].id == "sys"
    assert set(prepared.dropped_ids).isdisjoint(ids(prepared.messages))


def test_sliding_window_drops_the_oldest_first(manager_factory) -> None:
    messages = conversation(20, tools=False)
    prepared = manager_factory(policy=Policy(history=400)).prepare(
        messages, strategy="sliding_window"
    )
    kept = [m for m in prepared.messages if m.id != "sys"]
    assert kept[-1].id == messages[-1].id
    first_kept = ids(messages).index(kept[0].id)
    assert ids(kept) == ids(messages)[first_kept:]
    (action,) = prepared.actions
    assert action.rule is Rule.SLIDING_WINDOW and action.kind is ActionKind.DROP
    assert action.tokens_before == prepared.before.used
    assert action.tokens_after == prepared.snapshot.used
    assert "history" in action.reason and "oldest" in action.reason


def test_importance_keeps_what_the_task_is_about(manager_factory) -> None:
    messages = conversation(20, tools=False)
    prepared = manager_factory(policy=Policy(history=400)).prepare(
        messages, task="topic3 detail5", strategy="importance"
    )
    assert {"u3", "r3"} <= set(ids(prepared.messages))
    assert "u4" in prepared.dropped_ids
    assert prepared.actions[-1].rule is Rule.IMPORTANCE


def test_importance_never_drops_the_newest_turn(manager_factory) -> None:
    messages = conversation(10, tools=False)
    prepared = manager_factory(policy=Policy(history=200)).prepare(
        messages, task="topic0", strategy="importance"
    )
    assert ids(prepared.messages)[-1] == messages[-1].id


def test_tool_calls_and_results_go_together(manager_factory) -> None:
    messages = conversation(12)
    for strategy in ("sliding_window", "importance", "cascade"):
        prepared = manager_factory(policy=SMALL).prepare(messages, task="topic5", strategy=strategy)
        kept = set(ids(prepared.messages))
        for i in range(12):
            assert (f"a{i}" in kept) == (f"t{i}" in kept), (strategy, i)


def test_pinned_and_fixed_messages_survive(manager_factory) -> None:
    messages = conversation(15)
    messages.insert(3, Message(id="goal", role="user", content="Goal: ship v2", pinned=True))
    prepared = manager_factory(policy=SMALL).prepare(messages, task="x")
    assert {"sys", "goal"} <= set(ids(prepared.messages))
    assert prepared.messages[1].component is Component.PINNED


def test_exact_duplicate_tool_results_keep_only_the_newest(manager_factory) -> None:
    messages = [Message(id="sys", role="system", content="agent")]
    for i in range(8):
        messages.append(
            Message(id=f"a{i}", role="assistant", content=(ToolCallPart(f"c{i}", "status", "{}"),))
        )
        messages.append(
            Message(
                id=f"t{i}",
                role="tool",
                tool_call_id=f"c{i}",
                content="status: pending, retry later. " * 20,
            )
        )
    prepared = manager_factory(policy=Policy(tool_results=400)).prepare(messages)
    kept = ids(prepared.messages)
    assert "t7" in kept and "a7" in kept
    assert not {f"t{i}" for i in range(7)} & set(kept)
    assert not {f"a{i}" for i in range(7)} & set(kept)
    assert prepared.actions[0].rule is Rule.DUPLICATE_TOOL_RESULT
    assert "tool loop" in prepared.actions[0].reason


def test_near_duplicate_tool_results_are_dropped_too(manager_factory) -> None:
    body = " ".join(f"src/payments/mod{j}.py:{j * 7}: undefined symbol sym{j}" for j in range(40))
    messages = [Message(id="sys", role="system", content="agent")]
    for i in range(4):
        messages.append(
            Message(id=f"a{i}", role="assistant", content=(ToolCallPart(f"c{i}", "build", "{}"),))
        )
        messages.append(
            Message(id=f"t{i}", role="tool", tool_call_id=f"c{i}", content=f"attempt {i}: {body}")
        )
    prepared = manager_factory(policy=Policy(tool_results=1000, history=0.3)).prepare(messages)
    assert ids(prepared.messages) == ["sys", "a3", "t3"]
    assert {a.rule for a in prepared.actions} == {Rule.NEAR_DUPLICATE_TOOL_RESULT}


def test_an_oversized_tool_result_is_cut_to_fit_and_marked(manager_factory) -> None:
    messages = [
        Message(id="sys", role="system", content="agent"),
        Message(id="a", role="assistant", content=(ToolCallPart("c", "read_file", "{}"),)),
        Message(id="t", role="tool", tool_call_id="c", content="log line ok\n" * 2000),
    ]
    prepared = manager_factory(policy=Policy(tool_results=500)).prepare(messages)
    (action,) = prepared.actions
    assert action.kind is ActionKind.TRUNCATE and action.rule is Rule.OVERSIZED_TOOL_RESULT
    cut = prepared.messages[-1]
    assert cut.truncated and cut.id == "t" and cut.token_count <= 500
    assert cut.text.endswith("[… truncated by token budget]")
    assert prepared.snapshot.components[Component.TOOL_RESULTS].used == cut.token_count


def test_one_message_larger_than_the_whole_budget_is_cut_not_crashed(manager_factory) -> None:
    huge = Message(id="u", role="user", content="lorem ipsum dolor sit amet " * 5000)
    prepared = manager_factory(4000).prepare([huge], task="lorem")
    (message,) = prepared.messages
    assert message.truncated and prepared.snapshot.used <= prepared.snapshot.effective_limit
    assert prepared.actions[-1].rule is Rule.DEGRADATION


def test_everything_pinned_and_too_large_resets_to_a_handoff(manager_factory) -> None:
    messages = [Message(id="sys", role="system", content="agent")]
    messages += [
        Message(id=f"p{i}", role="user", content=f"fact {i}: " + "blah " * 200, pinned=True)
        for i in range(30)
    ]
    prepared = manager_factory(4000).prepare(messages, task="finish the report")
    reset = prepared.actions[-1]
    assert reset.kind is ActionKind.RESET and "critical" in reset.reason
    assert ids(prepared.messages)[0] == "sys"
    handoff = prepared.messages[-1]
    assert handoff.pinned and "finish the report" in handoff.text
    assert prepared.snapshot.used <= prepared.snapshot.effective_limit


def test_everything_pinned_but_fitting_is_not_touched(manager_factory) -> None:
    messages = [
        Message(id=f"p{i}", role="user", content="fact " * 50, pinned=True) for i in range(5)
    ]
    prepared = manager_factory(4000).prepare(messages)
    assert prepared.actions == [] and len(prepared.messages) == 5


def test_summarization_with_a_summarizer_pins_a_summary_where_the_segment_was(
    manager_factory,
) -> None:
    seen: list[tuple[list[str], int]] = []

    def summarize(segment: list[Message], target: int) -> str:
        seen.append(([m.id for m in segment], target))
        return "Earlier: explored topics " + ", ".join(m.id for m in segment[:5])

    messages = conversation(20, tools=False)
    manager = manager_factory(
        policy=Policy(history=600, pinned=0.2, scratchpad=0.0), summarizer=summarize
    )
    prepared = manager.prepare(messages, strategy="summarization")
    ((segment, target),) = seen
    assert segment[0] == "u0"
    summary = prepared.messages[1]
    assert summary.pinned and summary.summary_of[0] == "u0"
    assert summary.token_count <= target
    assert not set(segment) & set(ids(prepared.messages))
    assert prepared.actions[0].kind is ActionKind.SUMMARIZE
    assert prepared.actions[0].replacement is summary


def test_summarization_without_a_summarizer_plans_it_and_prunes_meanwhile(
    manager_factory,
) -> None:
    messages = conversation(20, tools=False)
    prepared = manager_factory(policy=Policy(history=600)).prepare(
        messages, strategy="summarization"
    )
    planned = [a for a in prepared.actions if a.kind is ActionKind.SUMMARIZE]
    assert planned and planned[0].target_tokens and planned[0].replacement is None
    assert prepared.snapshot.components[Component.HISTORY].used <= 600


def test_cascade_plans_a_summary_once_utilization_reaches_info(manager_factory) -> None:
    manager = manager_factory(
        policy=Policy(
            history=0.9,
            tool_results=0.0,
            system_prompt=0.05,
            tool_schemas=0.0,
            pinned=0.05,
            scratchpad=0.0,
            rag_context=0.0,
        )
    )
    pool = conversation(40, tools=False)
    limit = manager.budgets.effective_limit
    assert not manager.prepare(pool[:5]).actions
    n = next(n for n in range(2, len(pool)) if manager.snapshot(pool[:n]).used >= 0.72 * limit)
    messages = pool[:n]
    assert manager.snapshot(messages).used < 0.85 * limit
    prepared = manager.prepare(messages)
    assert [a.kind for a in prepared.actions] == [ActionKind.SUMMARIZE]
    assert prepared.dropped_ids == []


def test_cascade_prunes_old_messages_by_age_then_recent_ones_by_importance(
    manager_factory,
) -> None:
    messages = conversation(30, tools=False)
    prepared = manager_factory(policy=Policy(history=200)).prepare(messages, task="topic29")
    rules = [a.rule for a in prepared.actions if a.kind is ActionKind.DROP]
    assert rules[:2] == [Rule.SLIDING_WINDOW, Rule.IMPORTANCE]


def test_actions_chain_tokens_before_and_after(manager_factory) -> None:
    prepared = manager_factory(policy=SMALL).prepare(conversation(40), task="topic2")
    drops = [a for a in prepared.actions if a.kind is not ActionKind.SUMMARIZE]
    assert drops[0].tokens_before == prepared.before.used
    for earlier, later in itertools.pairwise(drops):
        assert earlier.tokens_after == later.tokens_before
    assert drops[-1].tokens_after == prepared.snapshot.used
    assert all(a.reason for a in prepared.actions)


def test_unknown_strategy_is_a_clear_error(manager_factory) -> None:
    with pytest.raises(UnknownStrategyError, match="expected one of sliding_window"):
        manager_factory().prepare([], strategy="random")


def test_the_default_scorer_is_not_loaded_when_nothing_needs_ranking() -> None:
    manager = BudgetManager("gpt-4o", 100_000)
    manager.prepare(conversation(3))
    assert manager._scorer is None


def test_lexical_scorer_prefers_rare_task_terms() -> None:
    messages = [
        Message(id="a", role="user", content="the weather is nice and the sky is blue"),
        Message(id="b", role="user", content="port 6432 is the staging database port"),
        Message(id="c", role="user", content="the database was slow yesterday"),
    ]
    scores = LexicalScorer(recency=0.0).score("which port does the staging database use", messages)
    assert scores[1] > scores[2] > scores[0]


def test_near_duplicate_fingerprints_are_the_same_in_every_process() -> None:
    # Python salts str hashes per process; a restarted worker must find the same duplicates.
    code = "from streams.budget.hygiene import shingles; print(sorted(shingles('a b c d e f')))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1 and runs.pop().count(",") == 3  # four 3-word shingles

"""Invariants of `prepare`, checked on generated conversations and policies (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streams.budget import (
    STRATEGIES,
    ActionKind,
    BudgetManager,
    Component,
    LexicalScorer,
    Message,
    Policy,
    ToolCallPart,
)

WORDS = ["alpha", "deploy", "kafka", "port", "6432", "rollback", "🙂", "naïve", "{", "}", "ok"]
text = st.lists(st.sampled_from(WORDS), min_size=0, max_size=120).map(" ".join)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages = [Message(id="sys", role="system", content="You are an agent.")]
    for i in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["user", "assistant", "tool", "pinned", "rag", "scratch"]))
        if kind == "tool":
            calls = draw(st.integers(1, 2))
            messages.append(
                Message(
                    id=f"a{i}",
                    role="assistant",
                    content=tuple(
                        ToolCallPart(f"c{i}.{k}", "search", '{"q": 1}') for k in range(calls)
                    ),
                )
            )
            for k in range(draw(st.integers(0, calls))):
                messages.append(
                    Message(
                        id=f"t{i}.{k}", role="tool", tool_call_id=f"c{i}.{k}", content=draw(text)
                    )
                )
        elif kind == "pinned":
            messages.append(Message(id=f"p{i}", role="user", content=draw(text), pinned=True))
        elif kind == "rag":
            messages.append(
                Message(
                    id=f"g{i}", role="user", content=draw(text), component=Component.RAG_CONTEXT
                )
            )
        elif kind == "scratch":
            messages.append(
                Message(
                    id=f"s{i}", role="assistant", content=draw(text), component=Component.SCRATCHPAD
                )
            )
        else:
            messages.append(Message(id=f"m{i}", role=kind, content=draw(text)))
    return messages


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    weights = [draw(st.floats(0.01, 1.0)) for _ in range(5)]
    scale = 0.75 / sum(weights)
    history, tools, rag, scratch, pinned = (round(w * scale, 4) for w in weights)
    return Policy(
        system_prompt=0.1,
        tool_schemas=0.0,
        pinned=pinned,
        history=history,
        tool_results=tools,
        rag_context=rag,
        scratchpad=scratch,
        prune_to=draw(st.sampled_from([1.0, 0.8])),
    )


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(conversations(), policies(), st.integers(300, 4000), st.sampled_from(STRATEGIES))
def test_prepare_invariants(messages, policy, limit, strategy) -> None:
    manager = BudgetManager(
        "gpt-4o",
        limit,
        policy,
        scorer=LexicalScorer(),
        summarizer=(lambda seg, n: "summary " * (n // 4))
        if strategy == "summarization" and limit % 2
        else None,
    )
    prepared = manager.prepare(messages, task="kafka port rollback", strategy=strategy)
    snapshot = prepared.snapshot
    kept = prepared.messages
    reset = any(a.kind is ActionKind.RESET for a in prepared.actions)
    event(f"pruned={bool(prepared.dropped_ids)} reset={reset}")

    # kept tokens never exceed the budget
    assert snapshot.used <= snapshot.effective_limit
    for component in Component:
        if component.prunable:
            assert snapshot.components[component].used <= snapshot.components[component].budget

    # pinned and fixed messages survive (a RESET keeps only the fixed ones)
    kept_ids = {m.id for m in kept}
    for m in messages:
        if m.component.fixed or (m.pinned and not reset):
            assert m.id in kept_ids

    # order is preserved
    position = {m.id: i for i, m in enumerate(messages)}
    originals = [position[m.id] for m in kept if m.id in position]
    assert originals == sorted(originals)

    # tool calls and their results stay whole
    by_id = {m.id: m for m in messages}
    for m in kept:
        if m.id not in by_id:
            continue
        for call in m.tool_call_ids:
            answers = [r.id for r in messages if call in r.answers]
            assert all(a in kept_ids for a in answers)
        for call in m.answers:
            assert all(c.id in kept_ids for c in messages if call in c.tool_call_ids)

    # cached counts equal a fresh recount, and the snapshot equals a fresh ledger
    for m in kept:
        assert m.token_count == manager.counter.measure(m)
    fresh = [m.uncounted() for m in kept]
    assert manager.snapshot(fresh).used == snapshot.used

    # dropped ids are exactly the originals that are gone
    assert set(prepared.dropped_ids) == set(position) - kept_ids

"""The corpus generator: reproducible sessions whose questions point at the right messages."""

from __future__ import annotations

import json
import re

import pytest

from streams.budget import Component, Message, ToolCallPart
from streams.corpus import KINDS, Conversation, generate_conversation, generate_fleet


def fingerprint(conversation: Conversation) -> tuple[object, ...]:
    messages = tuple(
        (m.id, m.role, m.component, m.content, m.tool_call_id, m.name, m.timestamp)
        for m in conversation.messages
    )
    return messages, tuple(conversation.questions), tuple(conversation.task_changes)


@pytest.fixture(scope="module")
def fleet() -> list[Conversation]:
    return [generate_conversation(seed, 60, kind) for seed in range(4) for kind in KINDS]


def test_the_same_seed_gives_the_same_conversation() -> None:
    for kind in KINDS:
        assert fingerprint(generate_conversation(7, 40, kind)) == fingerprint(
            generate_conversation(7, 40, kind)
        )


def test_another_seed_gives_another_conversation() -> None:
    first, second = generate_conversation(1), generate_conversation(2)
    assert [m.text for m in first.messages] != [m.text for m in second.messages]


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown conversation kind"):
        generate_conversation(1, kind="chitchat")  # type: ignore[arg-type]


def test_sessions_are_long_and_ids_unique(fleet: list[Conversation]) -> None:
    for conversation in fleet:
        ids = [m.id for m in conversation.messages]
        assert len(ids) >= 100
        assert len(set(ids)) == len(ids)
        assert conversation.messages[0].role == "system"
        assert conversation.messages[1].role == "user"
        assert conversation.messages[1].text == conversation.task


def test_evidence_ids_name_existing_messages(fleet: list[Conversation]) -> None:
    for conversation in fleet:
        ids = {m.id for m in conversation.messages}
        assert len(conversation.questions) >= 8
        for question in conversation.questions:
            assert question.evidence_ids
            assert set(question.evidence_ids) <= ids


def test_every_tool_call_is_answered_right_after_it(fleet: list[Conversation]) -> None:
    for conversation in fleet:
        messages = conversation.messages
        for i, message in enumerate(messages):
            if not message.tool_call_ids:
                continue
            calls = [p for p in message.content if isinstance(p, ToolCallPart)]
            assert message.role == "assistant"
            results = messages[i + 1 : i + 1 + len(calls)]
            assert [r.tool_call_id for r in results] == [c.id for c in calls]
            assert [r.name for r in results] == [c.name for c in calls]
            for call in calls:
                assert isinstance(json.loads(call.arguments), dict)
        answered = [m.tool_call_id for m in messages if m.role == "tool"]
        made = [c for m in messages for c in m.tool_call_ids]
        assert sorted(answered) == sorted(made)
        assert len(set(made)) == len(made)


def test_questions_are_about_facts_held_by_their_evidence(fleet: list[Conversation]) -> None:
    for conversation in fleet:
        facts = {f.key: f for f in conversation.facts}
        for question in conversation.questions:
            assert set(question.fact_keys) <= set(facts)
            for key in question.fact_keys:
                fact = facts[key]
                holders = [
                    conversation.message(i)
                    for i in question.evidence_ids
                    if fact.statement in conversation.message(i).text
                    or fact.note in conversation.message(i).text
                ]
                assert holders, f"no evidence message states {key}"
                assert fact.answer in question.answer
                assert fact.answer not in question.text


def test_near_misses_never_give_the_answer(fleet: list[Conversation]) -> None:
    for conversation in fleet:
        for fact in conversation.facts:
            value = re.compile(rf"(?<![\w.-]){re.escape(fact.answer)}(?![\w-])")
            for miss in fact.near_misses:
                assert not value.search(miss), (fact.key, miss)


def test_facts_are_spread_early_to_late_and_some_are_buried(fleet: list[Conversation]) -> None:
    buried_deep = 0
    for conversation in fleet:
        index = {m.id: i for i, m in enumerate(conversation.messages)}
        n = len(conversation.messages)
        places = sorted(index[q.evidence_ids[0]] / n for q in conversation.questions)
        assert places[0] < 1 / 3 and places[-1] > 2 / 3
        assert any(1 / 3 <= p <= 2 / 3 for p in places)
        for fact in conversation.facts:
            if conversation.placements[fact.key] != "buried":
                continue
            (holder,) = [
                conversation.message(q.evidence_ids[0])
                for q in conversation.questions
                if q.fact_keys == (fact.key,)
            ]
            assert holder.role == "tool"
            at = max(holder.text.find(fact.note), holder.text.find(fact.statement))
            buried_deep += at > 1000
    assert buried_deep >= 8


def test_sessions_hold_rag_scratchpad_a_tool_loop_and_a_task_change(
    fleet: list[Conversation],
) -> None:
    for conversation in fleet:
        components = {m.component for m in conversation.messages}
        assert {Component.RAG_CONTEXT, Component.SCRATCHPAD, Component.TOOL_RESULTS} <= components
        results = [m.text for m in conversation.messages if m.role == "tool"]
        assert len(results) > len(set(results)), "the polling loop repeats a result exactly"
        assert max(len(t) for t in results) > 6000, "one tool result is a dump of a long log"
        assert sum(len(t) > 1500 for t in results) >= 4, "and more are large"
        (change,) = conversation.task_changes
        message: Message = conversation.messages[change.index]
        assert message.id == change.message_id and message.role == "user"
        assert change.task in message.text and change.task != conversation.task


def test_a_fleet_alternates_kinds_with_distinct_ids() -> None:
    fleet = generate_fleet(4, turns=30, seed=3)
    assert [c.kind for c in fleet] == ["research", "coding", "research", "coding"]
    ids = [m.id for c in fleet for m in c.messages]
    assert len(set(ids)) == len(ids)
    assert fingerprint(fleet[2]) == fingerprint(generate_fleet(4, turns=30, seed=3)[2])

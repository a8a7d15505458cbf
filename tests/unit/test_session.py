"""A live session: O(1) ledger per turn, the cascade applied in place, idempotent commands."""

from __future__ import annotations

from streams.budget import ActionKind, Message, Policy, Session
from streams.budget.summarization import summary_message
from tests.unit.builders import conversation


def test_adding_turns_keeps_the_ledger_equal_to_a_recount(manager_factory) -> None:
    manager = manager_factory(policy=Policy(history=400))
    session = Session(manager, task="topic3")
    for message in conversation(30, tools=True):
        assert session.add(message)
        if not session.fits():
            prepared = session.prepare()
            assert [m.id for m in prepared.messages] == list(session.messages)
        assert session.snapshot() == manager.snapshot(list(session.messages.values()))
    assert session.fits()


def test_a_duplicate_turn_changes_nothing(manager_factory) -> None:
    session = Session(manager_factory())
    message = Message(id="u", role="user", content="hello")
    assert session.add(message)
    before = session.snapshot()
    assert not session.add(Message(id="u", role="user", content="hello"))
    assert session.snapshot() == before


def test_applying_the_same_commands_twice_is_a_no_op(manager_factory) -> None:
    manager = manager_factory(policy=Policy(history=300, tool_results=300))
    messages = conversation(20)
    twin = Session(manager)
    session = Session(manager)
    for m in messages:
        session.add(m)
        twin.add(Message(id=m.id, role=m.role, content=m.content, tool_call_id=m.tool_call_id))
    prepared = session.prepare()
    assert any(a.kind is ActionKind.DROP for a in prepared.actions)
    twin.apply(prepared.actions)
    once = list(twin.messages)
    twin.apply(prepared.actions)
    assert list(twin.messages) == once == list(session.messages)


def test_a_summary_replaces_only_what_is_still_there_in_place(manager_factory) -> None:
    session = Session(manager_factory())
    for m in conversation(5, tools=False):
        session.add(m)
    session.remove(["u0"])
    summary = summary_message("earlier turns", ["u0", "r0", "u1"])
    assert session.apply_summary(summary)
    assert list(session.messages)[:3] == ["sys", summary.id, "r1"]
    assert not session.apply_summary(summary)
    gone = summary_message("all gone", ["u0"])
    assert not session.apply_summary(gone)
    assert session.snapshot() == session.manager.snapshot(list(session.messages.values()))

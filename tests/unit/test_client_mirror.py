"""The client's local copy of a session, without a broker: it validates before publishing,
applies each command once, knows when it is in step with the worker, falls back to the local
cascade, and converts provider messages. The worker side is the real turn processor."""

from __future__ import annotations

import pytest

from streams.budget import ActionKind, Message, Policy, to_anthropic, to_openai
from streams.client.messages import detect, to_messages
from streams.client.mirror import Mirror, ledger_matches
from streams.codecs import SessionStart, TurnEvent, TurnEventType
from streams.errors import InvalidMessageError, PolicyError, SystemPromptTooLargeError
from streams.processors.turns import Outputs
from tests.unit.builders import conversation
from tests.unit.test_processor import processor

SID = "s"


def begin(limit: int = 3_000, prompt: str = "You are an agent.") -> tuple[Mirror, TurnEvent]:
    start = SessionStart("gpt-4o", limit, Policy(), prompt)
    event = TurnEvent(f"{SID}/0", SID, 0, TurnEventType.SESSION_START, 0.0, session_start=start)
    return Mirror.begin(SID, start), event


def test_a_system_prompt_over_its_share_raises_before_anything_is_published() -> None:
    with pytest.raises(SystemPromptTooLargeError, match="share"):
        begin(limit=1_000, prompt="Think step by step and cite every source. " * 100)
    with pytest.raises(PolicyError, match="histroy"):
        Policy.from_mapping({"histroy": 0.5})


def test_in_step_after_the_worker_commands_are_applied_and_equal_to_its_ledger() -> None:
    mirror, start = begin()
    proc = processor()
    out = Outputs()
    proc.handle(start, out)
    turns = [m for m in conversation(30) if m.role != "system"]
    commands_seen = 0
    for message in turns:
        seq = mirror.next_seq()
        mirror.add(message)
        step = Outputs()
        proc.handle(
            TurnEvent(f"{SID}/{seq}", SID, seq, TurnEventType.TURN, 0.0, message=message), step
        )
        for snapshot in step.snapshots:  # the snapshot may come first: not in step until the
            mirror.observe(snapshot)  # commands it names are applied
        assert mirror.in_step() == (not step.commands)
        for command in step.commands:
            assert mirror.apply(command)
            assert not mirror.apply(command)  # twice: a no-op
            commands_seen += 1
        assert mirror.in_step()
        assert ledger_matches(mirror, step.snapshots[-1].snapshot)
    assert commands_seen > 0


def test_the_fallback_cuts_locally_without_touching_the_mirror() -> None:
    mirror, _ = begin(limit=2_000)
    for message in (m for m in conversation(40) if m.role != "system"):
        mirror.next_seq()
        mirror.add(message)
    assert not mirror.in_step() and not mirror.session.fits()
    before = len(mirror.session)
    context = mirror.context(fallback=True)
    assert context.fallback and context.tokens <= context.snapshot.effective_limit
    assert len(context.messages) < before == len(mirror.session)
    assert context.messages[0].role == "system"


def test_a_message_id_used_twice_is_an_error() -> None:
    mirror, _ = begin()
    mirror.add(Message(id="m1", role="user", content="hello"))
    with pytest.raises(InvalidMessageError, match="already has a message 'm1'"):
        mirror.add(Message(id="m1", role="user", content="again"))


def test_a_worker_calibration_factor_recounts_the_mirror() -> None:
    start = SessionStart("claude-sonnet-4", 20_000, Policy(), "You are an agent.")
    mirror = Mirror.begin(SID, start)
    for message in conversation(6):
        if message.role != "system":
            mirror.add(message)
    used = mirror.session.snapshot().used
    table_proc = processor()
    table_proc.store.calibration.load("claude-sonnet-4", 1.25)
    out = Outputs()
    event = TurnEvent(f"{SID}/0", SID, 0, TurnEventType.SESSION_START, 0.0, session_start=start)
    table_proc.handle(event, out)
    assert out.snapshots[0].count_factor == 1.25
    mirror.observe(out.snapshots[0])
    assert mirror.session.manager.count_factor == 1.25
    assert mirror.session.snapshot().used > used


def test_provider_messages_are_recognised_and_converted() -> None:
    call = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "tu1", "name": "search", "input": {"q": "x"}}],
    }
    results = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "tu1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "tu2", "content": "two"},
        ],
    }
    assert detect(call) == detect(results) == "anthropic"
    assert [m.tool_call_id for m in to_messages(results, "p-")] == ["tu1", "tu2"]
    ours = Message(id="a1", role="assistant", content="Plan: search, then read.")
    openai = to_openai([ours])[0]
    assert detect(openai) == "openai"
    (back,) = to_messages(openai, "p-")
    assert back.text == ours.text and back.id == "p-0"
    (anthropic,) = to_messages(to_anthropic([ours])["messages"][0], "q-")
    assert anthropic.text == ours.text
    with pytest.raises(InvalidMessageError, match="a Message or a chat message dict"):
        to_messages("just text", "p-")  # type: ignore[arg-type]


def test_commands_of_kind_rejected_mark_the_session() -> None:
    mirror, _ = begin()
    proc = processor()
    out = Outputs()
    big = SessionStart("gpt-4o", 1_000, Policy(), "Be thorough. " * 200)
    proc.handle(
        TurnEvent(f"{SID}/0", SID, 0, TurnEventType.SESSION_START, 0.0, session_start=big), out
    )
    (command,) = out.commands
    assert command.action.kind is ActionKind.REJECTED
    mirror.apply(command)
    assert mirror.rejected is not None and "share" in mirror.rejected

"""The worker's limits on hostile input, over plain-dict tables and an injected clock: oversized
messages are cut (and the agent told), long sessions drop their oldest messages, idle sessions
are evicted with their rows, and impossible sessions are refused instead of raising."""

from __future__ import annotations

import pytest

from streams.budget import (
    ActionKind,
    LexicalScorer,
    Message,
    Policy,
    Rule,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from streams.budget.limits import TRUNCATION_MARKER, cut_message, oldest_unit
from streams.codecs import DeadLetter, SessionStart, TurnEvent, TurnEventType
from streams.errors import DecodeError, InvalidMessageError
from streams.processors.limits import DEAD_LETTER_KEEP_BYTES, Limits
from streams.processors.state import CURSOR, SEP, UNSEEN, SessionStore
from streams.processors.turns import Outputs, TurnProcessor
from streams.settings import Settings

T0 = 1_700_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def processor(limits: Limits, table: dict | None = None, clock: Clock | None = None):
    store = SessionStore({} if table is None else table, LexicalScorer())
    return TurnProcessor(store, clock=clock or Clock(), limits=limits)


def start(sid: str, limit: int = 100_000, prompt: str = "You are an agent.", **kw) -> TurnEvent:
    session = SessionStart("gpt-4o", limit, Policy(), prompt, **kw)
    return TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=session)


def turn(sid: str, seq: int, message: Message) -> TurnEvent:
    return TurnEvent(f"{sid}/{seq}", sid, seq, TurnEventType.TURN, 0.0, message=message)


def drive(proc: TurnProcessor, events: list[TurnEvent]) -> Outputs:
    out = Outputs()
    for event in events:
        proc.handle(event, out)
    return out


def recount(proc: TurnProcessor, sid: str):
    live = proc.store.live[sid]
    return live.session.manager.snapshot([m.uncounted() for m in live.session.messages.values()])


def test_the_defaults_are_the_settings_defaults(monkeypatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TOKENBUDGET_{name.upper()}", raising=False)
    assert Limits.from_settings(Settings()) == Limits()


def test_an_oversized_message_is_cut_the_agent_told_and_the_ledger_counts_the_cut() -> None:
    proc = processor(Limits(max_message_tokens=200))
    huge = Message(id="big", role="tool", tool_call_id="c1", content="log line 42 ok\n" * 2000)
    out = drive(proc, [start("s"), turn("s", 1, huge)])
    assert out.rejected == []
    (command,) = [c for c in out.commands if c.action.rule is Rule.OVERSIZED_MESSAGE]
    action = command.action
    assert action.kind is ActionKind.TRUNCATE and action.message_ids == ("big",)
    kept = proc.store.live["s"].session.messages["big"]
    assert kept.truncated and kept.token_count <= 200 and kept.text.endswith(TRUNCATION_MARKER)
    assert action.replacement is not None and action.replacement.content == kept.content
    assert action.tokens_before - action.tokens_after == huge.token_count - kept.token_count
    snapshot = out.snapshots[-1]
    assert command.command_id in snapshot.command_ids
    assert snapshot.snapshot == recount(proc, "s")  # exact, for the cut message
    assert "cut to" in action.reason and "TOKENBUDGET_MAX_MESSAGE_TOKENS" in action.reason


def test_a_multi_part_message_is_cut_part_by_part_and_keeps_its_tool_calls() -> None:
    proc = processor(Limits(max_message_tokens=300))
    parts = (
        TextPart("Here is what the tools said."),
        ToolResultPart("c1", "first result " * 400),
        ToolResultPart("c2", "second result " * 400),
    )
    message = Message(id="u", role="user", content=parts)
    cut = cut_message(proc.store.manager(start("x").session_start).counter, message, 300)
    assert cut is not None and cut.truncated and cut.token_count <= 300
    assert [type(p) for p in cut.content] == [type(p) for p in parts]
    assert cut.content[0] == parts[0] and cut.answers == ("c1", "c2")
    assert cut.content[2].content == ""  # past the cut: emptied, still answering c2


def test_a_message_whose_fixed_parts_alone_are_too_large_is_a_dead_letter() -> None:
    proc = processor(Limits(max_message_tokens=100))
    call = ToolCallPart("c1", "search", '{"q": "' + "kafka " * 300 + '"}')
    message = Message(id="a", role="assistant", content=(call,))
    out = drive(proc, [start("s"), turn("s", 1, message)])
    ((_, error),) = out.rejected
    assert "cannot be cut" in str(error)
    live = proc.store.live["s"]
    assert "a" not in live.session and live.seq == 1  # the refusal takes its seq: no hole
    assert [s.seq for s in out.snapshots] == [0, 1]
    drive(proc, [turn("s", 2, Message(id="b", role="user", content="next"))])
    assert "b" in live.session and live.seq == 2


def test_a_system_prompt_over_the_largest_message_is_rejected_with_a_command() -> None:
    proc = processor(Limits(max_message_tokens=100))
    out = drive(proc, [start("s", prompt="Be careful. " * 200)])
    (command,) = out.commands
    assert command.action.kind is ActionKind.REJECTED and "largest message" in command.action.reason
    assert len(out.rejected) == 1 and "s" not in proc.store.live


def test_tool_schemas_over_their_share_and_impossible_policies_are_refused_not_raised() -> None:
    proc = processor(Limits())
    tools = ({"name": "t", "description": "x" * 4000},)
    heavy = SessionStart("gpt-4o", 1000, Policy(), "hi", tools=tools)
    impossible = SessionStart("gpt-4o", 100, Policy(history=5000), "hi")
    events = [
        TurnEvent("a/0", "a", 0, TurnEventType.SESSION_START, 0.0, session_start=heavy),
        TurnEvent("b/0", "b", 0, TurnEventType.SESSION_START, 0.0, session_start=impossible),
    ]
    out = drive(proc, events)
    assert [e.session_id for e, _ in out.rejected] == ["a", "b"]
    assert "tool_schemas share" in str(out.rejected[0][1])
    assert [c.session_id for c in out.commands] == ["a"]  # the agent learns why
    assert proc.store.live == {}


def test_past_the_message_limit_the_oldest_messages_go_with_their_tool_results() -> None:
    limits = Limits(max_session_messages=6)
    proc = processor(limits)
    messages = [
        Message(id="goal", role="user", content="Find the bug.", pinned=True),
        Message(id="call", role="assistant", content=(ToolCallPart("c1", "grep", "{}"),)),
        Message(id="result", role="tool", tool_call_id="c1", content="3 matches"),
    ]
    messages += [Message(id=f"m{i}", role="user", content=f"note {i}") for i in range(8)]
    out = drive(proc, [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(messages))])
    session = proc.store.live["s"].session
    assert len(session) == 6
    assert list(session.messages) == ["s/system", "goal", "m4", "m5", "m6", "m7"]
    drops = [c.action for c in out.commands if c.action.rule is Rule.MESSAGE_LIMIT]
    assert drops[0].message_ids == ("call", "result")  # a tool call goes with its result
    assert all(a.kind is ActionKind.DROP for a in drops)
    assert out.snapshots[-1].snapshot == recount(proc, "s")
    assert not any(k.endswith("m:m0") for k in proc.store.table)  # rows deleted too


def test_a_session_full_of_protected_messages_refuses_more_of_them() -> None:
    proc = processor(Limits(max_session_messages=3))
    pinned = [Message(id=f"p{i}", role="user", content=f"fact {i}", pinned=True) for i in range(3)]
    out = drive(proc, [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(pinned))])
    ((event, error),) = out.rejected
    assert event.message.id == "p2" and "all of them protected" in str(error)
    last = Message(id="n", role="user", content="a plain note")
    out = drive(proc, [turn("s", 4, last)])  # prunable: it is the oldest that may go
    assert out.rejected == [] and "n" not in proc.store.live["s"].session


def test_oldest_unit_skips_protected_messages_and_their_tool_results() -> None:
    messages = [
        Message(id="sys", role="system", content="x"),
        Message(id="call", role="assistant", content=(ToolCallPart("c", "f", "{}"),), pinned=True),
        Message(id="res", role="tool", tool_call_id="c", content="r"),
        Message(id="u", role="user", content="hello"),
    ]
    assert oldest_unit({m.id: m for m in messages}) == ["u"]
    assert oldest_unit({m.id: m for m in messages[:3]}) == []


def test_idle_sessions_are_evicted_with_their_rows_oldest_first() -> None:
    clock = Clock()
    table: dict = {}
    proc = processor(Limits(session_idle_timeout=600), table, clock)
    hello = Message(id="m", role="user", content="hello")
    drive(proc, [start("old"), turn("old", 1, hello)])
    clock.now += 300
    drive(proc, [start("new"), turn("new", 1, hello)])
    clock.now += 301
    assert proc.idle_sessions() == ["old"]
    clock.now += 300
    assert proc.idle_sessions() == ["old", "new"]
    drive(proc, [turn("new", 2, Message(id="m2", role="user", content="still here"))])
    assert proc.idle_sessions() == ["old"]  # activity moves a session to the back
    out = Outputs()
    assert proc.evict("old", out) and not proc.evict("new", out)
    (command,) = out.commands
    assert command.action.kind is ActionKind.REJECTED and command.action.rule is Rule.IDLE_TIMEOUT
    assert "idle timeout of 600 s" in command.action.reason
    assert not any(k.startswith("old" + SEP) for k in table)
    assert "old" not in proc.store.live
    late = drive(proc, [turn("old", 2, Message(id="x", role="user", content="back"))])
    assert "never started" in str(late.rejected[0][1])


def test_a_restarted_worker_keeps_the_idle_clock_of_its_sessions() -> None:
    clock = Clock()
    table: dict = {}
    limits = Limits(session_idle_timeout=600)
    proc = processor(limits, table, clock)
    drive(proc, [start("a")])
    clock.now += 400
    drive(proc, [start("b")])
    clock.now += 300
    reborn = processor(limits, table, clock)
    reborn.store.rebuild()
    assert reborn.idle_sessions() == ["a"]
    table[f"b{SEP}{CURSOR}"].pop("at")  # a cursor written before activity times existed
    older = processor(limits, table, clock)
    older.store.rebuild()
    assert older.store.live["b"].last_seen == UNSEEN
    assert older.idle_sessions() == ["b", "a"]
    assert not older.evict("b", Outputs())  # its idle clock starts now instead
    assert older.idle_sessions() == ["a"]


def test_no_timeout_means_no_eviction() -> None:
    clock = Clock()
    proc = processor(Limits(session_idle_timeout=0), clock=clock)
    drive(proc, [start("s")])
    clock.now += 10**9
    assert proc.idle_sessions() == [] and not proc.evict("s", Outputs())


def test_an_event_over_the_size_limit_is_refused_before_decoding() -> None:
    limits = Limits(max_event_bytes=2048)
    limits.check_event_size(b"k" * 48, b"v" * 2000)
    with pytest.raises(DecodeError) as raised:
        limits.check_event_size(b"k" * 49, b"v" * 2000)
    assert raised.value.kind == "too_large" and "2049 bytes" in str(raised.value)
    key, value = limits.for_dead_letter(b"k" * 49, b"v" * 5000)
    assert len(value) == DEAD_LETTER_KEEP_BYTES and key == b"k" * 49
    assert limits.for_dead_letter(b"k", b"small") == (b"k", b"small")


@pytest.mark.parametrize(
    "session_id", ["a\x1fm:b", "tab\there", "x" * 513], ids=["separator", "tab", "long"]
)
def test_identifiers_with_control_characters_or_too_long_are_dead_letters(session_id) -> None:
    from streams.codecs import TURN_EVENT, default_codec

    codec = default_codec()
    event = TurnEvent(
        "e", session_id, 0, TurnEventType.SESSION_START, 0.0, start("s").session_start
    )
    with pytest.raises(DecodeError) as raised:
        codec.loads(TURN_EVENT, codec.dumps(TURN_EVENT, event))
    assert isinstance(raised.value.__cause__, InvalidMessageError)


def test_a_dead_letter_reason_stays_short() -> None:
    letter = DeadLetter.of(
        ValueError("x" * 100_000),
        topic="t",
        partition=0,
        offset=1,
        key=None,
        value=b"",
        timestamp=T0,
    )
    assert len(letter.reason) <= 2000 and letter.reason.endswith("(100000 characters)")


def test_an_agent_applying_the_commands_ends_with_the_worker_ledger() -> None:
    """What the client SDK does: add its own full messages, apply TRUNCATE and DROP as sent."""
    from streams.budget import BudgetManager, Session

    proc = processor(Limits(max_message_tokens=150, max_session_messages=6))
    messages = [
        Message(id=f"m{i}", role="user", content=f"step {i} " * (400 if i % 4 == 1 else 5))
        for i in range(12)
    ]
    events = [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(messages))]
    out = drive(proc, events)
    rules = {c.action.rule for c in out.commands}
    assert {Rule.OVERSIZED_MESSAGE, Rule.MESSAGE_LIMIT} <= rules
    agent = Session(BudgetManager("gpt-4o", 100_000, Policy(), scorer=LexicalScorer()))
    agent.add(Message(id="s/system", role="system", content="You are an agent."))
    for event in events[1:]:
        agent.add(event.message.uncounted())
        agent.apply([c.action for c in out.commands if c.seq == event.seq])
    assert agent.snapshot() == out.snapshots[-1].snapshot
    assert list(agent.messages) == list(proc.store.live["s"].session.messages)

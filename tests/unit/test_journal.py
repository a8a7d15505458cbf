"""A worker killed in the middle of a turn's (or a summary's) table writes comes back, redoes it
and ends exactly where an uninterrupted worker does, sending the same commands under the same
ids (an agent applies an id once, so a different command under a used id would be lost).

Found by the crash soak (`bench/soak.py`): a turn redone from a half-written state pruned
differently under the same command ids. Here every crash point of every turn is tried.
"""

from __future__ import annotations

import copy

from streams.budget import ActionKind, LexicalScorer, Policy
from streams.codecs import CompressedHistory, SessionStart, SummaryStatus, TurnEvent, TurnEventType
from streams.codecs.commands import command_to_record
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor
from tests.unit.builders import conversation

SID = "s"


class Changelog(dict):
    """A dict table that records its writes in order, like the changelog topic."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.ops: list[tuple[str, object]] = []

    def __setitem__(self, key, value) -> None:
        self.ops.append((key, copy.deepcopy(value)))
        super().__setitem__(key, value)

    def pop(self, key, default=None):
        if key in self:
            self.ops.append((key, None))
        return super().pop(key, default)


def processor(table: dict) -> TurnProcessor:
    return TurnProcessor(SessionStore(table, LexicalScorer()), clock=lambda: 1_700_000_000.0)


def events(turns: int, limit: int = 1500) -> list[TurnEvent]:
    start = SessionStart("gpt-4o", limit, Policy(), "You are an agent.", task="topic3")
    messages = [m for m in conversation(turns) if m.role != "system"]
    return [
        TurnEvent(f"{SID}-0", SID, 0, TurnEventType.SESSION_START, 0.0, session_start=start),
        *(
            TurnEvent(f"{SID}-{i + 1}", SID, i + 1, TurnEventType.TURN, 0.0, message=m)
            for i, m in enumerate(messages)
        ),
    ]


def crashed_at(before: dict, ops: list[tuple[str, object]], k: int) -> dict:
    """The table a restarted worker restores: what was there, plus the first `k` writes."""
    table = copy.deepcopy(before)
    for key, value in ops[:k]:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = copy.deepcopy(value)
    return table


def state(proc: TurnProcessor) -> list[tuple[str, str]]:
    live = proc.store.get(SID)
    assert live is not None
    return [(m.id, m.text) for m in live.session.messages.values()]


def commands(out: Outputs) -> dict[str, dict]:
    return {c.command_id: command_to_record(c) for c in out.commands}


def test_a_turn_cut_short_at_any_write_is_redone_identically() -> None:
    stream = events(40)
    table = Changelog()
    proc = processor(table)
    tried = pruning = 0
    for event in stream:
        before, mark = copy.deepcopy(dict(table)), len(table.ops)
        out = Outputs()
        proc.handle(event, out)
        ops = table.ops[mark:]
        if event.type is not TurnEventType.TURN:
            continue
        pruning += any(c.action.kind is not ActionKind.SUMMARIZE for c in out.commands)
        for k in range(len(ops)):  # killed after k of the turn's writes reached the changelog
            reborn = processor(crashed_at(before, ops, k))
            again = Outputs()
            reborn.handle(event, again)
            assert state(reborn) == state(proc), (event.seq, k, len(ops))
            assert commands(again) == commands(out) or not again.commands, (event.seq, k)
            for command_id, record in commands(again).items():  # an id means one command
                assert record == commands(out)[command_id], (event.seq, k)
            tried += 1
    assert pruning >= 5 and tried > 100  # the cascade pruned often: real multi-write turns


def test_a_summary_cut_short_at_any_write_is_redone_identically() -> None:
    table = Changelog()
    proc = processor(table)
    out = Outputs()
    for event in events(40, limit=4000):  # until the session asks for a summary
        proc.handle(event, out)
        asked = [c for c in out.commands if c.action.kind is ActionKind.SUMMARIZE]
        if asked:
            break
    assert asked, "the session should have asked for a summary"
    request = asked[0]
    summary = CompressedHistory(
        summary_id="summary-1",
        session_id=SID,
        source_command_id=request.command_id,
        replaces=request.action.message_ids,
        backend="test",
        status=SummaryStatus.OK,
        created_at=1.0,
        summary="The user asked about topic3; the tools found three leads.",
    )
    before, mark = copy.deepcopy(dict(table)), len(table.ops)
    applied = Outputs()
    proc.handle_summary(summary, applied)
    ops = table.ops[mark:]
    assert applied.summaries_applied == 1 and len(ops) > 2
    for k in range(1, len(ops)):
        reborn = processor(crashed_at(before, ops, k))
        again = Outputs()
        reborn.handle_summary(summary, again)
        assert state(reborn) == state(proc), k
        assert commands(again) == commands(applied), k  # the agent gets the same command
    # delivered again after it completed: nothing changes, nothing is sent
    done = Outputs()
    proc.handle_summary(summary, done)
    assert done.commands == [] and done.summaries_ignored == 1

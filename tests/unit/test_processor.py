"""The turn processor over plain-dict tables: exact ledgers, duplicates, rejections, rebuilds."""

from __future__ import annotations

import json

import pytest

from streams.budget import ActionKind, LexicalScorer, Message, Policy
from streams.codecs import SessionStart, TurnEvent, TurnEventType
from streams.codecs.commands import command_to_record
from streams.errors import SequenceGapError
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor
from tests.unit.builders import conversation


class Recording(dict):
    """A dict that counts the JSON bytes written to it, like a changelog would."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.records = 0

    def __setitem__(self, key, value) -> None:
        self.written += len(key) + len(json.dumps(value))
        self.records += 1
        super().__setitem__(key, value)

    def pop(self, key, default=None):
        if key in self:
            self.written += len(key)
            self.records += 1
        return super().pop(key, default)


def processor(table=None) -> TurnProcessor:
    store = SessionStore(Recording() if table is None else table, LexicalScorer())
    return TurnProcessor(store, clock=lambda: 1_700_000_000.0)


def start(sid: str, seq: int = 0, prompt: str = "You are an agent.", **policy) -> TurnEvent:
    return TurnEvent(
        f"{sid}-{seq}",
        sid,
        seq,
        TurnEventType.SESSION_START,
        0.0,
        session_start=SessionStart("gpt-4o", 4000, Policy(**policy), prompt, task="topic3"),
    )


def turn(sid: str, seq: int, message: Message) -> TurnEvent:
    return TurnEvent(f"{sid}-{seq}", sid, seq, TurnEventType.TURN, 0.0, message=message)


def drive(proc: TurnProcessor, events: list[TurnEvent]) -> Outputs:
    out = Outputs()
    for event in events:
        proc.handle(event, out)
    return out


def test_every_turn_gets_a_snapshot_and_the_ledger_stays_exact() -> None:
    proc = processor()
    turns = [m for m in conversation(30) if m.role != "system"]
    out = drive(proc, [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))])
    assert [s.seq for s in out.snapshots] == list(range(len(turns) + 1))
    live = proc.store.live["s"]
    recount = live.session.manager.snapshot([m.uncounted() for m in live.session.messages.values()])
    assert out.snapshots[-1].snapshot == recount
    kinds = [c.action.kind for c in out.commands]
    assert ActionKind.DROP in kinds and set(kinds) <= {ActionKind.DROP, ActionKind.SUMMARIZE}
    assert out.snapshots[-1].snapshot.used <= out.snapshots[-1].snapshot.effective_limit


def test_duplicates_and_redeliveries_change_nothing() -> None:
    proc = processor()
    turns = [m for m in conversation(10) if m.role != "system"]
    events = [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))]
    once = drive(proc, events)
    again = drive(proc, events[3:] + events[:5])
    assert again.duplicates == len(events[3:]) + 5
    assert again.snapshots == [] and again.commands == []
    assert proc.store.live["s"].session.snapshot() == once.snapshots[-1].snapshot


def test_turns_for_unknown_sessions_and_second_starts_are_rejected() -> None:
    proc = processor()
    out = drive(
        proc,
        [
            turn("ghost", 1, Message(id="m", role="user", content="hi")),
            start("s"),
            start("s", seq=5),
        ],
    )
    reasons = [str(error) for _, error in out.rejected]
    assert "never started" in reasons[0] and "already started" in reasons[1]


def test_a_system_prompt_over_its_share_is_rejected_with_a_command() -> None:
    proc = processor()
    out = drive(proc, [start("s", prompt="You are very thorough. " * 100, system_prompt=50)])
    (command,) = out.commands
    assert command.action.kind is ActionKind.REJECTED
    assert "share is 50 tokens" in command.action.reason
    ((_, error),) = out.rejected
    assert "share is 50 tokens" in str(error)
    assert "s" not in proc.store.live


def test_a_restarted_worker_rebuilds_sessions_from_the_tables() -> None:
    table = Recording()
    proc = processor(table)
    turns = [m for m in conversation(25) if m.role != "system"]
    events = [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))]
    drive(proc, events[:40])
    reborn = processor(table)
    rest = drive(reborn, events[30:])
    assert rest.duplicates == 10
    drive(proc, events[40:])
    assert list(reborn.store.live["s"].session.messages) == list(
        proc.store.live["s"].session.messages
    )
    assert reborn.store.live["s"].session.snapshot() == proc.store.live["s"].session.snapshot()


@pytest.mark.parametrize("length", [10, 1000])
def test_what_a_turn_writes_does_not_grow_with_the_session(length: int) -> None:
    table = Recording()
    proc = processor(table)
    body = "a steady stream of agent chatter about the build " * 3
    roomy = SessionStart("gpt-4o", 10_000_000, Policy(), "")
    events = [TurnEvent("s-0", "s", 0, TurnEventType.SESSION_START, 0.0, session_start=roomy)]
    events += [
        turn("s", i + 1, Message(id=f"m{i}", role="user", content=body)) for i in range(length)
    ]
    drive(proc, events[:-1])
    before, records = table.written, table.records
    drive(proc, events[-1:])
    per_turn = table.written - before
    assert 150 < per_turn < 600, per_turn
    assert table.records - records == 1  # the message row, with the cursor folded in


def test_a_rebuild_finds_the_newest_cursor_wherever_it_was_folded() -> None:
    table = Recording()
    proc = processor(table)
    turns = [m for m in conversation(30) if m.role != "system"]
    events = [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))]
    task = TurnEvent("s-t", "s", len(events), TurnEventType.TASK_UPDATE, 0.0, task="new task")
    dropped = 0
    for event in [*events, task]:  # a restart after every event, pruning turns included
        dropped += sum(c.action.kind is ActionKind.DROP for c in drive(proc, [event]).commands)
        reborn = processor(table)
        reborn.store.rebuild()
        live, want = reborn.store.live["s"], proc.store.live["s"]
        assert (live.seq, live.next_pos, live.session.task) == (
            want.seq,
            want.next_pos,
            want.session.task,
        )
        assert live.session.snapshot() == want.session.snapshot()
    assert dropped and live.session.task == "new task"


def test_a_turn_cut_short_by_a_crash_is_finished_on_redelivery() -> None:
    """The message row reached the changelog, its drops and cursor did not: redo the cascade."""
    turns = [m for m in conversation(12) if m.role != "system"]
    events = [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))]
    whole = processor()
    expected = drive(whole, events)
    cut = next(
        i
        for i, e in enumerate(expected.snapshots)
        if e.seq
        and any(c.seq == e.seq and c.action.kind is ActionKind.DROP for c in expected.commands)
    )  # the first turn that pruned
    table = Recording()
    crashed = processor(table)
    drive(crashed, events[:cut])
    live = crashed.store.get("s")
    crashed.store.add("s", live, events[cut].message.uncounted())  # only the message row landed
    reborn = processor(table)
    out = drive(reborn, events[cut:])
    assert out.duplicates == 0
    assert [command_to_record(c) for c in out.commands] == [
        command_to_record(c) for c in expected.commands if c.seq >= events[cut].seq
    ]
    assert reborn.store.live["s"].session.snapshot() == whole.store.live["s"].session.snapshot()


def test_a_hole_in_the_seqs_holds_the_session_until_the_missing_event_comes() -> None:
    """A consumer that skipped an event (Faust can, while rebalancing) must not leave a ledger
    short of it: later events are refused until the producer sends the missing one again."""
    turns = [m for m in conversation(12) if m.role != "system"]
    events = [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))]
    proc = processor()
    out = drive(proc, events[:4] + events[5:8])  # seq 4 never arrived
    gaps = [error for _, error in out.rejected]
    assert [(e.expected, e.got) for e in gaps] == [(4, 5), (4, 6), (4, 7)]
    assert "expected seq 4, got 5" in str(gaps[0]) and isinstance(gaps[0], SequenceGapError)
    assert proc.store.live["s"].seq == 3 and out.snapshots[-1].seq == 3
    healed = drive(proc, events[2:])  # the client resends from what the worker acknowledged
    assert healed.rejected == [] and healed.duplicates == 2
    whole = drive(processor(), events)
    assert healed.snapshots[-1] == whole.snapshots[-1]
    assert [c.command_id for c in out.commands + healed.commands] == [
        c.command_id for c in whole.commands
    ]


def test_the_newest_cursor_survives_when_the_row_holding_it_goes() -> None:
    # A summary that replaces the newest message deletes the row its cursor was folded into.
    table = Recording()
    proc = processor(table)
    turns = [m for m in conversation(4) if m.role != "system"][:3]
    drive(proc, [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))])
    store, live = proc.store, proc.store.live["s"]
    assert live.carrier == turns[-1].id
    with store.journal("s", "summary"):
        store.remove("s", live, [turns[-1].id])
    reborn = processor(table)
    reborn.store.rebuild()
    assert reborn.store.live["s"].seq == live.seq == 3

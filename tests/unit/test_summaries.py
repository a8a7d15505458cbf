"""Summaries in the turn processor: asked for once at the info threshold, applied once, applied
only to what is left, paused after a failure, and kept across a restart. Plain-dict tables."""

from __future__ import annotations

from streams.budget import ActionKind, Component
from streams.codecs import BudgetCommand, CompressedHistory, SummaryStatus
from streams.processors.state import PendingSummary
from streams.processors.turns import RETRY_SUMMARY_AFTER, Outputs, TurnProcessor
from streams.summarizer.backend import SummaryRequest
from tests.unit.builders import conversation
from tests.unit.test_processor import Recording, drive, processor, start, turn

T0 = 1_700_000_000.0


def events(n: int = 12):
    turns = [m for m in conversation(n) if m.role != "system"]
    return [start("s"), *(turn("s", i + 1, m) for i, m in enumerate(turns))]


def planned(out: Outputs) -> list[BudgetCommand]:
    return [
        c
        for c in out.commands
        if c.action.kind is ActionKind.SUMMARIZE and c.action.replacement is None
    ]


def until_requested(proc: TurnProcessor) -> tuple[BudgetCommand, Outputs, int]:
    """Drive turns until the first SUMMARIZE request; the index of the next event."""
    all_events = events()
    out = Outputs()
    for index, event in enumerate(all_events):
        proc.handle(event, out)
        if planned(out):
            return planned(out)[0], out, index + 1
    raise AssertionError("no summary was requested")


def answer(
    command: BudgetCommand, text: str = "the team chose plan B; budget 4,200 USD"
) -> CompressedHistory:
    request = SummaryRequest.of(command)
    assert request is not None
    return CompressedHistory(
        request.summary_id,
        request.session_id,
        request.command_id,
        request.replaces,
        "test",
        SummaryStatus.OK,
        T0,
        summary=text,
        token_count=0,
        source_seq=request.seq,
    )


def recount(proc: TurnProcessor):
    live = proc.store.live["s"]
    messages = [m.uncounted() for m in live.session.messages.values()]
    return live.session.manager.snapshot(messages)


def test_a_summary_is_asked_for_once_at_the_info_threshold_with_its_segment() -> None:
    proc = processor()
    command, out, _ = until_requested(proc)
    snapshot = out.snapshots[-2].snapshot  # before the turn that asked
    assert command.model == "gpt-4o"
    assert command.action.target_tokens and command.action.segment
    assert [m.id for m in command.action.segment] == list(command.action.message_ids)
    assert snapshot.pressure < 0.70 <= out.snapshots[-1].snapshot.pressure
    outstanding, asked = command, 1
    for event in events(60)[len(out.snapshots) :]:
        step = Outputs()
        proc.handle(event, step)
        for again in planned(step):  # asked again only once the outstanding segment is gone
            session = proc.store.live["s"].session
            assert not any(i in session for i in outstanding.action.message_ids)
            outstanding, asked = again, asked + 1
    assert asked > 1  # the unanswered segment was pruned away, so it asked again


def test_a_summary_replaces_its_segment_once_and_the_ledger_stays_exact() -> None:
    proc = processor()
    command, _, _ = until_requested(proc)
    before = proc.store.live["s"].session.ledger.total
    out = Outputs()
    proc.handle_summary(answer(command), out)
    session = proc.store.live["s"].session
    assert out.summaries_applied == 1 and proc.store.live["s"].pending is None
    [applied] = out.commands
    summary = applied.action.replacement
    assert applied.action.kind is ActionKind.SUMMARIZE and summary is not None
    assert summary.pinned and summary.component is Component.PINNED
    assert summary.id == SummaryRequest.of(command).summary_id
    assert applied.action.message_ids == command.action.message_ids
    assert not any(i in session for i in command.action.message_ids)
    assert list(session.messages)[1] == summary.id  # where its segment began, after the prompt
    assert session.ledger.total < before == applied.action.tokens_before
    assert out.snapshots[-1].snapshot == recount(proc)

    again = Outputs()
    proc.handle_summary(answer(command, "a different text for the same command"), again)
    assert again.commands == [] and again.summaries_ignored == 1
    assert session.messages[summary.id].text == summary.text


def test_a_summary_of_a_partly_pruned_segment_replaces_only_what_is_left() -> None:
    proc = processor()
    command, _, _ = until_requested(proc)
    live = proc.store.live["s"]
    gone = command.action.message_ids[:4]
    live.session.remove(gone)
    out = Outputs()
    proc.handle_summary(answer(command), out)
    [applied] = out.commands
    assert applied.action.message_ids == command.action.message_ids[4:]
    assert out.snapshots[-1].snapshot == recount(proc)


def test_a_failed_summary_pauses_requests_and_the_worker_prunes_meanwhile() -> None:
    proc = processor()
    command, _, next_index = until_requested(proc)
    failed = CompressedHistory(
        "x",
        "s",
        command.command_id,
        command.action.message_ids,
        "test",
        SummaryStatus.FAILED,
        T0,
        error="backend down",
    )
    after = Outputs()
    proc.handle_summary(failed, after)
    live = proc.store.live["s"]
    assert after.commands == [] and live.pending is not None and live.pending.command_id is None
    assert live.pending.retry_after == live.seq + RETRY_SUMMARY_AFTER
    retry_after = live.pending.retry_after
    rest = drive(proc, events(60)[next_index:])
    asked = [c.seq for c in planned(rest)]
    assert asked and all(seq >= retry_after for seq in asked)
    assert any(c.action.kind is ActionKind.DROP for c in rest.commands)  # pruned meanwhile


def test_an_outstanding_request_survives_a_restart() -> None:
    table = Recording()
    proc = processor(table)
    command, _, next_index = until_requested(proc)
    reborn = processor(table)
    reborn.store.get("s")
    assert reborn.store.live["s"].pending == proc.store.live["s"].pending
    rest = drive(reborn, events()[next_index : next_index + 2])
    assert planned(rest) == []  # still outstanding: not asked again
    applied = Outputs()
    reborn.handle_summary(answer(command), applied)
    assert applied.summaries_applied == 1


def test_a_summary_for_an_ended_or_unknown_session_is_ignored() -> None:
    proc = processor()
    command, _, _ = until_requested(proc)
    stranger = answer(command)
    out = Outputs()
    proc.handle_summary(
        CompressedHistory(
            stranger.summary_id,
            "nobody",
            stranger.source_command_id,
            stranger.replaces,
            "test",
            SummaryStatus.OK,
            T0,
            summary="x",
        ),
        out,
    )
    assert out.commands == [] and out.summaries_ignored == 1


def test_with_no_pinned_room_the_session_stops_looking_for_a_segment_for_a_while() -> None:
    proc = processor()
    turns = [m for m in conversation(12) if m.role != "system"]
    out = drive(proc, [start("s", pinned=0), *(turn("s", i + 1, m) for i, m in enumerate(turns))])
    live = proc.store.live["s"]
    assert planned(out) == []
    due = next(s.seq for s in out.snapshots if s.snapshot.pressure >= 0.70)
    assert live.pending is not None and live.pending.command_id is None
    assert live.pending.retry_after > due  # looked once, then paused


def test_a_request_cut_short_by_a_crash_is_sent_again_with_the_same_id() -> None:
    whole = processor()
    command, _, next_index = until_requested(whole)
    table = Recording()
    crashed = processor(table)
    drive(crashed, events()[: next_index - 1])
    live = crashed.store.get("s")
    asking = events()[next_index - 1]
    crashed.store.add("s", live, asking.message.uncounted())  # rows landed, command and cursor not
    crashed.store.set_pending(
        "s", live, PendingSummary(command.command_id, command.action.message_ids)
    )
    reborn = processor(table)
    out = drive(reborn, [asking])
    assert [c.command_id for c in planned(out)] == [command.command_id]

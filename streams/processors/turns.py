"""The turn processor: one decoded `TurnEvent` in, commands, a snapshot and dead letters out.

Kafka-free so it can be tested with dicts for tables; the Faust agent in `streams.app` feeds it
micro-batches and sends what it returns. Per turn: ignore duplicates (seq at or below the
session's cursor), count the message once, update the ledger in O(1), and run the cascade only
when the session no longer fits.

Summaries: when the total or a prunable component reaches the info threshold, the session asks
the summarizer for one (a SUMMARIZE command carrying the segment), once: no new request while
one is outstanding. Under pressure meanwhile, the cascade prunes instead of waiting. The answer
(`CompressedHistory`) replaces what is still present of the segment with a pinned summary, and
the agent gets the same replacement as a SUMMARIZE command with the summary attached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from streams.budget import Action, ActionKind, Component, Message, Rule
from streams.budget.calibration import UsageSample
from streams.budget.summarization import summary_message
from streams.codecs import (
    BudgetCommand,
    BudgetSnapshot,
    CompressedHistory,
    SummaryStatus,
    TurnEvent,
    TurnEventType,
)
from streams.errors import (
    RejectedEventError,
    SequenceGapError,
    SystemPromptTooLargeError,
    TokenBudgetError,
)
from streams.processors.limits import MAX_TASK_CHARS, Limits, admit, trim
from streams.processors.state import UNSEEN, Live, PendingSummary, SessionStore

Clock = Callable[[], float]
RETRY_SUMMARY_AFTER = 20
"""Turns a session waits after a failed summary before it asks again."""


@dataclass(slots=True)
class Outputs:
    """What processing produced, in order; the agent sends them all before acking."""

    commands: list[BudgetCommand] = field(default_factory=list)
    snapshots: list[BudgetSnapshot] = field(default_factory=list)
    rejected: list[tuple[TurnEvent, TokenBudgetError]] = field(default_factory=list)
    duplicates: int = 0
    summaries_applied: int = 0
    summaries_ignored: int = 0
    usage: list[UsageSample] = field(default_factory=list)


class TurnProcessor:
    """Applies turn events to session state."""

    def __init__(
        self,
        store: SessionStore,
        default_strategy: str = "cascade",
        clock: Clock = time.time,
        limits: Limits | None = None,
    ) -> None:
        self.store = store
        self.default_strategy = default_strategy
        self.clock = clock
        self.limits = limits or Limits()

    def handle(self, event: TurnEvent, out: Outputs) -> None:
        """Process one event; bad events land in `out.rejected`, never raise.

        Every refusal is checked before the session changes, so a rejected event leaves it as
        it was (an impossible policy, tool schemas over their share, a message that cannot be
        cut: all of them `TokenBudgetError`s).
        """
        try:
            if event.type is TurnEventType.SESSION_START:
                self._start(event, out)
            else:
                self._continue(event, out)
        except TokenBudgetError as error:
            out.rejected.append((event, error))

    def _start(self, event: TurnEvent, out: Outputs) -> None:
        sid = event.session_id
        start = event.session_start
        assert start is not None
        existing = self.store.get(sid)
        if existing is not None and existing.seq >= 0:  # seq -1: a start cut short by a crash
            if event.seq <= existing.seq:
                out.duplicates += 1
                return
            raise RejectedEventError(f"session {sid!r} was already started")
        system = Message(id=f"{sid}/system", role="system", content=start.system_prompt)
        try:
            tokens = self.store.manager(start).check_system_prompt(system)  # tools checked too
        except SystemPromptTooLargeError as error:
            self._refuse(event, error.used, str(error), out)
            raise RejectedEventError(str(error)) from error
        if tokens > self.limits.max_message_tokens:  # it cannot be cut: it is fixed
            reason = (
                f"system prompt takes {tokens} tokens, over the largest message allowed "
                f"({self.limits.max_message_tokens} tokens, TOKENBUDGET_MAX_MESSAGE_TOKENS)"
            )
            self._refuse(event, tokens, reason, out)
            raise RejectedEventError(reason)
        live = self.store.begin(sid, start, event.seq, system, self.clock())
        self._snapshot(sid, event.seq, live, out)

    def _refuse(self, event: TurnEvent, tokens: int, reason: str, out: Outputs) -> None:
        """The REJECTED command that tells the agent why its session cannot start."""
        sid, model = event.session_id, event.session_start.model if event.session_start else None
        action = Action(
            ActionKind.REJECTED,
            Rule.SYSTEM_PROMPT_TOO_LARGE,
            (f"{sid}/system",),
            tokens,
            tokens,
            reason,
        )
        out.commands += BudgetCommand.plan(sid, event.seq, [action], self.clock(), model)

    def _continue(self, event: TurnEvent, out: Outputs) -> None:
        sid = event.session_id
        live = self.store.get(sid)
        if live is None:
            raise RejectedEventError(
                f"{event.type.value} for session {sid!r}, which was never started (or ended)"
            )
        if event.seq <= live.seq:
            out.duplicates += 1
            return
        if event.seq > live.seq + 1:  # one before it was lost: hold, so it can be sent again
            raise SequenceGapError(sid, live.seq + 1, event.seq)
        message, first = None, []
        if event.type is TurnEventType.TURN:
            assert event.message is not None
            try:
                message, first = admit(live, event.message, self.limits)  # no change yet
            except RejectedEventError:
                self._skip(sid, live, event.seq, out)
                raise
        previous, live.seq = live.seq, event.seq
        self.store.touch(sid, live, self.clock())
        emitted = len(out.commands)
        if event.type is TurnEventType.SESSION_END:
            self.store.end(sid)
            return
        if event.type is TurnEventType.USAGE:
            self._usage(live, event, previous, out)
        elif event.type is TurnEventType.TASK_UPDATE:
            live.session.task = (event.task or "")[:MAX_TASK_CHARS]
        elif message is not None:
            operation = f"turn {event.seq}"
            redone = self.store.redo(sid, operation)
            if redone is not None:  # cut short by a crash after its journal: the same commands
                live = self.store.get(sid)
                assert live is not None
                out.commands += redone
            else:
                with self.store.journal(sid, operation) as journal:
                    # A message already present past the cursor is a turn cut short before its
                    # journal (its row reached the changelog, nothing else did): finish it.
                    self.store.add(sid, live, message)
                    first += trim(self.store, sid, live, self.limits)
                    self._budget(sid, live, event.seq, out, first)
                    self.store.save_cursor(sid, live)
                    journal.commands = out.commands[emitted:]
            self._snapshot(sid, event.seq, live, out, out.commands[emitted:])
            return
        self.store.save_cursor(sid, live)
        self._snapshot(sid, event.seq, live, out, out.commands[emitted:])

    def _skip(self, sid: str, live: Live, seq: int, out: Outputs) -> None:
        """A refused event still takes its seq (the next one is no gap); nothing else changes."""
        live.seq = seq
        self.store.touch(sid, live, self.clock())
        self.store.save_cursor(sid, live)
        self._snapshot(sid, seq, live, out)

    def _usage(self, live: Live, event: TurnEvent, previous: int, out: Outputs) -> None:
        """Compare a billed call with our count of its context; calibrate estimated models.

        Our count is the ledger's total when the context reflected the turn before this report
        (the usual order: context, LLM call, report, then the reply); otherwise the count the
        client made of the context it sent, with the same core.
        """
        usage = event.usage
        assert usage is not None
        manager = live.session.manager
        counted = live.session.ledger.total if usage.context_seq == previous else None
        sample = UsageSample(
            live.start.model,
            manager.spec.family,
            manager.estimated,
            usage.context_tokens if counted is None else counted,
            usage.prompt_tokens,
            usage.completion_tokens,
        )
        out.usage.append(sample)
        if sample.estimated:
            self.store.calibrate(sample.model, sample.counted, sample.billed, live.count_factor)

    def _budget(
        self, sid: str, live: Live, seq: int, out: Outputs, first: Sequence[Action] = ()
    ) -> None:
        """Prune when over budget; ask for a summary when one is due and none is outstanding.

        `first`: what the limits did to this turn already (TRUNCATE, DROP), sent first.
        """
        session = live.session
        strategy = live.start.strategy or self.default_strategy
        pending = live.pending
        # A request made by this very seq is a turn being redone after a crash: ask again (the
        # same command id), in case the command itself never left.
        may_ask = (
            pending is None
            or not pending.blocks(seq)
            or (pending.command_id or "").startswith(f"{sid}/{seq}/")
        )
        actions: list[Action] = list(first)
        if not session.fits():
            before = dict(session.messages)
            actions += session.prepare(strategy, plan_summary=may_ask).actions
            self.store.sync(sid, live, before)
        elif may_ask and session.summary_due(strategy):
            planned = session.plan_summary()
            actions += [planned] if planned is not None else []
            if planned is None:  # nothing worth summarizing: do not look again on every turn
                self.store.set_pending(
                    sid, live, PendingSummary(None, (), seq + RETRY_SUMMARY_AFTER)
                )
        commands = BudgetCommand.plan(sid, seq, actions, self.clock(), live.start.model)
        out.commands += commands
        for command in commands:
            if command.action.kind is ActionKind.SUMMARIZE and command.action.replacement is None:
                pending = PendingSummary(command.command_id, command.action.message_ids)
                self.store.set_pending(sid, live, pending)
        pending = live.pending
        if (
            actions
            and pending is not None
            and pending.command_id is not None
            and not any(i in session.messages for i in pending.replaces)
        ):
            self.store.set_pending(sid, live, None)  # pruned meanwhile: may ask again

    def handle_summary(self, summary: CompressedHistory, out: Outputs) -> None:
        """Apply a summarizer answer: swap what is left of the segment for a pinned summary.

        Idempotent: a redelivered answer finds its summary already in place (or its segment
        gone) and changes nothing. A failure only clears the request and pauses new ones for
        `RETRY_SUMMARY_AFTER` turns; meanwhile the cascade prunes as usual.
        """
        sid = summary.session_id
        live = self.store.get(sid)
        if live is None:
            out.summaries_ignored += 1  # the session ended meanwhile
            return
        # at this seq: a journal left behind by an earlier crash, before later turns, is stale
        operation = f"summary {summary.summary_id} at {live.seq}"
        redone = self.store.redo(sid, operation)
        if redone is not None:  # cut short by a crash after its journal: the same command
            live = self.store.get(sid)
            assert live is not None
            out.commands += redone
            out.summaries_applied += 1
            self._snapshot(sid, live.seq, live, out, redone)
            return
        emitted = len(out.commands)
        with self.store.journal(sid, operation) as journal:
            self._summary(sid, live, summary, out)
            journal.commands = out.commands[emitted:]

    def _summary(self, sid: str, live: Live, summary: CompressedHistory, out: Outputs) -> None:
        """`handle_summary` inside its journal: clear the request, apply the summary."""
        pending = live.pending
        if pending is not None and pending.command_id == summary.source_command_id:
            retry = live.seq + RETRY_SUMMARY_AFTER
            failed = summary.status is SummaryStatus.FAILED
            self.store.set_pending(sid, live, PendingSummary(None, (), retry) if failed else None)
        if summary.status is SummaryStatus.FAILED:
            return
        message = self._fitted(live, summary)
        session = live.session
        before_messages = dict(session.messages)
        before = session.ledger.total
        if message is None or not session.apply_summary(message):
            out.summaries_ignored += 1
            return
        self.store.sync(sid, live, before_messages)
        replaced = tuple(i for i in summary.replaces if i in before_messages)
        action = Action(
            ActionKind.SUMMARIZE,
            Rule.SUMMARIZATION,
            replaced,
            before,
            session.ledger.total,
            f"replaced {len(replaced)} messages with a pinned summary of "
            f"{message.token_count} tokens ({summary.backend})",
            replacement=message,
        )
        command_id = f"{sid}/{message.id}"
        out.commands.append(
            BudgetCommand(command_id, sid, live.seq, action, self.clock(), live.start.model)
        )
        out.summaries_applied += 1
        self._snapshot(sid, live.seq, live, out, out.commands[-1:])

    def idle_sessions(self) -> list[str]:
        """Sessions without an event for longer than the idle timeout, oldest first (none when
        the timeout is 0). Walks only those; call `evict` on each."""
        timeout = self.limits.session_idle_timeout
        return self.store.idle(self.clock() - timeout) if timeout > 0 else []

    def evict(self, session_id: str, out: Outputs) -> bool:
        """Evict an idle session like a SESSION_END: its memory and its table rows go, and the
        agent gets a REJECTED command (rule `idle_timeout`) saying why; later events of the
        session are dead letters ("never started (or ended)"). False when it is not idle (any
        more): a session rebuilt from rows without an activity time starts its idle clock now.
        """
        live = self.store.live.get(session_id)
        now = self.clock()
        if live is None:
            return False
        if live.last_seen == UNSEEN:
            self.store.touch(session_id, live, now)
            return False
        timeout = self.limits.session_idle_timeout
        idle = now - live.last_seen
        if timeout <= 0 or idle < timeout:
            return False
        total = live.session.ledger.total
        reason = (
            f"no event for {idle:.0f} s, over the idle timeout of {timeout:g} s "
            "(TOKENBUDGET_SESSION_IDLE_TIMEOUT): the session was evicted and its state deleted; "
            "start a new session to go on"
        )
        action = Action(ActionKind.REJECTED, Rule.IDLE_TIMEOUT, (), total, total, reason)
        command_id = f"{session_id}/{live.seq}/idle"
        out.commands.append(
            BudgetCommand(command_id, session_id, live.seq, action, now, live.start.model)
        )
        self.store.end(session_id)
        return True

    @staticmethod
    def _fitted(live: Live, summary: CompressedHistory) -> Message | None:
        """The summary as a pinned message, cut to the pinned room left if it overshoots."""
        message = summary_message(summary.summary, summary.replaces, message_id=summary.summary_id)
        manager = live.session.manager
        room = manager.budgets[Component.PINNED] - live.session.ledger.used[Component.PINNED]
        if manager.count(message) <= room:
            return message
        return manager.counter.truncate(message, max(room, 0), "…")

    def _snapshot(
        self, sid: str, seq: int, live: Live, out: Outputs, commands: Sequence[BudgetCommand] = ()
    ) -> None:
        """The session's snapshot, naming the commands of the same step so that a client
        knows when it has applied everything the worker decided up to `seq`."""
        out.snapshots.append(
            BudgetSnapshot.of(
                sid,
                seq,
                live.start.model,
                live.session.snapshot(),
                self.clock(),
                tuple(c.command_id for c in commands),
                live.count_factor,
            )
        )

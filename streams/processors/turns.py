"""The turn processor: one decoded `TurnEvent` in, commands, a snapshot and dead letters out.

Kafka-free so it can be tested with dicts for tables; the Faust agent in `streams.app` feeds it
micro-batches and sends what it returns. Per turn: ignore duplicates (seq at or below the
session's cursor), count the message once, update the ledger in O(1), and run the cascade only
when the session no longer fits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streams.budget import Action, ActionKind, Message, Rule
from streams.codecs import BudgetCommand, BudgetSnapshot, TurnEvent, TurnEventType
from streams.errors import (
    InvalidMessageError,
    RejectedEventError,
    SystemPromptTooLargeError,
    TokenBudgetError,
)
from streams.processors.state import SessionStore

Clock = Callable[[], float]


@dataclass(slots=True)
class Outputs:
    """What processing produced, in order; the agent sends them all before acking."""

    commands: list[BudgetCommand] = field(default_factory=list)
    snapshots: list[BudgetSnapshot] = field(default_factory=list)
    rejected: list[tuple[TurnEvent, TokenBudgetError]] = field(default_factory=list)
    duplicates: int = 0


class TurnProcessor:
    """Applies turn events to session state."""

    def __init__(
        self, store: SessionStore, default_strategy: str = "cascade", clock: Clock = time.time
    ) -> None:
        self.store = store
        self.default_strategy = default_strategy
        self.clock = clock

    def handle(self, event: TurnEvent, out: Outputs) -> None:
        """Process one event; bad events land in `out.rejected`, never raise."""
        try:
            if event.type is TurnEventType.SESSION_START:
                self._start(event, out)
            else:
                self._continue(event, out)
        except (InvalidMessageError, RejectedEventError) as error:
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
        manager = self.store.manager(start)
        system = Message(id=f"{sid}/system", role="system", content=start.system_prompt)
        try:
            manager.check_system_prompt(system)
        except SystemPromptTooLargeError as error:
            action = Action(
                ActionKind.REJECTED,
                Rule.SYSTEM_PROMPT_TOO_LARGE,
                (system.id,),
                error.used,
                error.used,
                str(error),
            )
            out.commands += BudgetCommand.plan(sid, event.seq, [action], self.clock())
            raise RejectedEventError(str(error)) from error
        live = self.store.begin(sid, start, event.seq, system)
        self._snapshot(sid, event.seq, live.start.model, out)

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
        live.seq = event.seq
        if event.type is TurnEventType.SESSION_END:
            self.store.end(sid)
            return
        if event.type is TurnEventType.TASK_UPDATE:
            live.session.task = event.task or ""
        elif event.type is TurnEventType.TURN:
            assert event.message is not None
            # A message already present past the cursor is a turn cut short by a crash (its row
            # reached the changelog, the rest of the turn did not): finish it, cascade included.
            self.store.add(sid, live, event.message)
            if not live.session.fits():
                before = dict(live.session.messages)
                strategy = live.start.strategy or self.default_strategy
                prepared = live.session.prepare(strategy)
                self.store.sync(sid, live, before)
                out.commands += BudgetCommand.plan(sid, event.seq, prepared.actions, self.clock())
        self.store.save_cursor(sid, live)
        self._snapshot(sid, event.seq, live.start.model, out)

    def _snapshot(self, sid: str, seq: int, model: str, out: Outputs) -> None:
        live = self.store.live[sid]
        out.snapshots.append(
            BudgetSnapshot.of(sid, seq, model, live.session.snapshot(), self.clock())
        )

"""The state `tokenbudget top` shows, folded from `budget.events` and `budget.commands`.

Pure: no Kafka, no terminal, the clock is passed in, so it is unit-tested alone.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from dataclasses import dataclass

from streams.budget import ActionKind, AlertLevel, Snapshot
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    BudgetCommand,
    BudgetSnapshot,
    default_codec,
)
from streams.errors import DecodeError
from streams.topics import TopicNames

RATE_WINDOW_SECONDS = 5.0
ACTIONS_KEPT = 64


@dataclass(slots=True)
class SessionRow:
    """The newest snapshot of one session."""

    session_id: str
    seq: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One command as the view shows it."""

    session_id: str
    kind: ActionKind
    rule: str
    tokens_before: int
    tokens_after: int
    created_at: float
    planned: bool  # a SUMMARIZE asked for, not applied yet


class Rate:
    """Arrivals per second over a sliding window; the clock is passed in."""

    def __init__(self, started: float, window: float = RATE_WINDOW_SECONDS) -> None:
        self.started = started
        self.window = window
        self.total = 0
        self._arrivals: deque[list[float]] = deque()  # [time, count], coalesced per instant

    def add(self, now: float, count: int = 1) -> None:
        """Count `count` arrivals at `now`."""
        self.total += count
        if self._arrivals and self._arrivals[-1][0] == now:
            self._arrivals[-1][1] += count
        else:
            self._arrivals.append([now, count])
        self._trim(now)

    def per_second(self, now: float) -> float:
        """Arrivals per second over the window (or over the time since start, if shorter)."""
        self._trim(now)
        span = max(0.5, min(self.window, now - self.started))
        return sum(count for _, count in self._arrivals) / span

    def _trim(self, now: float) -> None:
        while self._arrivals and self._arrivals[0][0] <= now - self.window:
            self._arrivals.popleft()


class TopModel:
    """What the view knows: each session's newest snapshot, the newest commands, the rates."""

    def __init__(self, now: float, actions_kept: int = ACTIONS_KEPT) -> None:
        self.sessions: dict[str, SessionRow] = {}
        self.snapshot_rate = Rate(now)
        self.command_rate = Rate(now)
        self.undecodable = 0
        self.partitions = 0
        self._actions: list[tuple[float, int, ActionRow]] = []  # min-heap of the newest
        self._actions_kept = actions_kept
        self._arrival = itertools.count()

    def add_snapshot(self, event: BudgetSnapshot, now: float) -> None:
        """Keep a session's newest snapshot; a redelivered older one only counts in the rate."""
        self.snapshot_rate.add(now)
        row = self.sessions.get(event.session_id)
        if row is None:
            self.sessions[event.session_id] = SessionRow(
                event.session_id, event.seq, event.snapshot
            )
        elif event.seq >= row.seq:
            row.seq, row.snapshot = event.seq, event.snapshot

    def add_command(self, command: BudgetCommand, now: float) -> None:
        """Keep the newest commands by creation time, whatever order partitions deliver them in."""
        self.command_rate.add(now)
        action = command.action
        row = ActionRow(
            command.session_id,
            action.kind,
            action.rule.value,
            action.tokens_before,
            action.tokens_after,
            command.created_at,
            planned=action.kind is ActionKind.SUMMARIZE and action.replacement is None,
        )
        entry = (command.created_at, next(self._arrival), row)
        if len(self._actions) < self._actions_kept:
            heapq.heappush(self._actions, entry)
        else:
            heapq.heappushpop(self._actions, entry)

    def ranked(self) -> list[SessionRow]:
        """Sessions, fullest first (utilization, then alert level, then id)."""
        return sorted(
            self.sessions.values(),
            key=lambda r: (-r.snapshot.utilization, -r.snapshot.level.rank, r.session_id),
        )

    def latest_actions(self, limit: int) -> list[ActionRow]:
        """The newest `limit` commands, newest first."""
        return [row for _, _, row in heapq.nlargest(limit, self._actions)]

    def levels(self) -> Counter[AlertLevel]:
        """How many sessions are at each alert level."""
        return Counter(r.snapshot.level for r in self.sessions.values())

    def take(self, topics: TopicNames, topic: str, value: bytes | None, now: float) -> None:
        """Fold one record of either topic; bytes that do not decode are counted, not fatal."""
        if value is None:
            self.undecodable += 1
            return
        codec = default_codec()
        try:
            if topic == topics.events:
                self.add_snapshot(codec.loads(BUDGET_SNAPSHOT, value), now)
            elif topic == topics.commands:
                self.add_command(codec.loads(BUDGET_COMMAND, value), now)
        except DecodeError:
            self.undecodable += 1

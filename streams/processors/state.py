"""Per-session state in one changelog-backed table, and the live core sessions built on it.

The table is a plain mapping here (a Faust table in the worker, a dict in unit tests), with
three kinds of rows per session, all keyed `"<session_id>\\x1f…"`:

- `…!start`: the session start (model, limit, policy, prompt, tools), written once;
- `…m:<message_id>`: one counted message and its position, written once when the message
  enters, deleted when it is dropped;
- `…!cursor`: last processed seq, current task, next position, when the session was last
  active (for idle eviction): a few bytes, written last. A turn that writes a message row
  folds the cursor (less the task, which only the cursor row holds) into that row instead,
  written last: one changelog record per ordinary turn instead of two. A rebuild takes the
  cursor with the highest seq of the two places;
- `…!summary`: the outstanding SUMMARIZE request (command id and segment ids), or the seq
  before which no new one is asked for after a failure; written when that changes, not per turn.

Besides sessions, `~models\x1f!calibration:<model>` rows hold the per-model correction factors
of estimated counts (written when a billed-usage report moves one).

What one turn writes is proportional to that turn, never to the session's length. One table
means one changelog partition per session, written in order: whenever a cursor is in the
changelog, so is every row written before it, so a worker killed between two writes never comes
back with a cursor that claims a message it lost. A turn or summary that sends commands writes
behind a `…!journal` row, so a worker killed between its writes redoes it identically
(`streams.processors.journal`). Live `Session` objects are a cache over the table, rebuilt after
a restart or rebalance by one scan.

`live` is kept in order of last activity (a session moves to the end when touched), so finding
the sessions idle for too long walks only those, oldest first.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from streams.budget import BudgetManager, Message, Scorer, Session
from streams.budget.calibration import Calibration
from streams.codecs.commands import BudgetCommand
from streams.codecs.messages import message_from_record, message_to_record
from streams.codecs.turns import SessionStart, session_start_from_record, session_start_to_record
from streams.processors.journal import (
    JOURNAL,
    Journal,
    StagedTable,
    apply_ops,
    journaled_commands,
)
from streams.processors.limits import MAX_TASK_CHARS

SEP = "\x1f"
START, CURSOR, MESSAGE, SUMMARY = "!start", "!cursor", "m:", "!summary"
MODELS, CALIBRATION = "~models", "!calibration:"
Table = MutableMapping[str, Any]
UNSEEN = -1.0
"""`last_seen` of a session rebuilt from a cursor that predates activity times: its idle clock
starts again at the next sweep instead of counting from 1970."""


def key(session_id: str, kind: str, message_id: str = "") -> str:
    """The table key of one row of a session."""
    return f"{session_id}{SEP}{kind}{message_id}"


@dataclass(frozen=True, slots=True)
class PendingSummary:
    """A SUMMARIZE request not answered yet, or a pause after a failed one."""

    command_id: str | None
    replaces: tuple[str, ...] = ()
    retry_after: int = -1

    def blocks(self, seq: int) -> bool:
        """Whether a new request must wait: one is outstanding, or a failure is too recent."""
        return self.command_id is not None or seq < self.retry_after


@dataclass(slots=True)
class Live:
    """A live session with what the table knows about it."""

    start: SessionStart
    session: Session
    seq: int
    next_pos: int
    positions: dict[str, int]
    pending: PendingSummary | None = None
    last_seen: float = 0.0
    carrier: str | None = None
    """The message whose row holds the newest cursor (None: the cursor row does)."""

    @property
    def count_factor(self) -> float:
        """The calibration factor this session's estimated counts are scaled by."""
        return self.session.manager.count_factor


class SessionStore:
    """Reads and writes session state; keeps live sessions cached in memory."""

    def __init__(self, table: Table, scorer: Scorer) -> None:
        self.table = table
        self.scorer = scorer
        self.live: dict[str, Live] = {}
        self.calibration = Calibration()
        self.complete = False
        """Whether `live` holds every session of the table (after a `rebuild`)."""
        self._managers: dict[str, BudgetManager] = {}

    # -- journaled operations (see `streams.processors.journal`) ------------------------------
    @contextlib.contextmanager
    def journal(self, session_id: str, operation: str) -> Iterator[Journal]:
        """Stage the operation's writes; then, when it sent commands (`Journal.commands`),
        write them behind a journal row that a worker killed midway redoes; else directly."""
        staged = StagedTable(self.table)
        entry = Journal(operation)
        self.table = staged
        try:
            yield entry
        finally:
            self.table = staged.base
            live = self.live.get(session_id)
            if live is not None:
                staged.ops = self._fold_cursor(session_id, live, staged.ops)
            journaled = bool(entry.commands) and sys.exc_info()[0] is None
            if journaled:
                self.table[key(session_id, JOURNAL)] = entry.record(staged.ops)
            apply_ops(self.table, staged.ops)
            if journaled:
                self.table.pop(key(session_id, JOURNAL), None)

    def _fold_cursor(self, session_id: str, live: Live, ops: list[list[Any]]) -> list[list[Any]]:
        """Ops ending in a cursor write: the cursor goes into the last message row they write,
        moved to the end. Ops that rewrite or delete the row holding the newest cursor without
        writing a cursor get one written after them, so the newest cursor is never lost."""
        cursor_key = key(session_id, CURSOR)
        ends_with_cursor = bool(ops) and len(ops[-1]) == 2 and ops[-1][0] == cursor_key
        if not ends_with_cursor:
            carrier = live.carrier and key(session_id, MESSAGE, live.carrier)
            if carrier and any(op[0] == carrier for op in ops):
                live.carrier = None
                ops = [*ops, [cursor_key, self._cursor(live)]]
            return ops
        last = {op[0]: i for i, op in enumerate(ops)}
        prefix = key(session_id, MESSAGE)
        rows = [i for k, i in last.items() if k.startswith(prefix) and len(ops[i]) == 2]
        if not rows:
            return ops
        i = max(rows)
        row_key, row = ops[i]
        cursor = ops[-1][1]
        folded = row | {"c": {k: cursor[k] for k in ("seq", "next", "at")}}
        live.carrier = row_key.removeprefix(prefix)
        return [*ops[:i], *ops[i + 1 : -1], [row_key, folded]]

    def redo(self, session_id: str, operation: str) -> list[BudgetCommand] | None:
        """An operation cut short by a crash after its journal row: write its rows again, rebuild
        the session from the table, and return its commands (None: nothing to redo)."""
        row = self.table.get(key(session_id, JOURNAL))
        if row is None or row.get("op") != operation:
            return None
        apply_ops(self.table, row["ops"])
        self.table.pop(key(session_id, JOURNAL), None)
        self.live.pop(session_id, None)
        self.complete = False
        return journaled_commands(row)

    # -- sessions --------------------------------------------------------------------------
    def manager(self, start: SessionStart, count_factor: float = 1.0) -> BudgetManager:
        """A budget manager for a session start, shared by sessions with the same settings."""
        record = session_start_to_record(start) | {"task": None, "factor": count_factor}
        signature = json.dumps(record, sort_keys=True)
        manager = self._managers.get(signature)
        if manager is None:
            manager = start.manager(self.scorer, count_factor)
            if len(self._managers) > 1024:
                self._managers.clear()
            self._managers[signature] = manager
        return manager

    def begin(
        self, session_id: str, start: SessionStart, seq: int, system: Message, now: float = 0.0
    ) -> Live:
        """Record a new session with its system prompt as the first message; an estimated
        model counts with the correction factor learnt for it so far."""
        manager = self.manager(start, self.calibration.factor(start.model))
        task = (start.task or "")[:MAX_TASK_CHARS]
        live = Live(start, Session(manager, task), seq, 0, {}, last_seen=now)
        self.live.pop(session_id, None)
        self.live[session_id] = live
        record = session_start_to_record(start) | {"count_factor": manager.count_factor}
        self.table[key(session_id, START)] = record
        if system.text:
            self.add(session_id, live, system)
        self.save_cursor(session_id, live)
        return live

    def get(self, session_id: str) -> Live | None:
        """The live session, rebuilding every missing session from the table when needed."""
        live = self.live.get(session_id)
        if live is None and key(session_id, START) in self.table:
            self.rebuild()
            live = self.live.get(session_id)
        return live

    def rebuild(self) -> None:
        """Rebuild every session the table holds but memory does not (one scan).

        It iterates and never looks rows up: a Faust table resolves a lookup in the partition of
        the event being processed, while iteration covers every partition this worker holds.
        """
        starts: dict[str, Any] = {}
        cursors: dict[str, Any] = {}
        folded: dict[str, tuple[str, Any]] = {}  # the newest cursor found in a message row
        pending: dict[str, Any] = {}
        rows: dict[str, list[tuple[int, Message]]] = {}
        for row_key, value in list(self.table.items()):
            session_id, _, rest = row_key.partition(SEP)
            if session_id in self.live:
                continue
            if rest == START:
                starts[session_id] = value
            elif rest == CURSOR:
                cursors[session_id] = value
            elif rest == SUMMARY:
                pending[session_id] = value
            elif rest.startswith(CALIBRATION) and session_id == MODELS:
                self.calibration.load(rest.removeprefix(CALIBRATION), value)
            elif rest.startswith(MESSAGE):
                cursor = value.get("c")
                if (
                    cursor is not None
                    and cursor["seq"] > folded.get(session_id, ("", {"seq": -2}))[1]["seq"]
                ):
                    folded[session_id] = (rest.removeprefix(MESSAGE), cursor)
                message = message_from_record(value["m"])
                message.token_count, message.counted_by = value["n"], value["by"]
                rows.setdefault(session_id, []).append((value["pos"], message))
        for session_id, record in starts.items():
            start = session_start_from_record(record)
            cursor = cursors.get(session_id, {})
            manager = self.manager(start, record.get("count_factor", 1.0))
            task = cursor.get("task", start.task or "")[:MAX_TASK_CHARS]
            session = Session(manager, task)
            carrier = None
            if session_id in folded and folded[session_id][1]["seq"] > cursor.get("seq", -1):
                carrier, in_row = folded[session_id]
                cursor = cursor | in_row
            live = Live(start, session, cursor.get("seq", -1), cursor.get("next", 0), {})
            live.last_seen = cursor.get("at", UNSEEN)
            live.carrier = carrier
            if session_id in pending:
                row = pending[session_id]
                live.pending = PendingSummary(row["cmd"], tuple(row["ids"]), row["retry"])
            for pos, message in sorted(rows.get(session_id, ()), key=lambda r: r[0]):
                live.session.add(message)
                live.positions[message.id] = pos
            if live.positions:  # a message row can be ahead of its cursor (a turn cut short)
                live.next_pos = max(live.next_pos, max(live.positions.values()) + 1)
            self.live[session_id] = live
        if starts:  # back in order of last activity
            self.live = dict(sorted(self.live.items(), key=lambda item: item[1].last_seen))
        self.complete = True

    def forget(self) -> None:
        """Drop the in-memory cache (after a rebalance); the table stays the truth."""
        self.live.clear()
        self.complete = False

    def touch(self, session_id: str, live: Live, now: float) -> None:
        """Mark a session active at `now`: O(1), it moves to the end of the activity order."""
        live.last_seen = now
        self.live[session_id] = self.live.pop(session_id, live)

    def idle(self, before: float) -> list[str]:
        """Sessions last active before `before`, oldest first (walks only those)."""
        found = []
        for session_id, live in self.live.items():
            if live.last_seen >= before:
                break
            found.append(session_id)
        return found

    def end(self, session_id: str) -> None:
        """Delete a session's rows (cursor first, so a crash midway leaves no live cursor)."""
        live = self.get(session_id)
        self.table.pop(key(session_id, CURSOR), None)
        self.table.pop(key(session_id, SUMMARY), None)
        if live is not None:
            for message_id in list(live.session.messages):
                self.table.pop(key(session_id, MESSAGE, message_id), None)
        self.table.pop(key(session_id, START), None)
        self.table.pop(key(session_id, JOURNAL), None)
        self.live.pop(session_id, None)

    # -- messages ----------------------------------------------------------------------------
    def add(self, session_id: str, live: Live, message: Message) -> bool:
        """Count a message into the session and write it (once) to the table."""
        if not live.session.add(message):
            return False
        live.positions[message.id] = live.next_pos
        live.next_pos += 1
        self._write(session_id, message, live.positions[message.id])
        return True

    def remove(self, session_id: str, live: Live, message_ids: list[str]) -> list[str]:
        """Remove messages from the session and their rows from the table: O(removed)."""
        removed = live.session.remove(message_ids)
        for message_id in removed:
            self.table.pop(key(session_id, MESSAGE, message_id), None)
            live.positions.pop(message_id, None)
        return removed

    def _write(self, session_id: str, message: Message, pos: int) -> None:
        self.table[key(session_id, MESSAGE, message.id)] = {
            "pos": pos,
            "n": message.token_count,
            "by": message.counted_by,
            "m": message_to_record(message),
        }

    def sync(self, session_id: str, live: Live, before: dict[str, Message]) -> None:
        """Write what the cascade changed in the live session: new, replaced, removed messages.

        A summary takes the position of the first message it replaces, so a rebuild from the
        table restores the same order.
        """
        now = live.session.messages
        for message_id, message in now.items():
            if before.get(message_id) is message:
                continue
            if message_id not in live.positions:
                firsts = [live.positions[i] for i in message.summary_of if i in live.positions]
                if firsts:
                    live.positions[message_id] = min(firsts)
                else:
                    live.positions[message_id] = live.next_pos
                    live.next_pos += 1
            self._write(session_id, message, live.positions[message_id])
        for message_id in before.keys() - now.keys():
            self.table.pop(key(session_id, MESSAGE, message_id), None)
            live.positions.pop(message_id, None)

    def calibrate(self, model: str, counted: int, billed: int, factor_used: float) -> None:
        """Fold a billed-usage report into the model's factor; persist it when it moved."""
        factor = self.calibration.observe(model, counted, billed, factor_used)
        if factor is not None:
            self.table[key(MODELS, CALIBRATION, model)] = factor

    def save_cursor(self, session_id: str, live: Live) -> None:
        """Write the few bytes that move on every turn, after everything else of that turn
        (inside a journal, folded into the turn's message row when it writes one)."""
        live.carrier = None
        self.table[key(session_id, CURSOR)] = self._cursor(live)

    @staticmethod
    def _cursor(live: Live) -> dict[str, Any]:
        return {
            "seq": live.seq,
            "task": live.session.task,
            "next": live.next_pos,
            "at": live.last_seen,
        }

    def set_pending(self, session_id: str, live: Live, pending: PendingSummary | None) -> None:
        """Record (or clear, with None) the session's outstanding summary request."""
        live.pending = pending
        if pending is None:
            self.table.pop(key(session_id, SUMMARY), None)
        else:
            self.table[key(session_id, SUMMARY)] = {
                "cmd": pending.command_id,
                "ids": list(pending.replaces),
                "retry": pending.retry_after,
            }

"""Per-session state in three changelog-backed tables, and the live core sessions built on them.

The tables are plain mappings here (Faust tables in the worker, dicts in unit tests):

- `starts[session_id]`: the session start (model, limit, policy, prompt, tools), written once;
- `cursors[session_id]`: last processed seq, current task, next message position: a few bytes
  written per turn;
- `messages["<session_id>\\x1f<message_id>"]`: one counted message and its position, written once
  when the message enters, deleted when it is dropped.

So what one turn writes to a changelog is proportional to that turn, never to the session's
length. Live `Session` objects are a cache over the tables, rebuilt after a restart or rebalance
by one scan of the message table.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from streams.budget import BudgetManager, Message, Scorer, Session
from streams.codecs.messages import message_from_record, message_to_record
from streams.codecs.turns import SessionStart, session_start_from_record, session_start_to_record

SEP = "\x1f"
Table = MutableMapping[str, Any]


@dataclass(slots=True)
class Live:
    """A live session with what the tables know about it."""

    start: SessionStart
    session: Session
    seq: int
    next_pos: int
    positions: dict[str, int]


class SessionStore:
    """Reads and writes session state; keeps live sessions cached in memory."""

    def __init__(self, starts: Table, cursors: Table, messages: Table, scorer: Scorer) -> None:
        self.starts = starts
        self.cursors = cursors
        self.messages = messages
        self.scorer = scorer
        self.live: dict[str, Live] = {}
        self._managers: dict[str, BudgetManager] = {}

    # -- sessions --------------------------------------------------------------------------
    def manager(self, start: SessionStart) -> BudgetManager:
        """A budget manager for a session start, shared by sessions with the same settings."""
        key = json.dumps(session_start_to_record(start) | {"task": None}, sort_keys=True)
        manager = self._managers.get(key)
        if manager is None:
            manager = BudgetManager(
                start.model,
                start.context_limit,
                start.policy,
                tools=start.tools,
                scorer=self.scorer,
            )
            if len(self._managers) > 1024:
                self._managers.clear()
            self._managers[key] = manager
        return manager

    def begin(self, session_id: str, start: SessionStart, seq: int, system: Message) -> Live:
        """Record a new session with its system prompt as the first message."""
        manager = self.manager(start)
        live = Live(start, Session(manager, start.task or ""), seq, 0, {})
        self.live[session_id] = live
        self.starts[session_id] = session_start_to_record(start)
        if system.text:
            self.add(session_id, live, system)
        self.save_cursor(session_id, live)
        return live

    def get(self, session_id: str) -> Live | None:
        """The live session, rebuilding every missing session from the tables when needed."""
        live = self.live.get(session_id)
        if live is None and session_id in self.starts:
            self.rebuild()
            live = self.live.get(session_id)
        return live

    def rebuild(self) -> None:
        """Rebuild every session the tables hold but memory does not (one table scan)."""
        missing: dict[str, Live] = {}
        for session_id, record in list(self.starts.items()):
            if session_id in self.live:
                continue
            cursor = self.cursors.get(session_id) or {}
            start = session_start_from_record(record)
            session = Session(self.manager(start), cursor.get("task", start.task or ""))
            missing[session_id] = Live(
                start, session, cursor.get("seq", -1), cursor.get("next", 0), {}
            )
        if not missing:
            return
        rows: dict[str, list[tuple[int, Message]]] = {}
        for key, value in list(self.messages.items()):
            session_id, _, _ = key.partition(SEP)
            if session_id in missing:
                message = message_from_record(value["m"])
                message.token_count, message.counted_by = value["n"], value["by"]
                rows.setdefault(session_id, []).append((value["pos"], message))
        for session_id, live in missing.items():
            for pos, message in sorted(rows.get(session_id, ()), key=lambda r: r[0]):
                live.session.add(message)
                live.positions[message.id] = pos
            self.live[session_id] = live

    def forget(self) -> None:
        """Drop the in-memory cache (after a rebalance); the tables stay the truth."""
        self.live.clear()

    def end(self, session_id: str) -> None:
        """Delete a session's state everywhere."""
        live = self.get(session_id)
        if live is not None:
            for message_id in list(live.session.messages):
                self.messages.pop(f"{session_id}{SEP}{message_id}", None)
        self.live.pop(session_id, None)
        self.starts.pop(session_id, None)
        self.cursors.pop(session_id, None)

    # -- messages ----------------------------------------------------------------------------
    def add(self, session_id: str, live: Live, message: Message, pos: int | None = None) -> bool:
        """Count a message into the session and write it (once) to the message table."""
        if not live.session.add(message):
            return False
        if pos is None:
            pos = live.next_pos
            live.next_pos += 1
        live.positions[message.id] = pos
        self._write(session_id, message, pos)
        return True

    def _write(self, session_id: str, message: Message, pos: int) -> None:
        self.messages[f"{session_id}{SEP}{message.id}"] = {
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
            self.messages.pop(f"{session_id}{SEP}{message_id}", None)
            live.positions.pop(message_id, None)

    def save_cursor(self, session_id: str, live: Live) -> None:
        """Write the few bytes that move on every turn."""
        self.cursors[session_id] = {
            "seq": live.seq,
            "task": live.session.task,
            "next": live.next_pos,
        }

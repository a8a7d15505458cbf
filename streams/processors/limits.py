"""The worker's limits on hostile or broken input, with their defaults (`TOKENBUDGET_*`).

| limit | default | past it |
|---|---|---|
| `max_event_bytes` | 524,288 (512 KiB) | dead letter "event too large", checked before decoding |
| `max_message_tokens` | 32,000 | the message is cut (TRUNCATE, rule `oversized_message`); a
  system prompt is rejected (it cannot be cut) |
| `max_session_messages` | 10,000 | the oldest unprotected messages go (DROP, `message_limit`) |
| `session_idle_timeout` | 86,400 s | the session is evicted: memory and table rows (REJECTED,
  `idle_timeout`) |

Kept apart from `Settings` so the turn processor stays testable with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.budget import Action, ActionKind, Message, Rule
from streams.budget.limits import cut_message, oldest_unit
from streams.errors import DecodeError, RejectedEventError

if TYPE_CHECKING:
    from streams.processors.state import Live, SessionStore
    from streams.settings import Settings

MAX_TASK_CHARS = 4096
"""A session's task (what importance scores against) is cut to this many characters: it is
stored with every turn's cursor row, and the embedding model reads only its first few hundred
tokens anyway."""
DEAD_LETTER_KEEP_BYTES = 1024
"""A dead letter of an event over the size limit keeps only the first bytes of its key and
value (the reason gives the sizes), so the dead letter itself stays small."""
SWEEP_EVERY_MAX = 60.0
"""Seconds between two sweeps for idle sessions, at most (a quarter of the timeout if shorter)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one event, one message and one session may hold, and how long a session may idle."""

    max_event_bytes: int = 524_288
    max_message_tokens: int = 32_000
    max_session_messages: int = 10_000
    session_idle_timeout: float = 86_400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits a worker runs with."""
        return cls(
            settings.max_event_bytes,
            settings.max_message_tokens,
            settings.max_session_messages,
            settings.session_idle_timeout,
        )

    @property
    def sweep_every(self) -> float:
        """Seconds between two sweeps for idle sessions."""
        return min(SWEEP_EVERY_MAX, max(0.1, self.session_idle_timeout / 4))

    def check_event_size(self, key: bytes | None, value: bytes | None) -> None:
        """Raise a `DecodeError` (kind `too_large`) for a record over `max_event_bytes`.

        Key and value both count: both are held, and a session id travels into every record the
        worker writes for the session.
        """
        size = len(key or b"") + len(value or b"")
        if size > self.max_event_bytes:
            raise DecodeError(
                f"event too large: {size} bytes (key {len(key or b'')}, value "
                f"{len(value or b'')}) over the limit of {self.max_event_bytes} bytes "
                f"(TOKENBUDGET_MAX_EVENT_BYTES); not decoded, the dead letter keeps its first "
                f"{DEAD_LETTER_KEEP_BYTES} bytes",
                kind="too_large",
            )

    def for_dead_letter(self, key: bytes | None, value: bytes | None) -> tuple[bytes | None, bytes]:
        """The key and value a dead letter keeps: all of a record within the limit, the first
        `DEAD_LETTER_KEEP_BYTES` of each for one over it."""
        if len(key or b"") + len(value or b"") <= self.max_event_bytes:
            return key, value or b""
        keep = DEAD_LETTER_KEEP_BYTES
        return (None if key is None else key[:keep]), (value or b"")[:keep]


def admit(live: Live, message: Message, limits: Limits) -> tuple[Message, list[Action]]:
    """The message as it enters the session: counted, and cut when over `max_message_tokens`
    (with the TRUNCATE that tells the agent). Raises `RejectedEventError`, before anything
    changes, when it cannot be cut or cannot be added (a protected message into a session at
    `max_session_messages` whose messages are all protected). O(size of the message)."""
    session = live.session
    full = len(session) >= limits.max_session_messages and message.id not in session
    if full and not message.component.prunable and not oldest_unit(session.messages):
        raise RejectedEventError(
            f"session holds {len(session)} messages, the most allowed "
            f"(TOKENBUDGET_MAX_SESSION_MESSAGES), all of them protected: the "
            f"{message.component.value} message {message.id!r} cannot be added"
        )
    manager = session.manager
    tokens = manager.count(message)
    limit = limits.max_message_tokens
    if tokens <= limit:
        return message, []
    cut = cut_message(manager.counter, message, limit)
    if cut is None:
        raise RejectedEventError(
            f"message {message.id!r} takes {tokens} tokens, over the largest message allowed "
            f"({limit} tokens, TOKENBUDGET_MAX_MESSAGE_TOKENS), and cannot be cut to fit: its "
            "role, name and tool calls alone take more"
        )
    cut_tokens = manager.count(cut)
    total = session.ledger.total
    reason = (
        f"message of {tokens} tokens is over the largest message allowed ({limit} tokens, "
        f"TOKENBUDGET_MAX_MESSAGE_TOKENS); cut to {cut_tokens} tokens"
    )
    action = Action(
        ActionKind.TRUNCATE,
        Rule.OVERSIZED_MESSAGE,
        (message.id,),
        total + tokens,
        total + cut_tokens,
        reason,
        replacement=cut,
    )
    return cut, [action]


def trim(store: SessionStore, session_id: str, live: Live, limits: Limits) -> list[Action]:
    """Drop the oldest unprotected messages (a tool call with its results) while the session
    holds more than `max_session_messages`; the DROP that tells the agent, if any. O(1) when
    the session is within the limit; otherwise see `oldest_unit`."""
    session = live.session
    cap = limits.max_session_messages
    if len(session) <= cap:
        return []
    before = session.ledger.total
    dropped: list[str] = []
    while len(session) > cap:
        unit = oldest_unit(session.messages)
        if not unit:
            break
        dropped += store.remove(session_id, live, unit)
    if not dropped:
        return []
    reason = (
        f"the session holds more than {cap} messages (TOKENBUDGET_MAX_SESSION_MESSAGES); "
        f"dropped the oldest {len(dropped)}"
    )
    drop = Action(
        ActionKind.DROP, Rule.MESSAGE_LIMIT, tuple(dropped), before, session.ledger.total, reason
    )
    return [drop]

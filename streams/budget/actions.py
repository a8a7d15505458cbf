"""What the cascade decided: one action per rule that fired, with tokens before and after."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.budget.model import Message


class ActionKind(StrEnum):
    """What an agent must do to its local history."""

    DROP = "DROP"
    TRUNCATE = "TRUNCATE"
    SUMMARIZE = "SUMMARIZE"
    RESET = "RESET"
    REJECTED = "REJECTED"


class Rule(StrEnum):
    """Which rule of the cascade fired (the last three: the worker's limits, not the cascade)."""

    DUPLICATE_TOOL_RESULT = "duplicate_tool_result"
    NEAR_DUPLICATE_TOOL_RESULT = "near_duplicate_tool_result"
    OVERSIZED_TOOL_RESULT = "oversized_tool_result"
    SLIDING_WINDOW = "sliding_window"
    IMPORTANCE = "importance"
    SUMMARIZATION = "summarization"
    DEGRADATION = "degradation"
    SYSTEM_PROMPT_TOO_LARGE = "system_prompt_too_large"
    OVERSIZED_MESSAGE = "oversized_message"
    MESSAGE_LIMIT = "message_limit"
    IDLE_TIMEOUT = "idle_timeout"


@dataclass(frozen=True, slots=True)
class Action:
    """One step of the cascade: the messages it touched, the session total before and after.

    `replacement` carries the new message for TRUNCATE (the cut message) and for an applied
    summary or a RESET (the pinned summary / handoff message). A SUMMARIZE that was only planned
    (to run asynchronously) has no replacement, `target_tokens` set and the `segment` itself, so
    the summarizer that executes it needs no state of its own.
    """

    kind: ActionKind
    rule: Rule
    message_ids: tuple[str, ...]
    tokens_before: int
    tokens_after: int
    reason: str
    replacement: Message | None = None
    target_tokens: int | None = None
    segment: tuple[Message, ...] = ()

    @property
    def tokens_freed(self) -> int:
        """Tokens this action removed from the session (0 for a planned summary)."""
        return self.tokens_before - self.tokens_after

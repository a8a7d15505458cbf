"""The one small interface every summarizer backend implements, and what it is asked.

A backend turns a segment of messages into summary text that fits a token target. Fitting is
checked by the caller with the session model's counter (`fit_summary`), so a backend that
overshoots is trimmed, never trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from streams.budget import ActionKind, Message, MessageCounter
from streams.budget.summarization import SUMMARY_PREFIX, summary_id, summary_message
from streams.codecs import BudgetCommand
from streams.errors import TokenBudgetError


class SummarizerError(TokenBudgetError):
    """A backend could not produce a summary; `retriable` says whether trying again may help."""

    def __init__(self, reason: str, *, retriable: bool) -> None:
        self.retriable = retriable
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    """One segment to summarize, from a planned SUMMARIZE command."""

    command_id: str
    session_id: str
    seq: int
    model: str
    segment: tuple[Message, ...]
    target_tokens: int

    @property
    def summary_id(self) -> str:
        """Derived from the command id: a redelivered command yields the same summary id."""
        return summary_id([self.command_id])

    @property
    def replaces(self) -> tuple[str, ...]:
        """Ids of the messages the summary stands in for."""
        return tuple(m.id for m in self.segment)

    @classmethod
    def of(cls, command: BudgetCommand, default_model: str = "gpt-4o") -> SummaryRequest | None:
        """The request a command carries; None unless it is a planned SUMMARIZE with a segment."""
        action = command.action
        if action.kind is not ActionKind.SUMMARIZE or action.replacement is not None:
            return None
        if not action.segment or not action.target_tokens:
            return None
        return cls(
            command.command_id,
            command.session_id,
            command.seq,
            command.model or default_model,
            action.segment,
            action.target_tokens,
        )


class SummarizerBackend(Protocol):
    """Writes the summary text of a segment; the caller fits it to the target."""

    name: str

    async def summarize(self, request: SummaryRequest, counter: MessageCounter) -> str:
        """Summary text for `request.segment`, aiming at `request.target_tokens` (whole message,
        prefix and chat overhead included, as `counter` counts it). Raises `SummarizerError`."""
        ...


def summary_tokens(text: str, replaces: Sequence[str], counter: MessageCounter) -> int:
    """Tokens the pinned summary message with `text` takes, as the worker will count it."""
    return counter.count(summary_message(text, replaces))


def fit_summary(text: str, request: SummaryRequest, counter: MessageCounter) -> tuple[str, int]:
    """`text` trimmed (token-exact) so its summary message fits the target; and that size."""
    message = summary_message(text, request.replaces, message_id=request.summary_id)
    tokens = counter.count(message)
    if tokens <= request.target_tokens:
        return text, tokens
    cut = counter.truncate(message, request.target_tokens, "…")
    if cut is None:
        raise SummarizerError(
            f"target of {request.target_tokens} tokens leaves no room for a summary",
            retriable=False,
        )
    trimmed = cut.text.removeprefix(SUMMARY_PREFIX)
    return trimmed, counter.count(summary_message(trimmed, request.replaces))

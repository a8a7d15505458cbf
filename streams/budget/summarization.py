"""Summarization planning and application, and the handoff summary of a RESET.

The cascade chooses the segment (the oldest unprotected messages) and a target size; a summarizer
(the summarizer process, or a callable in library use) writes the text; `apply_summary` swaps the
segment for one pinned summary message. Applying is idempotent and tolerant: ids already gone
are skipped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

from streams.budget.actions import Action, ActionKind, Rule
from streams.budget.model import Component, Message
from streams.budget.units import Unit
from streams.budget.working import Working

Summarize = Callable[[Sequence[Message], int], str]
"""A summarizer callable: the segment's messages and a target token count → the summary text."""

SUMMARY_PREFIX = "[Summary of earlier conversation]\n"
MIN_SUMMARY_TOKENS = 32
MAX_SEGMENT_TOKENS = 32_000
"""Most tokens one segment holds: what a summarizer model reads in one request, and what one
SUMMARIZE command carries (well under Kafka's default 1 MB record)."""


def summary_id(parts: Sequence[str]) -> str:
    """A summary's id derives from what asked for it (a command id) or what it replaces, so a
    redelivery yields the same id."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()
    return f"summary-{digest}"


def summary_message(
    text: str,
    replaces: Sequence[str],
    timestamp: float | None = None,
    message_id: str | None = None,
) -> Message:
    """The pinned message that stands in for a summarized segment."""
    return Message(
        id=message_id or summary_id(replaces),
        role="user",
        content=SUMMARY_PREFIX + text,
        component=Component.PINNED,
        pinned=True,
        timestamp=timestamp,
        summary_of=tuple(replaces),
    )


def choose_segment(
    work: Working, share: float = 0.5, max_tokens: int = MAX_SEGMENT_TOKENS
) -> list[Unit]:
    """The oldest unprotected units holding about `share` of the live prunable tokens, and at
    most `max_tokens`.

    The newest unit is never part of a segment: the agent is acting on it.
    """
    live = [u for u in work.live_units() if not u.protected]
    if len(live) < 2:
        return []
    total = sum(u.tokens for u in live)
    segment: list[Unit] = []
    size = 0
    for unit in live[:-1]:
        if size >= share * total or (segment and size + unit.tokens > max_tokens):
            break
        segment.append(unit)
        size += unit.tokens
    return segment


def target_tokens(work: Working, segment: Sequence[Unit]) -> int:
    """Summary size: `summary_ratio` of the segment, capped by the pinned budget left."""
    size = sum(u.tokens for u in segment)
    headroom = work.budgets[Component.PINNED] - work.ledger.used[Component.PINNED]
    return min(math.ceil(size * work.budgets.policy.summary_ratio), headroom)


def plan_summary(work: Working) -> Action | None:
    """Record a SUMMARIZE of the oldest segment, to be executed asynchronously."""
    segment = choose_segment(work)
    target = target_tokens(work, segment)
    if not segment or target < MIN_SUMMARY_TOKENS:
        return None
    messages = tuple(work.messages[i] for u in segment for i in u.indices)
    ids = tuple(m.id for m in messages)
    tokens = sum(u.tokens for u in segment)
    total = work.ledger.total
    action = Action(
        ActionKind.SUMMARIZE,
        Rule.SUMMARIZATION,
        ids,
        total,
        total,
        f"utilization {total / work.budgets.effective_limit:.0%}: compress the oldest "
        f"{len(ids)} messages ({tokens} tokens) into a pinned summary of at most {target} tokens",
        target_tokens=target,
        segment=messages,
    )
    work.actions.append(action)
    return action


def summarize_now(work: Working, summarize: Summarize) -> Action | None:
    """Run a summarizer callable on the oldest segment and apply its result in place."""
    segment = choose_segment(work)
    target = target_tokens(work, segment)
    if not segment or target < MIN_SUMMARY_TOKENS:
        return None
    messages = [work.messages[i] for u in segment for i in u.indices]
    text = summarize(messages, target)
    return apply_summary(work, text, [m.id for m in messages], target)


def apply_summary(
    work: Working, text: str, replaces: Sequence[str], target: int | None = None
) -> Action | None:
    """Swap the still-present messages of `replaces` for one pinned summary (cut to `target`)."""
    present = {m.id for m, alive in zip(work.messages, work.alive, strict=True) if alive}
    ids = [i for i in replaces if i in present]
    if not ids:
        return None
    summary = summary_message(text, ids)
    limit = target if target is not None else work.budgets[Component.PINNED]
    if work.counter.count(summary) > limit:
        cut = work.counter.truncate(summary, limit, "…")
        if cut is None:
            return None
        summary = cut
    wanted = set(ids)
    units = [u for u in work.units if any(work.messages[i].id in wanted for i in u.indices)]
    before = work.ledger.total
    removed = work.remove(units)
    work.append(summary)
    action = Action(
        ActionKind.SUMMARIZE,
        Rule.SUMMARIZATION,
        tuple(removed),
        before,
        work.ledger.total,
        f"replaced {len(removed)} messages with a pinned summary of {summary.token_count} tokens",
        replacement=summary,
    )
    work.actions.append(action)
    return action


def handoff_text(task: str, messages: Sequence[Message]) -> str:
    """The handoff a RESET leaves: the task, the pinned facts, the last user request."""
    lines = [f"Context was reset to stay within the token budget. Current task: {task or '-'}"]
    pinned = [m.text for m in messages if m.pinned]
    if pinned:
        lines.append("Pinned facts:")
        lines.extend(f"- {text}" for text in pinned)
    last_user = next((m.text for m in reversed(messages) if m.role == "user"), None)
    if last_user:
        lines.append(f"Last request: {last_user}")
    return "\n".join(lines)

"""The cascade: the order in which strategies run until a session fits.

1. tool-result hygiene (duplicates, one oversized result);
2. sliding window over the older part of the history (cheap, no model);
3. importance over what remains, the newest unit excepted;
4. summarization: inline when a summarizer callable is given, else planned for the summarizer
   once the total or any prunable component reaches the info threshold of its share, so the
   summary is ready before that component has to be pruned;
5. graceful degradation: drop everything prunable, cut a lone oversized message, and finally
   RESET to a handoff summary. Never an exception for a session that merely grew too large.

Single strategies (`sliding_window`, `importance`, `summarization`) run hygiene, their own step
and degradation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from streams.budget.actions import Action, ActionKind, Rule
from streams.budget.hygiene import TRUNCATION_MARKER, apply_hygiene
from streams.budget.importance import Scorer
from streams.budget.model import Component
from streams.budget.selection import importance, pressure_text, sliding_window
from streams.budget.summarization import (
    Summarize,
    handoff_text,
    plan_summary,
    summarize_now,
    summary_message,
)
from streams.budget.working import Working
from streams.errors import UnknownStrategyError

Strategy = Literal["sliding_window", "importance", "summarization", "cascade"]
STRATEGIES: tuple[str, ...] = ("sliding_window", "importance", "summarization", "cascade")


@dataclass(frozen=True, slots=True)
class CascadeInput:
    """Everything the cascade needs besides the working state."""

    strategy: str
    task: str
    scorer: Scorer | None
    summarize: Summarize | None
    window_keep: float = 0.5
    plan_summary: bool = True
    """False while a planned summary is still outstanding: prune instead of asking again."""


def run_cascade(work: Working, spec: CascadeInput) -> None:
    """Apply the configured strategies in cascade order until the session fits."""
    if spec.strategy not in STRATEGIES:
        raise UnknownStrategyError(
            f"unknown strategy {spec.strategy!r} (expected one of {', '.join(STRATEGIES)})"
        )
    summary_due = work.ledger.pressure() >= work.budgets.policy.info
    steps = (
        {"sliding_window", "importance", "summarization"}
        if spec.strategy == "cascade"
        else {spec.strategy}
    )
    if not work.ledger.fits():
        apply_hygiene(work)
    if not work.ledger.fits() and "summarization" in steps and spec.summarize is not None:
        summarize_now(work, spec.summarize)
    if not work.ledger.fits() and "sliding_window" in steps:
        live = sum(1 for u in work.live_units() if not u.protected)
        share = spec.window_keep if "importance" in steps else 0.0
        sliding_window(work, keep_newest=max(1, int(live * share)))
    if not work.ledger.fits() and "importance" in steps and spec.scorer is not None:
        importance(work, spec.scorer, spec.task)
    if "summarization" in steps and spec.summarize is None and spec.plan_summary and summary_due:
        plan_summary(work)
    if not work.ledger.fits() and spec.strategy == "summarization":
        sliding_window(work, keep_newest=1)
    if not work.ledger.fits():
        degrade(work, spec.task)


def degrade(work: Working, task: str) -> None:
    """Everything prunable goes, the newest turn last; an oversized one is cut; else RESET."""
    for keep_newest in (1, 0):
        recorded = len(work.actions)
        sliding_window(work, keep_newest=keep_newest)
        if len(work.actions) > recorded:
            _relabel_last(work, Rule.SLIDING_WINDOW, Rule.DEGRADATION)
        if not work.ledger.fits():
            _cut_oversized(work)
        if work.ledger.fits():
            return
    reset(work, task)


def _relabel_last(work: Working, old: Rule, new: Rule) -> None:
    if work.actions and work.actions[-1].rule is old and work.actions[-1].kind is ActionKind.DROP:
        last = work.actions[-1]
        work.actions[-1] = replace(
            last, rule=new, reason=last.reason.replace("dropped the oldest", "dropped all older")
        )


def _cut_oversized(work: Working) -> None:
    """Truncate the one remaining prunable message that is larger than its component budget."""
    for i, message in enumerate(work.messages):
        component = message.component
        if not (work.alive[i] and component.prunable):
            continue
        room = min(
            work.budgets[component],
            work.budgets.effective_limit - work.ledger.total + (message.token_count or 0),
        )
        if (message.token_count or 0) <= room:
            continue
        cut = work.counter.truncate(message, room, TRUNCATION_MARKER)
        before = work.ledger.total
        if cut is None:
            work.drop(
                [work.unit_of[i]],
                Rule.DEGRADATION,
                f"{pressure_text(work)}; message {message.id} cannot fit even when cut",
            )
            continue
        reason = (
            f"message {message.id} of {message.token_count} tokens exceeds the {component.value} "
            f"budget of {work.budgets[component]} on its own; cut to {cut.token_count} tokens"
        )
        after = before - (message.token_count or 0) + (cut.token_count or 0)
        work.replace(
            i,
            cut,
            Action(
                ActionKind.TRUNCATE, Rule.DEGRADATION, (message.id,), before, after, reason, cut
            ),
        )


def reset(work: Working, task: str) -> None:
    """Drop every non-fixed message and leave one pinned handoff summary that fits."""
    before = work.ledger.total
    why = pressure_text(work)
    live = [m for m, alive in zip(work.messages, work.alive, strict=True) if alive]
    text = handoff_text(task, live)
    removed = work.remove([u for u in work.units if not _is_fixed(work, u.indices)])
    room = min(
        work.budgets[Component.PINNED],
        work.budgets.effective_limit - work.ledger.total,
    )
    handoff = summary_message(text, removed or ["reset"])
    if work.counter.count(handoff) > room:
        handoff = work.counter.truncate(handoff, room, "…") or None  # type: ignore[assignment]
    if handoff is not None:
        work.append(handoff)
    work.actions.append(
        Action(
            ActionKind.RESET,
            Rule.DEGRADATION,
            tuple(removed),
            before,
            work.ledger.total,
            f"{why}; pinned and protected messages alone exceed the budget: reset to a handoff "
            f"summary (critical)",
            replacement=handoff,
        )
    )


def _is_fixed(work: Working, indices: Sequence[int]) -> bool:
    return all(work.messages[i].component.fixed for i in indices)

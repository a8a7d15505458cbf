"""Pruning by age (sliding window) and by importance; both drop whole units until it fits."""

from __future__ import annotations

from streams.budget.actions import Rule
from streams.budget.importance import Scorer
from streams.budget.units import Unit
from streams.budget.working import Working


def pressure_text(work: Working) -> str:
    """A short account of which budgets are exceeded, for an action's reason."""
    parts = [
        f"{c.value} {work.ledger.used[c]}/{work.budgets[c]} tokens"
        for c in sorted(work.pressure(), key=lambda c: c.value)
    ]
    if work.ledger.over_limit():
        parts.append(f"total {work.ledger.total}/{work.budgets.effective_limit} tokens")
    return ", ".join(parts) or "within budget"


def drop_in_order(work: Working, order: list[Unit]) -> list[Unit]:
    """Remove units from `order` (first = first to go) while that helps; returns those removed."""
    pressured, total_target = work.targets()
    dropped: list[Unit] = []
    if not pressured and total_target is None:
        return dropped
    for unit in order:
        if work.done(pressured, total_target):
            break
        if unit.protected or not work.alive[unit.first]:
            continue
        if work.helps(unit, pressured, total_target):
            work.remove([unit])
            dropped.append(unit)
    return dropped


def sliding_window(work: Working, *, keep_newest: int = 0) -> None:
    """Drop the oldest unprotected units until the session fits.

    `keep_newest` units at the end are left alone: the newest is the turn the agent acts on (only
    degradation may drop it), and the cascade leaves the recent half to the importance step.
    """
    live = [u for u in work.live_units() if not u.protected]
    candidates = live[: max(0, len(live) - keep_newest)]
    before, why = work.ledger.total, pressure_text(work)
    dropped = drop_in_order(work, candidates)
    ids = [work.messages[i].id for u in dropped for i in u.indices]
    work.record_drop(ids, before, Rule.SLIDING_WINDOW, f"{why}; dropped the oldest messages")


def importance(work: Working, scorer: Scorer, task: str) -> None:
    """Drop the lowest-scored units until it fits, then refill the room left, best first.

    A unit scores as its best message. The newest unit is never dropped here: it is the turn the
    agent is acting on. After the drop pass, dropped units that fit in the room the last drops
    left over are put back, highest score first, so the budget is used, not just respected.
    """
    live = [u for u in work.live_units() if not u.protected]
    if len(live) <= 1:
        return
    candidates = live[:-1]
    indices = [i for u in candidates for i in u.indices]
    scores = scorer.score(task, [work.messages[i] for i in indices])
    by_index = dict(zip(indices, scores, strict=True))
    unit_score = {id(u): max(by_index[i] for i in u.indices) for u in candidates}
    order = sorted(candidates, key=lambda u: (unit_score[id(u)], u.first))
    before, why = work.ledger.total, pressure_text(work)
    pressured, total_target = work.targets()
    dropped = drop_in_order(work, order)
    for unit in sorted(dropped, key=lambda u: -unit_score[id(u)]):
        work.undrop(unit)
        if not (work.done(pressured, total_target) and work.ledger.fits()):
            work.remove([unit])
    ids = [work.messages[i].id for u in dropped for i in u.indices if not work.alive[i]]
    work.record_drop(
        ids, before, Rule.IMPORTANCE, f"{why}; dropped the messages least relevant to the task"
    )

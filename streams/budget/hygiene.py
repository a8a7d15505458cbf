"""Tool-result hygiene: the cheapest step, and the one that stops tool loops.

An agent stuck calling the same tool gets the same result again and again. Only the newest copy
of an exact or near duplicate is worth keeping (its call/result pair stays whole); a single result
larger than the whole tool-results budget is cut to fit, token-exact, and marked.
"""

from __future__ import annotations

import hashlib
import re

from streams.budget.actions import Action, ActionKind, Rule
from streams.budget.model import Component, Message
from streams.budget.working import Working

TRUNCATION_MARKER = "\n[… truncated by token budget]"
_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, size: int = 3) -> frozenset[int]:
    """Hashed word n-grams of a text (for near-duplicate detection)."""
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return frozenset({hash(" ".join(words))})
    return frozenset(hash(" ".join(words[i : i + size])) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """Jaccard similarity of two shingle sets."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def drop_duplicate_results(work: Working) -> None:
    """Drop older exact and near-duplicate tool results (with their calls), keep the newest."""
    threshold = work.budgets.policy.near_duplicate
    exact_seen: dict[str, int] = {}
    near_seen: list[tuple[frozenset[int], int]] = []
    exact: list[int] = []
    near: list[int] = []
    by_index = {i: u for u in work.units for i in u.indices}
    for i in range(len(work.messages) - 1, -1, -1):
        message = work.messages[i]
        if not work.alive[i] or message.component is not Component.TOOL_RESULTS:
            continue
        if by_index[i].protected:
            continue
        digest = hashlib.blake2b(message.text.encode(), digest_size=16).hexdigest()
        if digest in exact_seen:
            exact.append(i)
            continue
        exact_seen[digest] = i
        grams = shingles(message.text)
        if threshold < 1.0 and any(jaccard(grams, other) >= threshold for other, _ in near_seen):
            near.append(i)
            continue
        near_seen.append((grams, i))
    for indices, rule, what in (
        (exact, Rule.DUPLICATE_TOOL_RESULT, "exact"),
        (near, Rule.NEAR_DUPLICATE_TOOL_RESULT, "near"),
    ):
        if indices:
            units = {id(by_index[i]): by_index[i] for i in indices}.values()
            work.drop(
                sorted(units, key=lambda u: u.first),
                rule,
                f"{len(indices)} older {what}-duplicate tool result(s) of a newer one (tool loop)",
            )


def truncate_oversized_result(work: Working) -> None:
    """Cut the largest tool result to the tool-results budget when it alone exceeds it."""
    budget = work.budgets[Component.TOOL_RESULTS]
    if not work.ledger.excess(Component.TOOL_RESULTS):
        return
    candidates = [
        i
        for i, m in enumerate(work.messages)
        if work.alive[i] and m.component is Component.TOOL_RESULTS and (m.token_count or 0) > budget
    ]
    if not candidates:
        return
    i = max(candidates, key=lambda k: work.messages[k].token_count or 0)
    original: Message = work.messages[i]
    cut = work.counter.truncate(original, budget, TRUNCATION_MARKER)
    if cut is None:
        return
    before = work.ledger.total
    after = before - (original.token_count or 0) + (cut.token_count or 0)
    reason = (
        f"tool result of {original.token_count} tokens is larger than the whole tool-results "
        f"budget of {budget}; cut to {cut.token_count} tokens"
    )
    action = Action(
        ActionKind.TRUNCATE, Rule.OVERSIZED_TOOL_RESULT, (original.id,), before, after, reason, cut
    )
    work.replace(i, cut, action)


def apply_hygiene(work: Working) -> None:
    """Run the hygiene step: duplicates first, then one oversized result."""
    drop_duplicate_results(work)
    truncate_oversized_result(work)

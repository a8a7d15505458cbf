"""Tool-result hygiene: the cheapest step, and the one that stops tool loops.

An agent stuck calling the same tool gets the same result again and again. Only the newest copy
of an exact or near duplicate is worth keeping (its call/result pair stays whole); a single result
larger than the whole tool-results budget is cut to fit, token-exact, and marked.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass

import numpy as np

from streams.budget.actions import Action, ActionKind, Rule
from streams.budget.model import Component, Message
from streams.budget.working import Working

TRUNCATION_MARKER = "\n[… truncated by token budget]"
_WORD = re.compile(r"\w+", re.UNICODE)
_ROWS, _BANDS = 4, 8
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: each word of an n-gram moves every bit
_RANDOM = np.random.default_rng(0x70B5)
_A = _RANDOM.integers(1, 1 << 62, size=_ROWS * _BANDS, dtype=np.uint64) | np.uint64(1)
_B = _RANDOM.integers(0, 1 << 62, size=_ROWS * _BANDS, dtype=np.uint64)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What duplicate detection needs of a message, computed once and cached on it."""

    digest: bytes
    grams: frozenset[int]
    signature: np.ndarray
    keys: tuple[tuple[int, ...], ...]


def shingles(text: str, size: int = 3) -> frozenset[int]:
    """Hashed word n-grams of a text (for near-duplicate detection).

    Hashes are the same in every process (CRC-32 of each word, combined per n-gram; Python's
    `hash` of a string is salted per process), so a worker restarted after a crash finds the same
    near duplicates as the one before it.
    """
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return frozenset({zlib.crc32(" ".join(words).encode())})
    ids = np.fromiter((zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    grams = ids[: len(words) - size + 1].copy()
    with np.errstate(over="ignore"):
        for k in range(1, size):
            grams = grams * _MIX + ids[k : len(words) - size + 1 + k]
    return frozenset(grams.tolist())


def fingerprint(message: Message) -> Fingerprint:
    """The message's cached fingerprint: exact digest, shingles, and MinHash band keys.

    A 32-value MinHash signature cut into 8 bands of 4: two results with Jaccard similarity 0.9
    share a band with probability 0.99, two at 0.5 with 0.4, unrelated ones almost never; only
    those are compared exactly. Computed once per message, so a lookup is O(1) per result.
    """
    cached = message.features.get("fingerprint")
    if isinstance(cached, Fingerprint):
        return cached
    grams = shingles(message.text)
    values = np.fromiter(grams, dtype=np.uint64, count=len(grams))
    with np.errstate(over="ignore"):
        signature = ((np.outer(_A, values) + _B[:, None]) >> 32).min(1)
    found = Fingerprint(
        hashlib.blake2b(message.text.encode(), digest_size=16).digest(),
        grams,
        signature,
        tuple((b, *signature[b * _ROWS : (b + 1) * _ROWS].tolist()) for b in range(_BANDS)),
    )
    message.features["fingerprint"] = found
    return found


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """Jaccard similarity of two shingle sets."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _near(fp: Fingerprint, other: Fingerprint, threshold: float) -> bool:
    small, large = sorted((len(fp.grams), len(other.grams)))
    if small < threshold * large:
        return False
    agree = int(np.count_nonzero(fp.signature == other.signature))
    if agree < (threshold - 0.25) * len(fp.signature):
        return False
    return jaccard(fp.grams, other.grams) >= threshold


def drop_duplicate_results(work: Working) -> None:
    """Drop older exact and near-duplicate tool results (with their calls), keep the newest."""
    threshold = work.budgets.policy.near_duplicate
    exact_seen: set[bytes] = set()
    buckets: dict[tuple[int, ...], list[Fingerprint]] = {}
    exact: list[int] = []
    near: list[int] = []
    by_index = work.unit_of
    for i in range(len(work.messages) - 1, -1, -1):
        message = work.messages[i]
        if not work.alive[i] or message.component is not Component.TOOL_RESULTS:
            continue
        if by_index[i].protected:
            continue
        fp = fingerprint(message)
        if fp.digest in exact_seen:
            exact.append(i)
            continue
        exact_seen.add(fp.digest)
        candidates = {id(c): c for k in fp.keys for c in buckets.get(k, ())}.values()
        if threshold < 1.0 and any(_near(fp, c, threshold) for c in candidates):
            near.append(i)
            continue
        for key in fp.keys:
            buckets.setdefault(key, []).append(fp)
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
    """Run the hygiene step when tool results can help: duplicates, then one oversized result."""
    if work.ledger.excess(Component.TOOL_RESULTS) or work.ledger.over_limit():
        drop_duplicate_results(work)
        truncate_oversized_result(work)

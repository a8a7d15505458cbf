"""Importance scoring: how much a message matters to the session's current task.

Scorers sit behind the `Scorer` port. Two are built on an `Embedder` port (sentence-transformers
in production, see `streams.adapters.embedding`):

- `CosineRecencyScorer`, the baseline rule: cosine(task, message) + 0.1 × relative position.
- `EvidenceScorer`, the default: long messages are split into passages and scored by their best
  passage (a fact buried in a 2,000-token tool result is not averaged away, and nothing falls past
  the model's 256-word-piece window), blended with exact term overlap on the rarer words of the
  task (names, numbers, identifiers that embeddings blur), plus the same small recency term.

`LexicalScorer` needs no model: the fallback when no embedder is configured.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from streams.budget.model import Message

Vector = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors."""

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One normalised row per text."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """Scores messages for a task; higher means keep."""

    def score(self, task: str, messages: Sequence[Message]) -> list[float]:
        """One score per message, comparable within one call."""
        ...


def relative_positions(n: int) -> list[float]:
    """0 for the oldest message up to 1 for the newest."""
    if n <= 1:
        return [1.0] * n
    return [i / (n - 1) for i in range(n)]


class EmbeddingCache:
    """Vectors per text digest, so a message is embedded once per process (bounded, FIFO)."""

    def __init__(self, embedder: Embedder, max_entries: int = 200_000) -> None:
        self.embedder = embedder
        self.max_entries = max_entries
        self._vectors: dict[bytes, Vector] = {}
        self.misses = 0

    def vectors(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embeddings of `texts`, computing only those not cached, in one batch."""
        keys = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        if missing:
            absent = set(missing)
            wanted = {k: t for k, t in zip(keys, texts, strict=True) if k in absent}
            fresh = self.embedder.embed([wanted[k] for k in missing])
            self.misses += len(missing)
            for key, vector in zip(missing, fresh, strict=True):
                self._vectors[key] = vector
            while len(self._vectors) > self.max_entries:
                self._vectors.pop(next(iter(self._vectors)))
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys])


class CosineRecencyScorer:
    """The baseline rule: cosine similarity to the task plus `recency` × relative position."""

    def __init__(self, embedder: Embedder, recency: float = 0.1) -> None:
        self.cache = EmbeddingCache(embedder)
        self.recency = recency

    def score(self, task: str, messages: Sequence[Message]) -> list[float]:
        """Cosine to the task plus recency."""
        if not messages:
            return []
        vectors = self.cache.vectors([task, *(m.text for m in messages)])
        cosine = vectors[1:] @ vectors[0]
        return [
            float(c) + self.recency * p
            for c, p in zip(cosine, relative_positions(len(messages)), strict=True)
        ]


_SENTENCE = re.compile(r"(?<=[.!?;\n])\s+")
_TERM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-.:/]*[A-Za-z0-9]|\d")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "we",
        "our",
        "us",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "not",
        "no",
        "yes",
        "can",
        "could",
        "should",
        "would",
        "about",
        "into",
        "over",
        "after",
        "before",
        "than",
        "then",
        "so",
        "if",
        "any",
        "all",
        "some",
        "more",
        "most",
        "other",
    ]
)


def terms(text: str) -> list[str]:
    """Lower-cased content words, identifiers and numbers of a text."""
    return [t for t in (m.lower() for m in _TERM.findall(text)) if t not in _STOP]


def passages(text: str, max_words: int = 20) -> list[str]:
    """Split a text into passages of whole sentences, each at most about `max_words` words."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in _SENTENCE.split(text):
        words = sentence.split()
        if not words:
            continue
        while len(words) > max_words:
            if current:
                out.append(" ".join(current))
                current, size = [], 0
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if size + len(words) > max_words and current:
            out.append(" ".join(current))
            current, size = [], 0
        current.extend(words)
        size += len(words)
    if current:
        out.append(" ".join(current))
    return out or [text]


class EvidenceScorer:
    """Best-passage similarity, blended with rare-term overlap, plus recency (the default).

    Passages are about one sentence (`max_words=20`, a typical sentence length): MiniLM is
    trained on sentence pairs, and a fact stated in one sentence of a message about something
    else is diluted by every sentence that shares its passage. On generated sessions (the
    `bench/retention.py` setup, on two seeds the bench does not use) the share of evidence kept,
    mean over 5/10/20% budgets, rose from 0.68 and 0.66 with 48-word passages to 0.79 and 0.75.

    A long message embeds only its `max_passages` passages that share the most terms with the
    task (ties: the earlier one), not all of them: the model is the worker's bottleneck, and
    a passage without a task term rarely holds the best match. `bench/retention.py`: evidence
    kept 0.708 / 0.812 / 0.903 at the 5 / 10 / 20% budgets with 4 passages, 0.708 / 0.771 /
    0.875 with all of them; the worker with scoring on went from 27 to 67 turns/s
    (`bench/pipeline.py`). A task change picks again; passages are cached by text.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        lexical: float = 0.35,
        recency: float = 0.1,
        max_words: int = 20,
        max_passages: int = 4,
    ) -> None:
        self.cache = EmbeddingCache(embedder)
        self.lexical = lexical
        self.recency = recency
        self.max_words = max_words
        self.max_passages = max_passages

    @property
    def _key(self) -> str:
        return f"passages:{self.max_words}:{self.max_passages}:{id(self.cache.embedder)}"

    def chosen(self, text: str, task: str) -> tuple[list[str], bool]:
        """The passages of `text` to embed for `task`, and whether the choice depends on it."""
        found = passages(text, self.max_words)
        if self.max_passages <= 0 or len(found) <= self.max_passages:
            return found, False
        wanted = set(terms(task))
        shared = [len(wanted.intersection(terms(p))) for p in found]
        best = sorted(range(len(found)), key=lambda i: (-shared[i], i))[: self.max_passages]
        return [found[i] for i in sorted(best)], True

    def prime(self, messages: Sequence[Message], tasks: Sequence[str] | None = None) -> int:
        """Embed the passages of messages not embedded yet for their task (`tasks`, parallel to
        `messages`; none: no task), in one model call; returns how many texts the model
        embedded (cached ones are not counted).

        The vectors are cached on each message, so a message is embedded once in its life (once
        per task, if it is long) and scoring it later is a small matrix product. The worker
        primes a micro-batch of new messages across sessions as they arrive.
        """
        key = self._key
        todo: list[tuple[Message, str | None, list[str]]] = []
        for i, m in enumerate(messages):
            task = tasks[i] if tasks is not None else ""
            cached = m.features.get(key)
            if isinstance(cached, tuple) and cached[0] in (None, task):
                continue
            chunks, by_task = self.chosen(m.text, task)
            todo.append((m, task if by_task else None, chunks))
        if not todo:
            return 0
        before = self.cache.misses
        vectors = self.cache.vectors([c for _, _, cs in todo for c in cs])
        at = 0
        for message, tag, cs in todo:
            message.features[key] = (tag, vectors[at : at + len(cs)])
            at += len(cs)
        return self.cache.misses - before

    def _dense(self, task: str, messages: Sequence[Message]) -> list[float]:
        """Best-passage cosine per message, cached on the message for the current task.

        The task changes rarely, so on most turns only the new messages need a product.
        """
        key = self._key
        tag = (key, task)
        out: list[float] = []
        query: Vector | None = None
        for m in messages:
            cached = m.features.get("dense")
            if isinstance(cached, tuple) and cached[0] == tag:
                out.append(cached[1])
                continue
            if query is None:
                query = self.cache.vectors([task])[0]
            value = float((m.features[key][1] @ query).max())  # type: ignore[index]
            m.features["dense"] = (tag, value)
            out.append(value)
        return out

    def score(self, task: str, messages: Sequence[Message]) -> list[float]:
        """Per message: max passage cosine, + lexical × term overlap, + recency × position."""
        if not messages:
            return []
        self.prime(messages, [task] * len(messages))
        dense = self._dense(task, messages)
        overlap = term_overlap(task, messages)
        positions = relative_positions(len(messages))
        return [
            d + self.lexical * o + self.recency * p
            for d, o, p in zip(dense, overlap, positions, strict=True)
        ]


def term_overlap(task: str, messages: Sequence[Message]) -> list[float]:
    """Share of the task's terms (idf-weighted over these messages) that each message contains."""
    wanted = frozenset(terms(task))
    if not wanted or not messages:
        return [0.0] * len(messages)
    bags = [_terms_of(m) for m in messages]
    n = len(messages)
    idf = {t: math.log((n + 1) / (sum(t in bag for bag in bags) + 0.5)) for t in wanted}
    total = sum(idf.values()) or 1.0
    return [sum(idf[t] for t in wanted & bag) / total if wanted & bag else 0.0 for bag in bags]


def _terms_of(message: Message) -> frozenset[str]:
    cached = message.features.get("terms")
    if not isinstance(cached, frozenset):
        cached = frozenset(terms(message.text))
        message.features["terms"] = cached
    return cached


class LexicalScorer:
    """Term overlap with the task plus recency; no model needed."""

    def __init__(self, recency: float = 0.1) -> None:
        self.recency = recency

    def score(self, task: str, messages: Sequence[Message]) -> list[float]:
        """Idf-weighted term overlap plus recency."""
        overlap = term_overlap(task, messages)
        positions = relative_positions(len(messages))
        return [o + self.recency * p for o, p in zip(overlap, positions, strict=True)]

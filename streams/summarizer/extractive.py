"""The default summarizer backend: offline, deterministic, extractive.

It keeps the segment's most informative sentences, verbatim, in their original order:
- relevance is centrality (cosine similarity to the segment's mean embedding), plus information
  density (mean idf of the sentence's words within the segment, so filler the agent repeated
  scores low), plus a bonus for what an agent must not forget: numbers, names and
  identifiers, decisions and outcomes;
- selection is maximal marginal relevance, so the summary covers the segment instead of
  repeating its dominant theme;
- the summary fits the target token count exactly as the worker counts it: whole sentences
  while they fit, then the best remaining one cut token-exact into the room left.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streams.budget import Embedder, Message, MessageCounter
from streams.summarizer.backend import SummaryRequest, summary_tokens

MAX_SENTENCE_WORDS = 60
MMR_LAMBDA = 0.5
MIN_FILL_TOKENS = 8

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_WORD = re.compile(r"[a-z][a-z0-9_]+")
_NUMBER = re.compile(r"\d\d|\d[.,:/]\d")
_NAME = re.compile(r"(?<=\w[ ,;:])[A-Z][a-zA-Z]+|\b\w+[_/.-]\w+|\b[a-z]+[A-Z]\w*")
_DECISION = re.compile(
    r"\b(decid\w*|chose|choose|agreed|conclu\w*|must|will|plan\w*|next|because|instead|"
    r"root cause|fix\w*|result\w*|error|fail\w*|confirm\w*|found|deadline|budget|goal)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Sentence:
    """One candidate sentence with where it came from."""

    position: int
    text: str


def sentences(segment: Sequence[Message]) -> list[Sentence]:
    """The segment's distinct sentences in order; very long ones cut to `MAX_SENTENCE_WORDS`."""
    out: list[Sentence] = []
    seen: set[str] = set()
    for message in segment:
        label = _label(message)
        for raw in _SPLIT.split(message.text):
            words = raw.strip().lstrip("-*•> ").split()
            if len(words) < 3:
                continue
            text = " ".join(words[:MAX_SENTENCE_WORDS])
            if text in seen:
                continue
            seen.add(text)
            out.append(Sentence(len(out), f"{label}{text}"))
    return out


def _label(message: Message) -> str:
    if message.role == "tool":
        return f"[{message.name or 'tool'}] "
    if message.role == "user":
        return "[user] "
    return ""


def salience(text: str) -> float:
    """The bonus for what an agent must keep: numbers, names/identifiers, decisions."""
    bonus = 0.0
    if _NUMBER.search(text):
        bonus += 0.15
    if _NAME.search(text):
        bonus += 0.10
    if _DECISION.search(text):
        bonus += 0.10
    return bonus


def density(texts: Sequence[str]) -> list[float]:
    """Mean idf of each text's words within `texts`, scaled to [0, 1]: rare words score high."""
    words = [set(_WORD.findall(t.lower())) for t in texts]
    frequency: Counter[str] = Counter(w for ws in words for w in ws)
    n = len(texts)
    top = math.log(n + 1) or 1.0
    return [
        sum(math.log((n + 1) / frequency[w]) for w in ws) / (len(ws) * top) if ws else 0.0
        for ws in words
    ]


def rank(candidates: Sequence[Sentence], embedder: Embedder) -> list[int]:
    """Candidate indices in MMR order: relevant first, each one unlike those before it."""
    if not candidates:
        return []
    texts = [c.text for c in candidates]
    vectors = embedder.embed(texts)
    centroid = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centroid)) or 1.0
    relevance = (
        0.5 * (vectors @ (centroid / norm))
        + 0.5 * np.array(density(texts))
        + np.array([salience(t) for t in texts])
    )
    similarity = vectors @ vectors.T
    chosen: list[int] = []
    closest = np.full(len(candidates), -1.0, dtype=np.float32)
    remaining = np.ones(len(candidates), dtype=bool)
    for _ in range(len(candidates)):
        redundancy = np.maximum(closest, 0.0)
        score = MMR_LAMBDA * relevance - (1 - MMR_LAMBDA) * redundancy
        score[~remaining] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        remaining[best] = False
        closest = np.maximum(closest, similarity[best])
    return chosen


def extract(
    segment: Sequence[Message], target: int, counter: MessageCounter, embedder: Embedder
) -> str:
    """The summary text: ranked sentences in original order, fitted to `target` tokens."""
    candidates = sentences(segment)
    replaces = [m.id for m in segment]
    base = summary_tokens("", replaces, counter)
    room = target - base
    picked: list[Sentence] = []
    order = rank(candidates, embedder)
    skipped: list[Sentence] = []
    for index in order:
        sentence = candidates[index]
        cost = counter.count_text(f"- {sentence.text}\n")
        if cost <= room:
            picked.append(sentence)
            room -= cost
        else:
            skipped.append(sentence)
    text = _join(picked)
    while picked and summary_tokens(text, replaces, counter) > target:
        picked.pop()  # boundary merges can cost a token more than the pieces: drop the weakest
        text = _join(picked)
    room = target - summary_tokens(text, replaces, counter)
    if skipped and room >= MIN_FILL_TOKENS:
        filler = counter.tokenizer.truncate(f"- {skipped[0].text}", room - 2).rstrip() + "…"
        candidate = _join(picked, extra=(skipped[0].position, filler))
        if summary_tokens(candidate, replaces, counter) <= target:
            text = candidate
    return text


def _join(picked: Sequence[Sentence], extra: tuple[int, str] | None = None) -> str:
    lines = [(s.position, f"- {s.text}") for s in picked]
    if extra is not None:
        lines.append(extra)
    return "\n".join(line for _, line in sorted(lines))


class ExtractiveBackend:
    """`extract` behind the backend interface, run off the event loop."""

    name = "extractive"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    async def summarize(self, request: SummaryRequest, counter: MessageCounter) -> str:
        """The extractive summary of the request's segment, fitted to its target."""
        return await asyncio.to_thread(
            extract, request.segment, request.target_tokens, counter, self.embedder
        )

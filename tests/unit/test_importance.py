"""The default scorer's passage choice: long messages embed only their passages nearest the task."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from streams.app import prime_batch
from streams.budget import Message, Policy
from streams.budget.importance import EvidenceScorer, passages
from streams.codecs import SessionStart, TurnEvent, TurnEventType


class BagOfWords:
    """A deterministic embedder (hashed word counts, normalised) that records its calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, hashlib.sha1(word.encode()).digest()[0] % 64] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


FILLER = "The build ran again and the logs scrolled past without anything new to report."


def long_message(fact: str, at: int, n: int = 10) -> Message:
    sentences = [FILLER] * n
    sentences[at] = fact
    return Message(id=f"m{at}", role="tool", content=" ".join(sentences), tool_call_id="c1")


def test_a_short_message_embeds_every_passage_once_whatever_the_task() -> None:
    embedder = BagOfWords()
    scorer = EvidenceScorer(embedder)
    short = Message(id="s", role="user", content="Deploy the billing service. Then check it.")
    assert scorer.prime([short], ["deploy billing"]) == len(passages(short.text))
    assert scorer.prime([short], ["an unrelated task"]) == 0  # the choice did not depend on it


def test_a_long_message_embeds_the_passages_sharing_most_terms_with_the_task() -> None:
    embedder = BagOfWords()
    scorer = EvidenceScorer(embedder, max_passages=4)
    fact = "The quarterly invoice total for Acme was 4,210 euros."
    message = long_message(fact, at=8)
    assert len(passages(message.text)) == 10
    chosen, by_task = scorer.chosen(message.text, "what was the Acme invoice total")
    assert by_task and chosen[-1] == fact and chosen[:3] == [FILLER] * 3  # ties: the earliest
    assert scorer.prime([message], ["what was the Acme invoice total"]) == 2  # distinct texts
    assert embedder.embedded == [FILLER, fact]  # the fact buried near the end, for its terms

    # A new task chooses again; passages already embedded come from the cache.
    before = len(embedder.embedded)
    assert scorer.prime([message], ["why did the build run again"]) == 0  # four fillers, cached
    assert len(embedder.embedded) == before
    assert scorer.chosen(message.text, "acme invoice euros")[0][-1] == fact


def test_the_message_holding_the_answer_outscores_filler_after_a_task_change() -> None:
    scorer = EvidenceScorer(BagOfWords(), max_passages=4)
    with_fact = long_message("Acme paid the invoice for 4,210 euros on March 3.", at=9)
    filler = Message(id="f", role="tool", content=" ".join([FILLER] * 10), tool_call_id="c2")
    scorer.prime([with_fact, filler], ["", ""])  # primed before the task was known
    first, second = scorer.score("when did Acme pay the invoice", [with_fact, filler])
    assert first > second


def test_one_model_call_primes_a_batch_across_sessions_and_tasks() -> None:
    embedder = BagOfWords()
    scorer = EvidenceScorer(embedder)
    a = long_message("Server eu-3 restarted at noon.", at=7)
    b = long_message("Ticket 881 asks for a refund.", at=6)
    b = Message(id="b", role=b.role, content=b.text, tool_call_id="c3")
    embedded = scorer.prime([a, b], ["when did eu-3 restart", "what does ticket 881 ask"])
    assert len(embedder.calls) == 1 and embedded == len(embedder.embedded) == 3
    texts = " | ".join(embedder.embedded)
    assert "Server eu-3 restarted" in texts and "Ticket 881 asks" in texts


def test_the_worker_embeds_only_messages_of_sessions_that_rank() -> None:
    """`importance` and `cascade` sessions rank: their new messages are embedded as they arrive,
    across sessions in one call, each long one for its session's task. `sliding_window` and
    `summarization` sessions never rank: nothing of theirs is embedded."""
    embedder = BagOfWords()
    scorer = EvidenceScorer(embedder)
    events = []
    for sid, strategy in (
        ("ranked", "importance"),
        ("cascade", None),
        ("window", "sliding_window"),
        ("summary", "summarization"),
    ):
        start = SessionStart("gpt-4o", 8000, Policy(), "", task="refund", strategy=strategy)
        events.append(TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, start))
        message = long_message(f"Ticket 881 of {sid} asks for a refund.", at=6)
        message = Message(id=f"{sid}-m", role="tool", content=message.text, tool_call_id="c1")
        events.append(TurnEvent(f"{sid}/1", sid, 1, TurnEventType.TURN, 0.0, message=message))
    events.append(TurnEvent("ranked/2", "ranked", 2, TurnEventType.TASK_UPDATE, 0.0, task="eu-3"))
    late = long_message("Server eu-3 restarted at noon.", at=8)
    events.append(TurnEvent("ranked/3", "ranked", 3, TurnEventType.TURN, 0.0, message=late))
    assert prime_batch(events, scorer) == len(embedder.embedded) == 4  # distinct texts
    assert len(embedder.calls) == 1
    texts = " | ".join(embedder.embedded)
    assert "Ticket 881 of ranked" in texts  # among its passages chosen for "refund"
    assert "Server eu-3 restarted" in texts  # chosen for the task updated before it
    assert "Ticket 881 of cascade" in texts  # the default strategy ranks too
    assert "of window" not in texts and "of summary" not in texts

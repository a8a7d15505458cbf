"""Evidence retention: how much of what a question needs survives pruning, per strategy.

For each generated conversation (`streams.corpus`) and each of its questions, the session is the
conversation followed by the question as the newest user turn, and the task is the question
text. It is pruned to 5%, 10% and 20% of the conversation's prunable tokens with

- `sliding_window` (drop the oldest first; no model),
- `importance` with the baseline scorer (`CosineRecencyScorer`: cosine + 0.1 × position),
- `importance` with the default scorer (`EvidenceScorer`: best passage + idf term overlap +
  recency),
- `importance` with the same scorer over static embeddings (`StaticEmbedder`, per-token vectors
  distilled from the model: `TOKENBUDGET_EMBEDDING_STATIC`),

and we report the share of the question's evidence messages still in the view (mean over
questions), plus the default's margin over the baseline in percentage points.

How the budget is made binding: every prunable message is relabelled to the `history`
component and the policy gives `history` an absolute budget of p × prunable tokens, under a
context limit large enough that no other limit is reached. All prunable tokens then compete for
one budget (tool results, RAG chunks and scratchpad notes included), and the system prompt,
being fixed, is never pruned. Relabelling also keeps the hygiene step (which only looks at
`tool_results`) out of the comparison: the duplicate polls of the stuck tool compete like any
other message. Importance drops whole units (a tool call with its results), so an evidence
message inside a unit larger than the budget cannot be kept by any strategy; the "fits" column
shows the share of evidence whose unit alone fits the budget.

All embeddings go through one shared cache, so each text (message or passage) is embedded
once for the whole run. Exits 1 when the default does not beat the baseline at every budget.

    .venv/bin/python bench/retention.py            # 8 conversations
    .venv/bin/python bench/retention.py --quick    # 3 conversations
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from statistics import mean

import numpy as np
from numpy.typing import NDArray

from streams.budget import (
    BudgetManager,
    Component,
    CosineRecencyScorer,
    EvidenceScorer,
    Message,
    Policy,
    Scorer,
)
from streams.budget.importance import Embedder, EmbeddingCache
from streams.budget.units import group_units
from streams.corpus import Conversation, generate_fleet

MODEL = "gpt-4o"
CONTEXT_LIMIT = 2_000_000
BUDGETS = (0.05, 0.10, 0.20)
SEED = 11


class SharedEmbeddings:
    """An `Embedder` over one cache: whichever scorer asks first pays, the other reads."""

    def __init__(self, embedder: Embedder) -> None:
        self.cache = EmbeddingCache(embedder)
        self.seconds = 0.0

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        started = time.perf_counter()
        vectors = self.cache.vectors(texts)
        self.seconds += time.perf_counter() - started
        return vectors


def as_history(messages: Sequence[Message]) -> list[Message]:
    """Copies with every prunable message in the `history` component (one binding budget)."""
    return [
        Message(
            id=m.id,
            role=m.role,
            content=m.content,
            component=Component.HISTORY if m.component.prunable else m.component,
            tool_call_id=m.tool_call_id,
            name=m.name,
            timestamp=m.timestamp,
        )
        for m in messages
    ]


def evaluate(
    conversations: Sequence[Conversation], scorers: dict[str, Scorer]
) -> tuple[dict[tuple[str, float], list[float]], dict[str, dict[tuple[str, float], list[float]]]]:
    """Per (strategy, budget) the evidence share of every question; also split by carrier."""
    from streams.adapters.tokenizers import tokenizer_for
    from streams.budget import resolve_model

    tokenizer = tokenizer_for(resolve_model(MODEL), None)
    shares: dict[tuple[str, float], list[float]] = defaultdict(list)
    by_carrier: dict[str, dict[tuple[str, float], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    runs: list[tuple[str, str, Scorer | None]] = [("sliding_window", "sliding_window", None)]
    runs += [(f"importance+{name}", "importance", scorer) for name, scorer in scorers.items()]
    for conversation in conversations:
        messages = as_history(conversation.messages)
        probe = BudgetManager(MODEL, CONTEXT_LIMIT, tokenizer=tokenizer)
        prunable = sum(probe.count(m) for m in messages if m.component.prunable)
        unit_tokens = {
            messages[i].id: unit.tokens for unit in group_units(messages) for i in unit.indices
        }
        for p in BUDGETS:
            budget = int(p * prunable)
            shares[("budget tokens", p)].append(budget)
            policy = Policy(history=budget)
            for question in conversation.questions:
                carrier = (
                    conversation.placements[question.fact_keys[0]]
                    if len(question.fact_keys) == 1
                    else "two facts"
                )
                evidence = set(question.evidence_ids)
                fits = mean(unit_tokens[e] <= budget for e in evidence)
                shares[("fits", p)].append(fits)
                session = [*messages, Message(id="question", role="user", content=question.text)]
                for label, strategy, scorer in runs:
                    manager = BudgetManager(
                        MODEL, CONTEXT_LIMIT, policy, tokenizer=tokenizer, scorer=scorer
                    )
                    prepared = manager.prepare(session, task=question.text, strategy=strategy)
                    used = prepared.snapshot.components[Component.HISTORY].used
                    assert used <= budget, f"{label} kept {used} tokens over a budget of {budget}"
                    kept = {m.id for m in prepared.messages}
                    share = len(evidence & kept) / len(evidence)
                    shares[(label, p)].append(share)
                    by_carrier[carrier][(label, p)].append(share)
    return shares, by_carrier


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables and timings; 1 when the default loses anywhere."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 conversations instead of 8")
    parser.add_argument("--turns", type=int, default=60, help="steps per conversation")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    started = time.perf_counter()
    conversations = generate_fleet(3 if args.quick else 8, args.turns, seed=SEED)
    generated = time.perf_counter() - started
    from streams.adapters.embedding import SentenceTransformerEmbedder, StaticEmbedder

    load_started = time.perf_counter()
    shared = SharedEmbeddings(SentenceTransformerEmbedder())
    loaded = time.perf_counter() - load_started
    scorers: dict[str, Scorer] = {
        "baseline": CosineRecencyScorer(shared),
        "default": EvidenceScorer(shared),
        "static": EvidenceScorer(StaticEmbedder()),  # TOKENBUDGET_EMBEDDING_STATIC
    }
    run_started = time.perf_counter()
    shares, by_carrier = evaluate(conversations, scorers)
    ran = time.perf_counter() - run_started

    n_messages = sum(len(c.messages) for c in conversations)
    n_questions = sum(len(c.questions) for c in conversations)
    print(
        f"{len(conversations)} conversations, {n_messages} messages, {n_questions} questions; "
        f"budget = share of each conversation's prunable tokens"
    )
    print("mean share of each question's evidence messages kept:\n")
    labels = [
        "fits",
        "sliding_window",
        "importance+baseline",
        "importance+default",
        "importance+static",
    ]
    header = "  ".join(f"{label:>19}" for label in labels)
    print(f"{'budget (mean tokens)':>20}  {header}  default-baseline")
    ok = True
    for p in BUDGETS:
        row = {label: mean(shares[(label, p)]) for label in labels}
        margin = 100 * (row["importance+default"] - row["importance+baseline"])
        ok &= margin > 0
        cells = "  ".join(f"{row[label]:>19.3f}" for label in labels)
        budget = f"{p:.0%} ({mean(shares[('budget tokens', p)]):,.0f})"
        print(f"{budget:>20}  {cells}  {margin:>+12.1f} pp")
    print("(fits: share of evidence whose unit alone fits the budget, an upper bound)")

    print("\nby where the evidence sits (baseline -> default, per budget):")
    for carrier in sorted(by_carrier):
        cells = [
            f"{mean(by_carrier[carrier][('importance+baseline', p)]):.2f}->"
            f"{mean(by_carrier[carrier][('importance+default', p)]):.2f}"
            for p in BUDGETS
        ]
        count = len(by_carrier[carrier][("importance+default", BUDGETS[0])])
        print(f"  {carrier:<11} n={count:<3} " + "  ".join(cells))

    total = time.perf_counter() - started
    print(
        f"\ntiming: generate {generated:.2f}s, load model {loaded:.1f}s, embed "
        f"{shared.seconds:.1f}s ({shared.cache.misses} texts), prune+score "
        f"{ran - shared.seconds:.1f}s, total {total:.1f}s"
    )
    if not ok:
        print("FAIL: the default scorer does not beat the baseline at every budget")
        return 1
    print("OK: the default scorer beats the baseline at every budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())

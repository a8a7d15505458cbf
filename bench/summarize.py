"""The extractive summarizer on the project's conversation corpus: compression, latency, and how
much planted evidence survives summarizing a segment instead of dropping it.

For each generated conversation (`streams.corpus`, the same fleet as `bench/retention.py`) the
segment is what the worker would ask to summarize: the oldest unprotected units holding half
of the prunable tokens (`choose_segment`), with a target of `summary_ratio` of its tokens. For
every planted fact whose evidence lies entirely in the segment we check whether its answer (a
commit, a time, a number, a name) is still readable afterwards:

- drop: the segment is dropped (what pruning does): nothing survives, by construction;
- keep best messages: the segment's best whole messages by the default importance scorer
  (task = the session's task; the question is unknown), within the summary's token budget;
- extractive summary: the backend's summary, within the same budget.

    .venv/bin/python bench/summarize.py            # 8 conversations, ratios 0.25 and 0.10
    .venv/bin/python bench/summarize.py --quick    # 3 conversations
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from statistics import mean, median

from streams.budget import BudgetManager, EvidenceScorer, Message, Policy
from streams.budget.summarization import choose_segment
from streams.corpus import Conversation, generate_fleet
from streams.summarizer.backend import summary_tokens
from streams.summarizer.extractive import extract, sentences

MODEL = "gpt-4o"
SEED = 11
RATIOS = (0.25, 0.10)


def segment_of(conversation: Conversation, manager: BudgetManager) -> list[Message]:
    """The messages the worker would ask to summarize first."""
    work = manager.working(conversation.messages)
    return [work.messages[i] for unit in choose_segment(work) for i in unit.indices]


def best_messages(
    segment: Sequence[Message], budget: int, task: str, scorer: EvidenceScorer
) -> list[Message]:
    """The highest-scored whole messages of the segment that fit `budget` tokens together."""
    scores = scorer.score(task, segment)
    kept: list[Message] = []
    used = 0
    for _, message in sorted(zip(scores, segment, strict=True), key=lambda p: -p[0]):
        tokens = message.token_count or 0
        if used + tokens <= budget:
            kept.append(message)
            used += tokens
    return kept


def share(part: int, whole: int) -> str:
    """`part / whole` with two decimals, or a dash when there is nothing to share."""
    return f"{part / whole:.2f}" if whole else "-"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 conversations instead of 8")
    parser.add_argument("--turns", type=int, default=60, help="steps per conversation")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from streams.adapters.embedding import default_embedder

    conversations = generate_fleet(3 if args.quick else 8, args.turns, seed=SEED)
    started = time.perf_counter()
    embedder = default_embedder()
    loaded = time.perf_counter() - started
    scorer = EvidenceScorer(embedder)
    manager = BudgetManager(MODEL, 2_000_000, Policy())
    counter = manager.counter
    print(f"{len(conversations)} conversations ({args.turns} steps each), model load {loaded:.1f}s")
    print(
        f"{'ratio':>5} {'segment':>9} {'summary':>8} {'compress':>8} {'p50 s':>6} {'max s':>6} "
        f"{'sent/s':>7} {'facts':>5} {'drop':>5} {'best msgs':>9} {'summary':>7}"
    )
    for ratio in RATIOS:
        sizes, outs, seconds, rates = [], [], [], []
        facts = kept_by_summary = kept_by_messages = 0
        for conversation in conversations:
            segment = segment_of(conversation, manager)
            size = sum(m.token_count or 0 for m in segment)
            target = int(size * ratio)
            t0 = time.perf_counter()
            text = extract(segment, target, counter, embedder)
            elapsed = time.perf_counter() - t0
            tokens = summary_tokens(text, [m.id for m in segment], counter)
            assert tokens <= target, (tokens, target)
            sizes.append(size)
            outs.append(tokens)
            seconds.append(elapsed)
            rates.append(len(sentences(segment)) / elapsed)
            kept = best_messages(segment, target, conversation.task, scorer)
            kept_text = "\n".join(m.text for m in kept).lower()
            ids = {m.id for m in segment}
            for question in conversation.questions:
                if not set(question.evidence_ids) <= ids:
                    continue
                facts += 1
                kept_by_summary += question.answer.lower() in text.lower()
                kept_by_messages += question.answer.lower() in kept_text
        ratio_cells = (
            f"{ratio:>5.2f} {mean(sizes):>9,.0f} {mean(outs):>8,.0f} "
            f"{sum(sizes) / sum(outs):>7.1f}x {median(seconds):>6.2f} {max(seconds):>6.2f} "
            f"{mean(rates):>7.0f}"
        )
        print(
            f"{ratio_cells} {facts:>5} {share(0, facts):>5} "
            f"{share(kept_by_messages, facts):>9} {share(kept_by_summary, facts):>7}"
        )
    print(
        "(segment/summary: mean tokens; facts: questions whose evidence lies in the segment; "
        "drop / best msgs / summary: share of their answers still readable)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

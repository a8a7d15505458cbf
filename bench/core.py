"""Latency of `BudgetManager.prepare` on long sessions, and tiktoken counting throughput.

For sessions of 200, 1,000 and 10,000 messages (generated agent conversations; the 10,000 one
repeats the 1,000 one's texts under new ids), each over its budget by about one turn (the state a
worker sees on every turn once a session is under pressure), it prints median and p99 of:

- `fits`: a session within budget (the common case: count check only);
- `sliding_window` and `importance`/`cascade` with cached counts and cached embeddings;
- `naive`: the same sliding-window prepare, but every message recounted on every call (what a
  library without a count cache does).

Long-lived objects are frozen out of the cyclic garbage collector after setup (`gc.freeze()`,
as the worker does every few thousand turns); without it, full collections over 1,000+ message
sessions add ~200 ms outliers to p99 (medians are unchanged).

Embedding time (the first, uncached pass through the real all-MiniLM-L6-v2) is reported apart,
as is the growth of cost per message from 1,000 to 10,000 messages (n log n would be ≈ 1.33×).

Run: `.venv/bin/python bench/core.py [--quick]`
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

from streams.adapters.embedding import default_embedder
from streams.adapters.tokenizers import tiktoken_tokenizer
from streams.budget import BudgetManager, EvidenceScorer, Message, Policy, ToolCallPart
from streams.corpus import generate_conversation


def relabel(m: Message, prefix: str) -> Message:
    """A copy of `m` whose message and tool-call ids carry `prefix` (same text, same pairing)."""
    content = m.content
    if not isinstance(content, str):
        content = tuple(
            ToolCallPart(f"{prefix}{p.id}", p.name, p.arguments)
            if isinstance(p, ToolCallPart)
            else p
            for p in content
        )
    return Message(
        id=f"{prefix}{m.id}",
        role=m.role,
        content=content,
        component=m.component,
        pinned=m.pinned,
        tool_call_id=f"{prefix}{m.tool_call_id}" if m.tool_call_id else None,
    )


def session(n: int) -> list[Message]:
    """A session of `n` messages from generated conversations; past 1,000 the texts repeat."""
    base: list[Message] = []
    seed = 0
    while len(base) < min(n, 1000):
        conversation = generate_conversation(seed=seed, turns=60)
        base += [relabel(m, f"s{seed}:") for m in conversation.messages if m.role != "system"]
        seed += 1
    out = [Message(id="sys", role="system", content="You are a careful agent.")]
    copy = 0
    while len(out) < n:
        out += [relabel(m, f"c{copy}:") for m in base]
        copy += 1
    return out[:n]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p99 wall time of `fn` in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def manager_for(messages: list[Message], over: float, scorer: EvidenceScorer) -> BudgetManager:
    """A manager whose budgets the session exceeds by `over` (0 → it fits)."""
    probe = BudgetManager("gpt-4o", 10_000_000, scorer=scorer)
    usage = probe.snapshot(messages).components
    shares = {c.value: int(usage[c].used / (1 + over)) if c.prunable else 0.0 for c in usage} | {
        "system_prompt": 0.05,
        "pinned": 0.2,
    }
    total = sum(v for v in shares.values() if isinstance(v, int))
    limit = int(total / 0.70)
    return BudgetManager("gpt-4o", limit, Policy.from_mapping(shares), scorer=scorer)


def main() -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-message session")
    args = parser.parse_args()
    sizes = [200, 1000] if args.quick else [200, 1000, 10_000]

    scorer = EvidenceScorer(default_embedder())
    print(f"{'messages':>8} {'case':<16} {'median ms':>10} {'p99 ms':>9}")
    per_message: dict[int, float] = {}
    for n in sizes:
        messages = session(n)
        repeat = 200 if n <= 1000 else 30
        fits = manager_for(messages, 0.0, scorer)
        tight = manager_for(messages, 0.02, scorer)
        start = time.perf_counter()
        misses = scorer.cache.misses
        tight.prepare(messages, task="which port does staging use", strategy="importance")
        embed_s = time.perf_counter() - start
        embedded = scorer.cache.misses - misses
        # Long-lived session state is moved out of the cyclic collector, as the worker does
        # periodically; otherwise a full collection over it shows up as a ~200 ms p99 outlier.
        gc.collect()
        gc.freeze()
        rows = {
            "fits": lambda m=fits, ms=messages: m.prepare(ms, task="x"),
            "sliding_window": lambda m=tight, ms=messages: m.prepare(ms, strategy="sliding_window"),
            "importance": lambda m=tight, ms=messages: m.prepare(
                ms, task="which port does staging use", strategy="importance"
            ),
            "cascade": lambda m=tight, ms=messages: m.prepare(
                ms, task="which port does staging use"
            ),
            "naive recount": lambda m=tight, ms=messages: m.prepare(
                [relabel(x, "") for x in ms],
                strategy="sliding_window",
            ),
        }
        for case, fn in rows.items():
            median, p99 = timed(fn, repeat)
            print(f"{n:>8} {case:<16} {median:>10.3f} {p99:>9.3f}")
            if case == "importance":
                per_message[n] = median / n
        print(
            f"{n:>8} {'first embedding':<16} {embed_s * 1000:>10.0f} ms for {embedded} "
            f"new passages ({embedded / max(embed_s, 1e-9):.0f} passages/s, reported apart)"
        )
    if 10_000 in per_message:
        growth = per_message[10_000] / per_message[1000]
        print(
            f"importance cost per message, 10,000 vs 1,000 messages: ×{growth:.2f} "
            f"(linear = 1.00, n log n ≈ 1.33)"
        )

    text = " ".join(m.text for m in session(1000))
    for encoding in ("o200k_base", "cl100k_base"):
        tok = tiktoken_tokenizer(encoding)
        start = time.perf_counter()
        tokens = sum(tok.count(text) for _ in range(5))
        elapsed = time.perf_counter() - start
        print(
            f"tiktoken {encoding}: {tokens / elapsed / 1e6:.2f} M tokens/s "
            f"({len(text) * 5 / elapsed / 1e6:.1f} M chars/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`: one long generated agent session, managed turn by turn by the in-process core.

The simulated agent appends every turn to its history and, before each LLM call, asks the budget
manager for the context-safe view, which becomes its history. At the end a report compares it
with the same session without budget management (how many LLM calls would have overflowed).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from streams.budget import ActionKind, BudgetManager, Message, Policy
from streams.corpus import generate_conversation
from streams.report import bar, snapshot_table


def run_demo(args: argparse.Namespace) -> int:
    """Run the in-process demo and print the budget report; returns the exit code."""
    out = sys.stdout
    conversation = generate_conversation(seed=args.seed, turns=args.turns, kind="coding")
    messages = conversation.messages
    changes = {c.index: c.task for c in conversation.task_changes}
    print(
        f"Session: {len(messages)} messages of a generated coding-agent run, model "
        f"{args.model}, context limit {args.context_limit:,} tokens.",
        file=out,
    )
    print("Loading the local embedding model for importance scoring …", file=out, flush=True)
    started = time.perf_counter()
    manager = BudgetManager(args.model, args.context_limit, Policy())
    _ = manager.scorer  # load now, so the per-call timings below are the budget work alone

    live = out.isatty()
    task = conversation.task
    history: list[Message] = []
    unmanaged = 0
    overflows = 0
    managed_overflows = 0
    calls = 0
    peak = 0.0
    rules: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    planned_summaries = 0
    busiest = 0.0
    last = None
    for index, message in enumerate(messages):
        task = changes.get(index, task)
        history.append(message)
        unmanaged += manager.count(message)
        next_is_reply = index + 1 < len(messages) and messages[index + 1].role == "assistant"
        if not next_is_reply:
            continue
        calls += 1
        if unmanaged + manager.counter.chat_format.reply_priming > manager.context_limit:
            overflows += 1
        tick = time.perf_counter()
        prepared = manager.prepare(history, task=task)
        busiest = max(busiest, time.perf_counter() - tick)
        history = prepared.messages
        managed_overflows += prepared.snapshot.used > manager.context_limit
        peak = max(peak, prepared.before.utilization)
        for action in prepared.actions:
            kinds[action.kind.value] += 1
            rules[action.rule.value] += 1
            planned_summaries += action.kind is ActionKind.SUMMARIZE
        last = prepared
        utilization = prepared.snapshot.utilization
        line = (
            f"  call {calls:>3}  turn {index + 1:>4}/{len(messages)}  "
            f"{bar(utilization, 30)} {utilization:>4.0%} {prepared.snapshot.level.value:<8}"
        )
        if live:
            print("\r" + line, end="", file=out, flush=True)
        elif calls % 10 == 1 or prepared.actions:
            print(line + "  " + ", ".join(a.rule.value for a in prepared.actions), file=out)
    if live:
        print(file=out)
    if last is None:
        print("The session made no LLM call.", file=out)
        return 0

    print("\n" + snapshot_table(last.snapshot, "Budget at the last LLM call:"), file=out)
    print("\nActions taken over the session, by rule:", file=out)
    for rule, count in rules.most_common():
        print(f"  {rule:<28}{count:>5}", file=out)
    print(f"  (by kind: {', '.join(f'{k} {v}' for k, v in kinds.most_common())})", file=out)
    print(
        f"\nLLM calls: {calls}; peak utilization before pruning {peak:.0%}; slowest prepare "
        f"{busiest * 1000:.1f} ms (it embeds new messages); summaries requested "
        f"{planned_summaries}.",
        file=out,
    )
    print(
        f"Without budget management the history grows to {unmanaged:,} tokens and "
        f"{overflows} of {calls} LLM calls would have exceeded the {args.context_limit:,}-token "
        f"context limit; with it, {managed_overflows} did.",
        file=out,
    )
    print(f"Done in {time.perf_counter() - started:.1f} s.", file=out)
    return 1 if managed_overflows else 0

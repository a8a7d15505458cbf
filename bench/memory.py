"""Resident memory per session in the turn processor, and how idle eviction bounds it.

Runs the pure `TurnProcessor` over dict tables (what the worker's memory:// store holds), so the
figure is the worker's own state: live sessions, their counted messages and ledgers, and the
table rows. Each session is a start (a system prompt) and three turns (a ~40-word user message,
an assistant tool call, its ~40-word result), all of one model and policy, as in a fleet.

- `plain`: N sessions, no eviction: RSS growth / N is the memory of one idle session;
- `evicting`: N sessions arriving one per simulated second with an idle timeout of an hour,
  swept every simulated minute (the worker's timer, the processor's injected clock): the live
  sessions stay near timeout × arrival rate, and so does memory.

Each scenario runs in its own process, so one does not inherit the other's heap.
Run: `.venv/bin/python bench/memory.py [--sessions 100000]`
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path

from streams.budget import LexicalScorer, Message, Policy, ToolCallPart
from streams.codecs import SessionStart, TurnEvent, TurnEventType
from streams.processors.limits import Limits
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor

IDLE_TIMEOUT = 3600.0
SWEEP_EVERY = 60.0
WORDS = [
    "the",
    "build",
    "failed",
    "on",
    "the",
    "payments",
    "service",
    "after",
    "the",
    "schema",
    "migration",
    "ran",
    "twice",
]


def rss_bytes() -> int:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Clock:
    """Simulated time."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def session_events(n: int) -> list[TurnEvent]:
    """A start and three turns of session number `n` (text varies with n, like a real fleet)."""
    sid = f"agent-{n:07d}"
    text = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(40))
    start = SessionStart("gpt-4o", 128_000, Policy(), "You are a careful coding agent.")
    call = ToolCallPart(f"call-{n}", "search", json.dumps({"q": f"failure {n}"}))
    messages = [
        Message(id=f"{sid}/u1", role="user", content=f"Why did run {n} fail? {text}"),
        Message(id=f"{sid}/a1", role="assistant", content=(call,)),
        Message(id=f"{sid}/t1", role="tool", tool_call_id=f"call-{n}", content=f"{n}: {text}"),
    ]
    events = [TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=start)]
    events += [
        TurnEvent(f"{sid}/{i}", sid, i, TurnEventType.TURN, 0.0, message=m)
        for i, m in enumerate(messages, 1)
    ]
    return events


def scenario(mode: str, sessions: int) -> dict[str, float]:
    """Run one scenario in this process; its figures."""
    clock = Clock()
    timeout = IDLE_TIMEOUT if mode == "evicting" else 0.0
    store = SessionStore({}, LexicalScorer())
    processor = TurnProcessor(store, clock=clock, limits=Limits(session_idle_timeout=timeout))
    for n in range(50):  # load the tokenizer, build the shared manager
        for event in session_events(10**6 + n):
            processor.handle(event, Outputs())
    for sid in list(store.live):
        store.end(sid)
    gc.collect()
    base = rss_bytes()
    peak_live = evicted = 0
    next_sweep = clock.now + SWEEP_EVERY
    for n in range(sessions):
        clock.now += 1.0  # one new session per simulated second
        for event in session_events(n):
            processor.handle(event, Outputs())
        if timeout and clock.now >= next_sweep:
            next_sweep += SWEEP_EVERY
            for sid in processor.idle_sessions():
                evicted += processor.evict(sid, Outputs())
        peak_live = max(peak_live, len(store.live))
    gc.collect()
    grown = rss_bytes() - base
    live = len(store.live)
    return {
        "sessions": sessions,
        "live": live,
        "peak_live": peak_live,
        "evicted": evicted,
        "table_rows": len(store.table),
        "rss_growth": grown,
        "per_live_session": grown / max(live, 1),
        "per_created_session": grown / sessions,
    }


def main() -> None:
    """Run both scenarios, each in a fresh process, and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--scenario", choices=["plain", "evicting"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario(args.scenario, args.sessions)))
        return
    print(f"{args.sessions:,} sessions of a start and 3 turns, TurnProcessor over dict tables")
    for mode in ("plain", "evicting"):
        argv = [sys.executable, __file__, "--scenario", mode, "--sessions", str(args.sessions)]
        result = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
        label = "no eviction" if mode == "plain" else f"idle timeout {IDLE_TIMEOUT:g} s"
        print(
            f"  {label:<20} live {result['live']:>7,} (peak {result['peak_live']:,}), "
            f"table rows {result['table_rows']:>7,}, RSS +{result['rss_growth'] / 2**20:7.1f} MiB"
            f" = {result['per_live_session']:,.0f} B per live session, "
            f"{result['per_created_session']:,.0f} B per session created"
        )


if __name__ == "__main__":
    main()

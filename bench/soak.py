"""Crash-recovery soak: an agent fleet on the client SDK while the worker and the summarizer are
killed with SIGKILL at seeded random points and restarted.

Subprocesses, as in production: the embedded broker (Tansu), one `tokenbudget worker` with
importance scoring off (`--no-scoring`, the lexical scorer: the worker's CPU goes to the ledger
and the cascade, not to an embedding model) and one `tokenbudget summarizer` (extractive
backend). Every agent is a `BudgetClient` session in lockstep: publish a turn, ask for the
context, and only then the next turn (a report of the provider's usage after each assistant
turn). While the worker is down (or slow), `context()` times out after 5 s and falls back to
the local cascade; the agents keep publishing. A fallback never changes the client's applied
history (the local cut is only the context of that call), so the comparisons below hold.

Kill points are progress points (turns published fleet-wide), drawn from the seed; a killed
process is restarted once the fleet has moved on (a number of fallbacks for the worker, of turns
for the summarizer), so no kill depends on a wall-clock sleep.

At the end the soak waits until the worker and the summarizer have committed all their inputs
(summaries asked for late are still being written) and every client holds the last snapshot on
`budget.events`, then checks, per session:

1. in step: `context()` answers with `fallback=False`;
2. exact: the worker's latest snapshot (highest seq on `budget.events`) equals the client's
   ledger (`ledger_matches`) and a from-scratch recount of the client's history with a fresh
   `BudgetManager` on uncounted copies;
3. nothing missing: the snapshot's seq is the last seq published, and every published message is
   in the client's history or was removed by a command the client applied;
4. same as without crashes, for every session: the client's history equals that of the
   session's log on `agent.turns` (its turns, redeliveries, resends and the summary answers the
   worker forwarded there, in their order) replayed once through the worker's own
   `TurnProcessor` in-process, without a crash. The log is the worker's whole input for the
   session, so this says the crashes changed nothing. Sessions without summaries (strategies
   `sliding_window` and `importance`; 3 of 4 sessions) must also end with exactly the history of
   a crash-free run of the same fleet (a second stack, same seed). `cascade` sessions (1 of 4,
   they keep the summarizer busy) cannot: where a summary lands among a session's turns
   depends on the summarizer's timing, in a crash-free run too. A session's decisions depend
   only on its own log (one partition), so the other sessions' timing does not matter;
5. each command applied once: the commands the clients applied equal the distinct command ids
   on `budget.commands`; the rest of that topic's records are duplicates (at-least-once
   redelivery after a crash) that the clients received and ignored.

The figures are always printed; failing sessions are listed with what differed (each one's
turns, commands and snapshots go to `soak-failures.txt` next to the process logs) and the exit
status is 1.

What it found, fixed since: (1) a restarted worker could interleave a summary answer
(`history.compressed`) and a redone turn (`agent.turns`) differently from the first time and
contradict commands the agent had applied; answers now reach the worker through the session's
own partition of `agent.turns`, one ordered input. (2) Faust 0.15.3 committed input offsets
before the table writes of those turns were on the broker (its flush before a commit gives up
after 100 ms), so a worker killed then restarted a few turns short and never read them again:
196 of 200 sessions after a third kill, once holes in seqs were held instead of accepted. The
worker's flush now waits for every write (docs/FAUST_ON_TANSU.md).

Run: `.venv/bin/python bench/soak.py` (200 sessions × 50 turns, 3 + 3 kills; `--quick` for
40 × 25; `--baseline replay` skips the crash-free stack run). The processes and the topic
audit are in `bench/soak_stack.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streams.broker import EmbeddedBroker
from streams.budget import ActionKind, LexicalScorer, Message, Snapshot
from streams.client import BudgetClient, Mirror
from streams.client.mirror import ledger_matches
from streams.codecs import CompressedHistory, TurnEvent
from streams.codecs.messages import message_to_record
from streams.corpus import generate_fleet
from streams.processors.state import SessionStore
from streams.processors.turns import Outputs, TurnProcessor

try:  # imported as `bench.soak` (the test suite) or run as a script (bench/ is on sys.path)
    from bench.soak_stack import Audit, Process, SoakError, Stack, audit, quiescent
except ModuleNotFoundError:
    from soak_stack import Audit, Process, SoakError, Stack, audit, quiescent  # type: ignore

MODEL = "gpt-4o"
LIMITS = (3_000, 4_000, 6_000)
STRATEGIES = ("cascade", "sliding_window", "importance", "sliding_window")
REMOVING = (ActionKind.DROP, ActionKind.SUMMARIZE, ActionKind.RESET)


@dataclass(frozen=True)
class SoakConfig:
    """Sizes and fault schedule of one soak."""

    sessions: int = 200
    turns: int = 50
    worker_kills: int = 3
    summarizer_kills: int = 3
    seed: int = 7
    clients: int = 4
    partitions: int = 4
    context_timeout: float = 5.0  # then the agent goes on with the local cascade's context
    settle_timeout: float = 180.0
    ready_timeout: float = 120.0


# -- the fleet ---------------------------------------------------------------------------------


@dataclass
class AgentPlan:
    """One session: its settings and the turns its agent publishes, in order."""

    session_id: str
    strategy: str
    limit: int
    system_prompt: str
    task: str
    turns: list[Message]

    @property
    def compared(self) -> bool:
        """Deterministic without summaries: compared with the crash-free run."""
        return self.strategy in ("sliding_window", "importance")


def build_plans(config: SoakConfig, tag: str) -> list[AgentPlan]:
    """The fleet: generated research and coding sessions, `config.turns` turns each."""
    plans = []
    steps = max(12, config.turns // 2 + 5)
    for n, conversation in enumerate(generate_fleet(config.sessions, steps, config.seed)):
        turns = [m for m in conversation.messages if m.role != "system"][: config.turns]
        if len(turns) < config.turns:
            raise ValueError(f"session {n} has only {len(turns)} turns; ask for fewer")
        plans.append(
            AgentPlan(
                f"{tag}agent-{n:04d}",
                STRATEGIES[n % len(STRATEGIES)],
                LIMITS[n % len(LIMITS)],
                conversation.messages[0].text,
                conversation.task,
                turns,
            )
        )
    return plans


@dataclass
class Tally:
    """What the agents did and saw."""

    published: int = 0
    contexts: int = 0
    fallbacks: int = 0
    applied: Counter[str] = field(default_factory=Counter)  # session → commands applied
    removed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    done: int = 0


async def run_agent(
    client: BudgetClient, plan: AgentPlan, tally: Tally, config: SoakConfig
) -> None:
    """Lockstep: publish a turn, then wait for the context (or fall back) before the next."""
    sid = plan.session_id
    await client.start_session(
        sid,
        model=MODEL,
        context_limit=plan.limit,
        system_prompt=plan.system_prompt,
        task=plan.task,
        strategy=plan.strategy,
    )
    for message in plan.turns:
        await client.publish_turn(sid, message.uncounted())
        tally.published += 1
        context = await client.context(sid, timeout=config.context_timeout)
        tally.contexts += 1
        tally.fallbacks += context.fallback
        if message.role == "assistant":
            await client.report_usage(sid, prompt_tokens=context.tokens, completion_tokens=30)
    tally.done += 1


async def watch_commands(client: BudgetClient, tally: Tally) -> None:
    """Count the commands each client applied (the SDK yields each command id once)."""
    async for command in client.commands():
        tally.applied[command.session_id] += 1
        if command.action.kind in REMOVING:
            tally.removed[command.session_id].update(command.action.message_ids)


# -- faults ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """A SIGKILL of one process once the fleet has published `at` turns."""

    at: int
    target: str
    killed_at: float = 0.0
    down_s: float = 0.0


def schedule(config: SoakConfig) -> list[Fault]:
    """Seeded kill points between 10% and 80% of the fleet's turns."""
    rng = random.Random(config.seed)
    total = config.sessions * config.turns
    faults = [
        Fault(int(rng.uniform(0.1, 0.8) * total), target)
        for target, n in (("worker", config.worker_kills), ("summarizer", config.summarizer_kills))
        for _ in range(n)
    ]
    return sorted(faults, key=lambda f: f.at)


async def chaos(stack: Stack, faults: list[Fault], tally: Tally, config: SoakConfig) -> None:
    """Kill at each point (once the target is ready again), restart once the fleet moved on."""
    readiness: dict[str, asyncio.Task[None]] = {}
    for fault in faults:
        process = stack.worker if fault.target == "worker" else stack.summarizer
        while tally.published < fault.at:
            await asyncio.sleep(0.05)
        if fault.target in readiness:
            await readiness[fault.target]  # back from the previous kill
        await process.wait_ready(config.ready_timeout)
        process.kill()
        fault.killed_at = time.monotonic()
        if fault.target == "worker":  # down until half the agents fell back
            counter, wanted = (lambda: tally.fallbacks), max(1, config.sessions // 2)
        else:  # down while the fleet moves on (summaries asked for meanwhile wait)
            counter, wanted = (lambda: tally.published), 2 * config.sessions
        start = counter()
        while counter() - start < wanted and tally.done < config.sessions:
            await asyncio.sleep(0.05)
        process.start()
        readiness[fault.target] = asyncio.create_task(_back(process, fault, config.ready_timeout))
    await asyncio.gather(*readiness.values())
    await asyncio.gather(
        *(p.wait_ready(config.ready_timeout) for p in (stack.worker, stack.summarizer) if p.starts)
    )


async def _back(process: Process, fault: Fault, timeout: float) -> None:
    """Record how long the process was gone: from the kill until it is ready again."""
    await process.wait_ready(timeout)
    fault.down_s = time.monotonic() - fault.killed_at


# -- one run -----------------------------------------------------------------------------------


History = tuple[str, ...]


def history_of(messages: Sequence[Message], session_id: str) -> History:
    """A history as comparable data: each message's wire record, in order, with the session id
    (which differs between runs: a topic prefix) left out of message ids."""
    return tuple(
        json.dumps(message_to_record(m), sort_keys=True).replace(session_id, "<session>")
        for m in messages
    )


@dataclass
class RunResult:
    """What one run left behind."""

    plans: list[AgentPlan]
    mirrors: dict[str, Mirror]
    tally: Tally
    audit: Audit
    faults: list[Fault]
    stack: Stack
    elapsed: float
    settle: float

    @property
    def histories(self) -> dict[str, History]:
        """Each session's applied history, as comparable data."""
        return {
            sid: history_of(list(m.session.messages.values()), m.session_id)
            for sid, m in self.mirrors.items()
        }


async def drive(stack: Stack, plans: list[AgentPlan], config: SoakConfig, crash: bool) -> RunResult:
    """Run the fleet on `stack` (killing its processes when `crash`), then settle and audit."""
    tally = Tally()
    faults = schedule(config) if crash else []
    started = time.monotonic()
    clients = [
        BudgetClient(
            stack.bootstrap, topic_prefix=stack.topics.prefix, partitions=config.partitions
        )
        for _ in range(config.clients)
    ]
    async with contextlib.AsyncExitStack() as exits:
        for client in clients:
            await exits.enter_async_context(client)
        watchers = [asyncio.create_task(watch_commands(c, tally)) for c in clients]
        chaos_task = asyncio.create_task(chaos(stack, faults, tally, config))
        try:
            await asyncio.gather(
                *(
                    run_agent(clients[n % len(clients)], plan, tally, config)
                    for n, plan in enumerate(plans)
                )
            )
            await chaos_task
            settled = time.monotonic()
            mirrors = {p.session_id: clients[n % len(clients)].sessions[p.session_id]
                       for n, p in enumerate(plans)}  # fmt: skip
            # Summaries asked for late are still on their way: wait until every process has
            # consumed its inputs, then until every client holds the last snapshot on the topic.
            await quiescent(stack, config.settle_timeout)
            found = await audit(stack.bootstrap, stack.topics, set(mirrors))
            await caught_up(mirrors, found, config.settle_timeout)
            for n, plan in enumerate(plans):  # every session in step with the worker again
                context = await clients[n % len(clients)].context(plan.session_id, timeout=10)
                if context.fallback:
                    raise SoakError(f"{plan.session_id} not in step after the run")
            settle = time.monotonic() - settled
        finally:
            chaos_task.cancel()
            for watcher in watchers:
                watcher.cancel()
        elapsed = time.monotonic() - started
    return RunResult(plans, mirrors, tally, found, faults, stack, elapsed, settle)


async def caught_up(mirrors: dict[str, Mirror], found: Audit, timeout: float) -> None:
    """Wait until every client holds its session's last snapshot and has applied its commands."""
    deadline = time.monotonic() + timeout
    while True:
        behind = [
            sid
            for sid, mirror in mirrors.items()
            if mirror.worker != found.latest(sid) or not mirror.in_step()
        ]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise SoakError(f"{len(behind)} clients not caught up, e.g. {behind[:5]}")
        await asyncio.sleep(0.1)


# -- checks ------------------------------------------------------------------------------------


def replay(events: Sequence[TurnEvent]) -> list[Message]:
    """A session's turns through the worker's own processor, in-process, without crashes."""
    store = SessionStore({}, LexicalScorer())
    processor = TurnProcessor(store)
    for event in events:
        processor.handle(event, Outputs())
    live = store.live[events[0].session_id]
    return list(live.session.messages.values())


def replay_log(records: Sequence[TurnEvent | CompressedHistory]) -> list[Message] | None:
    """A session's log on `agent.turns` (turns, redeliveries, resends and forwarded summary
    answers, in their order) through the worker's own processor once, without crashes; None
    when the log leaves no live session (its start missing from what was read, say)."""
    store = SessionStore({}, LexicalScorer())
    processor = TurnProcessor(store)
    for record in records:
        if isinstance(record, CompressedHistory):
            processor.handle_summary(record, Outputs())
        else:
            processor.handle(record, Outputs())
    live = store.live.get(records[0].session_id) if records else None
    return None if live is None else list(live.session.messages.values())


def recount(mirror: Mirror) -> Snapshot:
    """The client's history counted from scratch by a fresh manager, on uncounted copies."""
    manager = mirror.start.manager(LexicalScorer())
    return manager.snapshot([m.uncounted() for m in mirror.session.messages.values()])


def check(result: RunResult, baseline: RunResult | None) -> dict[str, list[str]]:
    """Every check of the module docstring: the failing sessions and what failed (each one's
    turns, commands and snapshots are written next to the logs)."""
    base = baseline.histories if baseline is not None else None
    failures: dict[str, list[str]] = {}
    for plan in result.plans:
        found = problems(plan, result, base)
        if found:
            failures[plan.session_id] = found
    if failures:
        path = result.stack.worker.log_path.parent / "soak-failures.txt"
        path.write_text("\n\n".join(diagnose(result, sid, f) for sid, f in failures.items()))
    return failures


def problems(plan: AgentPlan, result: RunResult, base: dict[str, History] | None) -> list[str]:
    """What is wrong with one session after the run (nothing, if all is well)."""
    sid, found, tally = plan.session_id, result.audit, result.tally
    mirror = result.mirrors[sid]
    if not found.snapshots.get(sid):
        return ["no snapshot on budget.events"]
    out = []
    latest = found.latest(sid)
    if latest.seq != mirror.seq or mirror.worker is None or mirror.worker.seq != mirror.seq:
        out.append(f"published up to seq {mirror.seq}, worker at {latest.seq}")
    if not ledger_matches(mirror, latest.snapshot):
        out.append(
            f"ledger: client {mirror.session.snapshot().used} tokens in "
            f"{len(mirror.session.messages)} messages, worker {latest.snapshot.used} in "
            f"{latest.snapshot.message_count}"
        )
    elif recount(mirror) != latest.snapshot:
        out.append("the recount differs from the worker's last snapshot")
    seqs = sorted({e.seq for e in found.turns(sid)})
    if seqs != list(range(mirror.seq + 1)):
        out.append(f"turn seqs on agent.turns are not 0..{mirror.seq}")
    lost = {m.id for m in plan.turns} - set(mirror.session.messages) - tally.removed[sid]
    if lost:
        out.append(f"messages neither kept nor removed by a command: {sorted(lost)}")
    distinct = {c.command_id for c in found.commands.get(sid, ())}
    if tally.applied[sid] != len(distinct):
        out.append(f"applied {tally.applied[sid]} commands, {len(distinct)} on the topic")
    mine = history_of(list(mirror.session.messages.values()), sid)
    log = found.inputs.get(sid, [])
    replayed = replay_log(log)
    if replayed is None:
        first = f"{type(log[0]).__name__} seq {getattr(log[0], 'seq', '-')}" if log else "none"
        out.append(f"its agent.turns log ({len(log)} records, first: {first}) starts no session")
    elif mine != history_of(replayed, sid):
        out.append("history differs from a crash-free replay of its agent.turns log")
    if plan.compared:
        events = sorted({e.seq: e for e in found.turns(sid)}.values(), key=lambda e: e.seq)
        if mine != history_of(replay(events), sid):
            out.append("history differs from the in-process replay")
        other = None if base is None else base.get(sid.replace(result.stack.topics.prefix, "", 1))
        if other is not None and mine != other:  # None: it failed in the crash-free run
            out.append("history differs from the crash-free run")
    return out


def diagnose(result: RunResult, sid: str, found: list[str]) -> str:
    """One failing session as text: what it published, what came back, what it holds."""
    mirror, audit_ = result.mirrors[sid], result.audit
    lines = [f"== {sid}", *found, "-- turns"]
    lines += [
        f"  {e.seq} {e.type.value} {e.message.id if e.message else ''}" for e in audit_.turns(sid)
    ]
    lines.append("-- commands (in topic order; * = applied by the client)")
    for c in audit_.commands.get(sid, ()):
        a = c.action
        lines.append(
            f"  {'*' if c.command_id in mirror.applied else ' '} {c.command_id} seq {c.seq} "
            f"{a.kind.value}/{a.rule.value} {list(a.message_ids)} {a.tokens_before}->"
            f"{a.tokens_after}{' +replacement' if a.replacement else ''}"
        )
    lines.append("-- snapshots (in topic order)")
    lines += [
        f"  seq {s.seq} used {s.snapshot.used} messages {s.snapshot.message_count} "
        f"commands {list(s.command_ids)}"
        for s in audit_.snapshots.get(sid, ())
    ]
    lines.append(f"-- client history: {list(mirror.session.messages)}")
    return "\n".join(lines)


# -- the whole soak ----------------------------------------------------------------------------


@dataclass
class SoakReport:
    """The figures the soak prints."""

    config: SoakConfig
    result: RunResult
    baseline: RunResult | None
    failures: dict[str, list[str]]
    baseline_failures: dict[str, list[str]] = field(default_factory=dict)

    def failed(self, *, summaries: bool) -> list[str]:
        """The failing sessions with (True) or without (False) summaries."""
        compared = {p.session_id for p in self.result.plans if p.compared}
        return [sid for sid in self.failures if (sid not in compared) is summaries]

    def lines(self) -> list[str]:
        """The printed figures."""
        r, t = self.result, self.result.tally
        worker_kills = sum(f.target == "worker" for f in r.faults)
        summarizer_kills = len(r.faults) - worker_kills
        summaries = sum(
            1
            for cs in r.audit.commands.values()
            for c in {x.command_id: x for x in cs}.values()
            if c.action.kind is ActionKind.SUMMARIZE and c.action.replacement is not None
        )
        distinct = sum(len({c.command_id for c in cs}) for cs in r.audit.commands.values())
        downs = ", ".join(f"{f.target} {f.down_s:.0f}s at turn {f.at}" for f in r.faults) or "none"
        out = [
            f"turns                {t.published:,} ({len(r.plans)} sessions × {self.config.turns})",
            f"sessions             {len(r.plans)} ({sum(p.compared for p in r.plans)} without "
            "summaries)",
            f"kills (SIGKILL)      worker {worker_kills}, summarizer {summarizer_kills}",
            f"restarts             worker {r.stack.worker.starts - 1}, summarizer "
            f"{r.stack.summarizer.starts - 1}",
            f"down (kill → ready) {downs}",
            f"contexts             {t.contexts:,}, of which fallbacks {t.fallbacks:,}"
            + (f" (crash-free run: {self.baseline.tally.fallbacks:,})" if self.baseline else ""),
            f"commands             {distinct:,} distinct applied once each; duplicates arrived "
            f"and ignored: {r.audit.duplicate_commands():,}",
            f"summaries applied    {summaries:,}",
            f"snapshots            duplicates {r.audit.duplicate_snapshots():,}, seqs without "
            f"one {r.audit.missing_snapshots():,}",
            f"settle after run     {r.settle:.1f} s until every session was in step",
            f"time                 {r.elapsed:.1f} s with crashes"
            + (f", {self.baseline.elapsed:.1f} s crash-free" if self.baseline else ""),
        ]
        plans = r.plans
        without = [p for p in plans if p.compared]
        out += [
            f"checked              {len(plans)} sessions: in step, exact ledger and recount, "
            f"nothing missing, commands once, the history of a crash-free replay of its "
            f"agent.turns log; failed {len(self.failures)}",
            f"                     {len(without)} without summaries also against the replay"
            + (" and the crash-free run" if self.baseline else "")
            + f"; failed {len(self.failed(summaries=False))}",
        ]
        if self.baseline is not None:
            out.append(
                f"crash-free run       {len(self.baseline_failures)} sessions failed its own "
                "checks (left out of the comparison)"
            )
            out += [f"  {sid}: {'; '.join(f)}" for sid, f in self.baseline_failures.items()]
        if self.failures:
            path = r.stack.worker.log_path.parent / "soak-failures.txt"
            out.append(f"FAILED               {len(self.failures)} sessions (details in {path}):")
            out += [f"  {sid}: {'; '.join(f)}" for sid, f in list(self.failures.items())[:20]]
        return out


async def soak(
    bootstrap: str, workdir: Path, config: SoakConfig, tag: str, baseline: bool = True
) -> SoakReport:
    """The crash-free run (when `baseline`), then the run with crashes; checked."""
    plans = build_plans(config, "")
    clean: RunResult | None = None
    clean_failures: dict[str, list[str]] = {}
    if baseline:
        stack = Stack.create(bootstrap, f"{tag}clean.", workdir / "clean", config.partitions)
        try:
            # the compared sessions ask for no summaries: the crash-free run needs no summarizer
            await stack.start(config.ready_timeout, summarizer=False)
            clean = await drive(stack, _prefixed(plans, stack), config, crash=False)
        finally:
            stack.stop()
        clean_failures = check(clean, None)  # the reference must pass its own checks
        clean.mirrors = {
            sid.replace(stack.topics.prefix, "", 1): m
            for sid, m in clean.mirrors.items()
            if sid not in clean_failures
        }
    stack = Stack.create(bootstrap, f"{tag}crash.", workdir / "crash", config.partitions)
    try:
        await stack.start(config.ready_timeout)
        result = await drive(stack, _prefixed(plans, stack), config, crash=True)
    finally:
        stack.stop()
    return SoakReport(config, result, clean, check(result, clean), clean_failures)


def _prefixed(plans: list[AgentPlan], stack: Stack) -> list[AgentPlan]:
    """The same plans with session ids under the stack's prefix (distinct per run)."""
    return [
        AgentPlan(
            stack.topics.prefix + p.session_id,
            p.strategy,
            p.limit,
            p.system_prompt,
            p.task,
            p.turns,
        )
        for p in plans
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak on a fresh embedded broker and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 sessions × 25 turns, 2 + 1 kills")
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--turns", type=int)
    parser.add_argument("--worker-kills", type=int)
    parser.add_argument("--summarizer-kills", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", choices=("stack", "replay"), default="stack")
    args = parser.parse_args(argv)
    sizes: dict[str, int] = {"seed": args.seed}
    if args.quick:
        sizes |= {"sessions": 40, "turns": 25, "worker_kills": 2, "summarizer_kills": 1}
    for name in ("sessions", "turns", "worker_kills", "summarizer_kills"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    config = SoakConfig(**sizes)
    workdir = Path(tempfile.mkdtemp(prefix="tokenbudget-soak-"))
    print(
        f"Soak: {config.sessions} sessions × {config.turns} turns, worker scoring off, "
        f"{config.worker_kills} worker and {config.summarizer_kills} summarizer SIGKILLs "
        f"(seed {config.seed}); logs in {workdir}",
        flush=True,
    )
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        report = asyncio.run(
            soak(broker.bootstrap, workdir, config, "soak.", args.baseline == "stack")
        )
    for line in report.lines():
        print(line)
    return 1 if report.failures or report.baseline_failures else 0


if __name__ == "__main__":
    sys.exit(main())

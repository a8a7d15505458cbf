"""`make demo`: an agent fleet on the client SDK, through the embedded broker, a budget worker
and the summarizer.

Starts Tansu on a free loopback port, one `tokenbudget worker` and one `tokenbudget summarizer`
process, then runs one simulated agent per generated research or coding session, all at once.
Each agent works like a real one on the public SDK (`BudgetClient`): before each LLM call it
asks for the context, "calls the model" (a short pause), and publishes the reply and the tool
results. The sessions carry large tool results, RAG chunks, a tool stuck in a polling loop and
a change of task midway; one has a system prompt over its share, which the SDK rejects before
anything is published. Live progress shows every session's utilization; the report compares
the fleet with the same fleet without budget management. Every process it started is stopped
on the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from streams.broker import EmbeddedBroker, free_port
from streams.budget import ActionKind, BudgetManager, Message
from streams.client import BudgetClient
from streams.corpus import Conversation, generate_fleet
from streams.errors import SystemPromptTooLargeError
from streams.report import bar
from streams.summarizer.service import command_line as summarizer_command_line
from streams.topics import TopicNames
from streams.worker import command_line

LIMITS = (6_000, 8_000, 12_000)
MODEL = "gpt-4o"
PARTITIONS = 4


@dataclass
class Agent:
    """One simulated agent and what happened to it."""

    session_id: str
    conversation: Conversation
    limit: int
    system_prompt: str
    calls: int = 0
    fallbacks: int = 0
    peak: float = 0.0
    final: float = 0.0
    managed_overflows: int = 0
    unmanaged_overflows: int = 0
    published: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    rejected: str | None = None

    @property
    def turns(self) -> list[Message]:
        """The turns the agent publishes (the system prompt goes with the session start)."""
        return [m for m in self.conversation.messages if m.role != "system"]


def build_fleet(sessions: int, turns: int, seed: int) -> list[Agent]:
    """Generated sessions; the last one has a system prompt over its share."""
    agents = []
    steps = max(12, turns // 2)  # a step is a user, assistant or tool turn, often two
    for n, conversation in enumerate(generate_fleet(sessions, steps, seed)):
        conversation.messages = conversation.messages[: turns + 1]  # the system prompt and turns
        prompt = conversation.messages[0].text
        if n == sessions - 1:
            prompt = "You are a careful agent. Cite sources. " * 400
        sid = f"agent-{n:02d}-{conversation.kind}"
        agents.append(Agent(sid, conversation, LIMITS[n % 3], prompt))
    return agents


async def run_agent(client: BudgetClient, agent: Agent, seed: int) -> None:
    """Work through the session like an agent: context, LLM call, publish, and again."""
    rng = random.Random(f"{seed}:{agent.session_id}")
    try:
        await client.start_session(
            agent.session_id,
            model=MODEL,
            context_limit=agent.limit,
            system_prompt=agent.system_prompt,
            task=agent.conversation.task,
        )
    except SystemPromptTooLargeError as error:
        agent.rejected = str(error)
        return
    changes = {c.message_id: c.task for c in agent.conversation.task_changes}
    unmanaged = Unmanaged(agent)
    for message in agent.turns:
        if message.id in changes:
            await client.update_task(agent.session_id, changes[message.id])
        if message.role == "assistant":
            context = await client.context(agent.session_id, timeout=15)
            agent.calls += 1
            agent.fallbacks += context.fallback
            agent.peak = max(agent.peak, context.snapshot.utilization)
            agent.managed_overflows += context.tokens > agent.limit
            agent.unmanaged_overflows += unmanaged.overflows()
            await asyncio.sleep(rng.uniform(0.1, 0.4))  # the LLM call
        await client.publish_turn(agent.session_id, message)
        unmanaged.add(message)
        agent.published += 1
    context = await client.context(agent.session_id, timeout=15)
    agent.final = context.snapshot.utilization


class Unmanaged:
    """The same session without budget management: the whole history goes to every call."""

    def __init__(self, agent: Agent) -> None:
        self.manager = BudgetManager(MODEL, agent.limit)
        self.limit = agent.limit
        system = Message(id="system", role="system", content=agent.system_prompt)
        self.total = self.manager.count(system) + self.manager.counter.chat_format.reply_priming

    def add(self, message: Message) -> None:
        """Count a published message into the full history."""
        self.total += self.manager.count(message.uncounted())

    def overflows(self) -> bool:
        """Whether a call with the full history would exceed the context limit."""
        return self.total > self.limit


class Live:
    """Progress while the fleet runs: a block redrawn in a terminal, a line every 5 s if not."""

    def __init__(self, client: BudgetClient, agents: list[Agent], tally: Counter[str]) -> None:
        self.client, self.agents, self.tally = client, agents, tally
        self.tty = sys.stdout.isatty()
        self.drawn = 0

    def frame(self) -> list[str]:
        """The progress lines: fleet counts, then one line per session."""
        published = sum(a.published for a in self.agents)
        total = sum(len(a.turns) for a in self.agents if a.rejected is None)
        lines = [
            f"  {published:>5}/{total} turns · {sum(a.calls for a in self.agents):>4} LLM calls · "
            f"{sum(self.tally.values()):>4} commands · summaries "
            f"{self.tally['summarize applied']}/{self.tally['summarize asked']}"
        ]
        for agent in self.agents:
            mirror = self.client.sessions.get(agent.session_id)
            if agent.rejected is not None:
                lines.append(f"  {agent.session_id:<22} rejected at session start")
                continue
            if mirror is None or mirror.worker is None:
                continue
            snap = mirror.worker.snapshot
            lines.append(
                f"  {agent.session_id:<22}{bar(snap.utilization, 20)} {snap.utilization:>4.0%}"
                f"  {snap.level.value:<8} {agent.published:>3}/{len(agent.turns)}"
            )
        return lines

    def draw(self) -> None:
        """Redraw the block (terminal) or print the first line."""
        lines = self.frame()
        if not self.tty:
            print(lines[0], flush=True)
            return
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        print(up + "\n".join(line + "\x1b[K" for line in lines), flush=True)
        self.drawn = len(lines)

    async def run(self) -> None:
        """Redraw until cancelled."""
        while True:
            self.draw()
            await asyncio.sleep(0.5 if self.tty else 5.0)


async def drive_fleet(
    bootstrap: str, topics: TopicNames, agents: list[Agent], seed: int
) -> Counter[str]:
    """Run every agent at once on one client; the commands they applied, by kind and rule."""
    tally: Counter[str] = Counter()
    async with BudgetClient(bootstrap, topic_prefix=topics.prefix, partitions=PARTITIONS) as client:
        by_id = {a.session_id: a for a in agents}

        async def watch() -> None:
            async for command in client.commands():
                action = command.action
                label = f"{action.kind.value} {action.rule.value}"
                if action.kind is ActionKind.SUMMARIZE:
                    state = "asked" if action.replacement is None else "applied"
                    tally[f"summarize {state}"] += 1
                    label += f" ({state})"
                tally[label] += 1
                by_id[command.session_id].actions[action.kind.value] += 1

        live = Live(client, agents, tally)
        tasks = [asyncio.create_task(watch()), asyncio.create_task(live.run())]
        try:
            await asyncio.gather(*(run_agent(client, a, seed) for a in agents))
            grace = time.monotonic() + 10  # summaries still being written and applied
            while (
                tally["summarize applied"] < tally["summarize asked"] and time.monotonic() < grace
            ):
                await asyncio.sleep(0.2)
        finally:
            for task in tasks:
                task.cancel()
            live.draw()
    return tally


def run_stream_demo(sessions: int = 20, turns: int = 60, seed: int = 7) -> int:
    """Run the streaming demo; returns the exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="tokenbudget-demo-"))
    agents = build_fleet(sessions, turns, seed)
    topics = TopicNames("demo.")
    print(
        f"Starting the embedded broker, a budget worker and the summarizer (logs in {workdir}) …",
        flush=True,
    )
    started = time.monotonic()
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        processes = [
            spawn(
                command_line(
                    broker.bootstrap,
                    topic_prefix=topics.prefix,
                    app_id="demo-worker",
                    data_dir=str(workdir / "worker-data"),
                    web_port=free_port(),
                    partitions=PARTITIONS,
                    loglevel="warn",
                ),
                workdir / "worker.log",
            ),
            spawn(
                summarizer_command_line(
                    broker.bootstrap,
                    topic_prefix=topics.prefix,
                    group="demo-summarizer",
                    partitions=PARTITIONS,
                    loglevel="warn",
                ),
                workdir / "summarizer.log",
                background=True,
            ),
        ]
        try:
            print(
                f"Running {len(agents)} agents × {turns} turns on the client SDK against "
                f"{broker.bootstrap} …",
                flush=True,
            )
            tally = asyncio.run(drive_fleet(broker.bootstrap, topics, agents, seed))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    return report(agents, tally, time.monotonic() - started)


def spawn(argv: list[str], log: Path, background: bool = False) -> subprocess.Popen[bytes]:
    """A child process of the demo, its output in `log`.

    A `background` process (the summarizer) gets one torch thread and a lower CPU priority:
    the worker is on every agent's hot path, a summary may take a few seconds more.
    """
    env = dict(os.environ)
    if background:
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    process = subprocess.Popen(
        argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    if background:
        os.setpriority(os.PRIO_PROCESS, process.pid, 10)
    return process


def report(agents: list[Agent], tally: Counter[str], elapsed: float) -> int:
    """Print the per-session and fleet report; non-zero if a managed context ever overflowed."""
    print(
        f"\n{'session':<24}{'limit':>7}{'calls':>6}{'peak':>6}{'final':>6}"
        f"{'drop':>6}{'trunc':>6}{'summ':>6}{'local':>6}{'overflows unmanaged':>21}"
    )
    for a in agents:
        if a.rejected is not None:
            print(f"{a.session_id:<24}{a.limit:>7,}  rejected at session start")
            continue
        print(
            f"{a.session_id:<24}{a.limit:>7,}{a.calls:>6}{a.peak:>6.0%}{a.final:>6.0%}"
            f"{a.actions['DROP']:>6}{a.actions['TRUNCATE']:>6}{a.actions['SUMMARIZE']:>6}"
            f"{a.fallbacks:>6}{a.unmanaged_overflows:>21}"
        )
    print("\nCommands applied by the agents, by kind and rule:")
    for label, count in tally.most_common():
        if not label.startswith("summarize "):
            print(f"  {label:<44}{count:>5}")
    print(
        f"\nSummaries: {tally['summarize asked']} asked for, {tally['summarize applied']} "
        "applied (an answer whose segment was pruned meanwhile is not)."
    )
    rejected = [a for a in agents if a.rejected is not None]
    print(f"Rejections: {len(rejected)}")
    for a in rejected:
        print(f"  {a.session_id}: {a.rejected}")
    managed = sum(a.managed_overflows for a in agents)
    unmanaged = sum(a.unmanaged_overflows for a in agents)
    calls = sum(a.calls for a in agents)
    local = sum(a.fallbacks for a in agents)
    print(
        f"\nOf {calls} LLM calls, {unmanaged} would have exceeded their context limit without "
        f"budget management; with it, {managed} did ({local} contexts came from the local "
        f"fallback). Done in {elapsed:.0f} s."
    )
    return 1 if managed else 0

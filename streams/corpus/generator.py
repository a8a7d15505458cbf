"""The conversation generator: a seeded walk through a research or coding session.

A session is a system prompt, the user's task, then `turns` steps: tool rounds (some with large
results, some with parallel calls), assistant notes, user follow-ups, retrieved chunks, scratchpad
notes, one tool stuck in a polling loop and one change of task. Facts are planted at steps spread
from early to late, each in a chosen carrier (a user message, a short tool result, a line buried
deep in a large one …); their near misses land elsewhere. Same seed, same conversation.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from streams.budget.model import Component, Content, Message, Part, Role, TextPart, ToolCallPart
from streams.corpus import artifacts as art
from streams.corpus.conversation import KINDS, Conversation, Fact, Kind, Question, TaskChange
from streams.corpus.facts import draw_facts
from streams.corpus.texts import (
    ASSISTANT_CODING,
    ASSISTANT_LEADS,
    ASSISTANT_NOTES,
    CODING_TASKS,
    RESEARCH_TASKS,
    SCRATCHPAD,
    TASK_CHANGES,
    USER_FOLLOW_UPS,
)
from streams.corpus.vocabulary import Scene

CARRIERS: tuple[str, ...] = ("buried", "user", "tool", "buried", "assistant", "rag", "scratchpad")
STEPS: dict[str, int] = {
    "tool": 30,
    "large": 14,
    "parallel": 8,
    "assistant": 18,
    "user": 10,
    "rag": 8,
    "scratchpad": 4,
}
CARRIER_STEP = {"buried": "large", "tool": "tool"}


@dataclass
class _Plant:
    """Lines to place into the message a step produces; `keys` are the facts among them."""

    lines: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    carrier: str | None = None


class _Session:
    """Appends messages with ids, timestamps and tool-call pairing; remembers fact placements."""

    def __init__(
        self, rng: random.Random, scene: Scene, kind: Kind, prefix: str, facts: list[Fact]
    ) -> None:
        self.rng, self.scene, self.kind, self.prefix = rng, scene, kind, prefix
        self.notes = {fact.statement: fact.note for fact in facts}
        self.messages: list[Message] = []
        self.clock = rng.uniform(0, 3600)
        self.calls = 0
        self.evidence: dict[str, list[str]] = {}

    def add(
        self,
        role: Role,
        content: Content,
        component: Component | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
    ) -> Message:
        self.clock += self.rng.uniform(3, 90)
        message = Message(
            id=f"{self.prefix}-{len(self.messages):03d}",
            role=role,
            content=content,
            component=component,  # type: ignore[arg-type]  # None: derived from the role
            tool_call_id=tool_call_id,
            name=name,
            timestamp=round(art.EPOCH.timestamp() + self.clock, 3),
        )
        self.messages.append(message)
        return message

    def record(self, message: Message, plant: _Plant) -> None:
        for key in plant.keys:
            self.evidence.setdefault(key, []).append(message.id)

    def tools(self, calls: list[tuple[str, dict[str, object], str]], plant: _Plant) -> None:
        """An assistant turn making `calls`, then their results; the first one carries `plant`."""
        parts: list[Part] = []
        if self.rng.random() < 0.5:
            parts.append(TextPart(self.fill(ASSISTANT_LEADS)))
        ids = []
        for name, arguments, _ in calls:
            self.calls += 1
            ids.append(f"call_{self.prefix}_{self.calls:03d}")
            parts.append(ToolCallPart(ids[-1], name, json.dumps(arguments, sort_keys=True)))
        self.add("assistant", tuple(parts))
        for i, ((name, _, result), call_id) in enumerate(zip(calls, ids, strict=True)):
            message = self.add("tool", result, tool_call_id=call_id, name=name)
            if i == 0:
                self.record(message, plant)

    def fill(self, templates: tuple[str, ...], **fixed: object) -> str:
        return self.scene.fill(self.rng, self.rng.choice(templates), **fixed)


def _short_result(s: _Session, plant: _Plant) -> tuple[str, dict[str, object], str]:
    """A small tool answer: a few search hits, the ticket list, a wiki excerpt, grep output."""
    rng, scene = s.rng, s.scene
    choice = rng.randrange(4 if s.kind == "coding" else 3)
    if choice == 3:
        pattern = s.fill(("{verb}_{noun}", "{vendor}Client", "{service}_{noun}_handler"))
        notes = [_note_for(s, line) for line in plant.lines]
        return ("grep", {"pattern": pattern}, art.grep_output(rng, scene, pattern, notes))
    if choice == 0:
        query = s.fill(("{service} {store} {env}", "{vendor} {symptom}", "{lib} {service} issue"))
        text = art.search_results(rng, scene, query, rng.randint(3, 4), " ".join(plant.lines))
        return ("search_docs" if s.kind == "coding" else "web_search", {"query": query}, text)
    if choice == 1:
        return ("list_tickets", {"team": scene.team}, art.ticket_list(rng, scene, plant.lines))
    page = s.fill(("{service}/runbook", "{service}/faq", "{project}/plan"))
    text = art.doc_page(rng, scene, page, rng.randint(1, 2), plant.lines)
    return ("read_wiki", {"page": page}, text)


def _large_result(s: _Session, plant: _Plant) -> tuple[str, dict[str, object], str]:
    """A long tool answer: a log, a source file, a results page, a test run, a wiki page."""
    rng, scene = s.rng, s.scene
    notes = [_note_for(s, line) for line in plant.lines]
    options = ["log", "search", "page"] + (["file", "file", "tests"] if s.kind == "coding" else [])
    choice = rng.choice(options)
    if choice == "log":
        args = {"service": rng.choice(scene.services), "env": rng.choice(scene.envs), "since": "2h"}
        text = art.log_output(rng, scene, rng.randint(25, 50), notes, s.clock)
        return ("query_logs", args, text)
    if choice == "file":
        path = scene.path(rng)
        return ("read_file", {"path": path}, art.source_file(rng, scene, path, notes))
    if choice == "tests":
        return ("run_tests", {"target": "tests/"}, art.test_report(rng, scene, notes))
    if choice == "search":
        query = s.fill(("{service} {symptom}", "{vendor} limits {env}", "{lib} upgrade {service}"))
        text = art.search_results(rng, scene, query, rng.randint(6, 9), " ".join(plant.lines))
        return ("web_search", {"query": query}, text)
    page = s.fill(("{service}/runbook", "{service}/architecture", "{team}/handbook"))
    text = art.doc_page(rng, scene, page, rng.randint(5, 9), plant.lines)
    return ("fetch_page", {"url": f"https://wiki.internal/{page}"}, text)


def _note_for(s: _Session, line: str) -> str:
    """Terse form of a planted fact for logs and code; near misses stay sentences."""
    return s.notes.get(line, line)


def _step(s: _Session, kind: str, plant: _Plant) -> None:
    """Emit one step of kind `kind`, with `plant` inside the message that carries it."""
    rng = s.rng
    extra = " ".join(plant.lines)
    if kind == "user":
        last = s.messages[-1]
        if not (last.role == "assistant" and isinstance(last.content, str)):
            s.add("assistant", s.fill(ASSISTANT_CODING if s.kind == "coding" else ASSISTANT_NOTES))
        lead = rng.choice(("FYI: ", "For the record: ", "Also: ", "")) if extra else ""
        text = f"{lead}{extra} {s.fill(USER_FOLLOW_UPS)}".strip()
        s.record(s.add("user", text), plant)
    elif kind == "assistant":
        pool = ASSISTANT_CODING if s.kind == "coding" else ASSISTANT_NOTES
        text = " ".join([s.fill(pool), *plant.lines] if extra else [s.fill(pool), s.fill(pool)])
        s.record(s.add("assistant", text), plant)
    elif kind == "scratchpad":
        notes = [f"- {_note_for(s, line)}" for line in plant.lines]
        text = "\n".join(["Scratchpad:", s.fill(SCRATCHPAD), *notes])
        s.record(s.add("assistant", text, component=Component.SCRATCHPAD), plant)
    elif kind == "rag":
        source = s.fill(
            ("wiki/{service}/runbook.md", "wiki/{team}/handbook.md", "adr/{project}.md")
        )
        body = art.doc_page(rng, s.scene, source, 1, plant.lines).split("\n", 2)[-1]
        text = f"[retrieved: {source}, chunk {rng.randint(1, 40)}]\n{body}"
        s.record(s.add("user", text, component=Component.RAG_CONTEXT), plant)
    elif kind == "large":
        s.tools([_large_result(s, plant)], plant)
    elif kind == "parallel":
        calls = [_short_result(s, plant), _short_result(s, _Plant())]
        if s.kind == "coding":
            calls.append(("git_log", {"n": 5}, art.git_log(rng, s.scene, 5, s.clock)))
        s.tools(calls, plant)
    else:
        s.tools([_short_result(s, plant)], plant)


def _loop(s: _Session, polls: int) -> None:
    """The agent polls a stuck job again and again and gets (nearly) the same answer."""
    if s.kind == "coding":
        target = f"ci-{s.rng.randint(1000, 9999)} (branch fix/{s.rng.choice(s.scene.services)})"
        name, args = "check_ci", {"run": target.split()[0]}
    else:
        service, env = s.rng.choice(s.scene.services), s.rng.choice(s.scene.envs)
        target = f"{service}-{env} rollout"
        name, args = "check_rollout", {"service": service, "env": env}
    for attempt in range(polls):
        poll = art.status_poll(s.rng, target, attempt, s.clock, ci=s.kind == "coding")
        s.tools([(name, args, poll)], _Plant())
    s.add("assistant", f"{target} has not moved in {polls} checks; I'll stop polling it for now.")


def generate_conversation(seed: int, turns: int = 60, kind: Kind = "research") -> Conversation:
    """A deterministic agent session of about `turns` steps with planted facts and questions."""
    if kind not in KINDS:
        raise ValueError(f"unknown conversation kind {kind!r} (expected research or coding)")
    turns = max(turns, 12)
    rng = random.Random(f"tokenbudget-corpus:{kind}:{seed}:{turns}")
    scene = Scene.draw(rng)
    tasks = CODING_TASKS if kind == "coding" else RESEARCH_TASKS
    first, second = (scene.fill(rng, t) for t in rng.sample(tasks, 2))
    facts = draw_facts(rng, scene, max(3, turns // 7))
    s = _Session(rng, scene, kind, f"{kind[0]}{seed}", facts)
    s.add("system", _system_prompt(scene, kind))
    s.add("user", first)
    change_at = rng.randint(int(turns * 0.4), int(turns * 0.6))
    loop_at, dump_at = rng.sample(
        [t for t in range(int(turns * 0.2), int(turns * 0.8)) if t != change_at], 2
    )
    plants = _plan(rng, facts, turns, {change_at, loop_at, dump_at})
    conversation = Conversation(seed=seed, kind=kind, task=first, messages=s.messages, facts=facts)
    for t in range(1, turns):
        if t == change_at:
            text = scene.fill(rng, rng.choice(TASK_CHANGES), task=second)
            message = s.add("user", text)
            conversation.task_changes.append(TaskChange(message.id, len(s.messages) - 1, second))
            continue
        if t == loop_at:
            _loop(s, rng.randint(4, 7))
            continue
        if t == dump_at:
            args = {"service": rng.choice(scene.services), "env": rng.choice(scene.envs)}
            dump = art.log_output(rng, scene, rng.randint(110, 150), (), s.clock)
            s.tools([("query_logs", {**args, "since": "24h"}, dump)], _Plant())
            continue
        plant = plants.get(t, _Plant())
        if plant.carrier:
            step = CARRIER_STEP.get(plant.carrier, plant.carrier)
        else:
            step = rng.choices(list(STEPS), list(STEPS.values()))[0]
        _step(s, step, plant)
    for fact in facts:
        conversation.placements[fact.key] = next(
            p.carrier or "" for p in plants.values() if fact.key in p.keys
        )
    conversation.questions = _questions(rng, facts, s.evidence)
    return conversation


def _plan(rng: random.Random, facts: list[Fact], turns: int, busy: set[int]) -> dict[int, _Plant]:
    """Spread facts over the steps (early to late) with a carrier each; scatter near misses."""
    free = [t for t in range(1, turns) if t not in busy]
    carriers = [CARRIERS[i % len(CARRIERS)] for i in range(len(facts))]
    rng.shuffle(carriers)
    plants: dict[int, _Plant] = {}
    for i, (fact, carrier) in enumerate(zip(facts, carriers, strict=True)):
        band = free[len(free) * i // len(facts) : len(free) * (i + 1) // len(facts)]
        taken = [t for t in band if t not in plants] or [t for t in free if t not in plants]
        at = rng.choice(taken)
        plants[at] = _Plant([fact.statement], [fact.key], carrier)
    for fact in facts:
        elsewhere = [t for t in free if fact.key not in plants.get(t, _Plant()).keys]
        for miss in fact.near_misses:
            plants.setdefault(rng.choice(elsewhere), _Plant()).lines.append(miss)
    for plant in plants.values():
        rng.shuffle(plant.lines)
    return plants


def _questions(
    rng: random.Random, facts: list[Fact], evidence: dict[str, list[str]]
) -> list[Question]:
    """One question per fact, plus one that needs two facts at once."""
    out = [Question(f.question, tuple(evidence[f.key]), f.answer, (f.key,)) for f in facts]
    if len(facts) >= 4:
        a, b = rng.sample(facts, 2)
        text = f"Two things: {_lower_first(a.question[:-1])}, and {_lower_first(b.question)}"
        ids = tuple(dict.fromkeys([*evidence[a.key], *evidence[b.key]]))
        out.append(Question(text, ids, f"{a.answer}; {b.answer}", (a.key, b.key)))
    return out


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _system_prompt(scene: Scene, kind: Kind) -> str:
    role = "coding agent" if kind == "coding" else "research agent"
    tools = (
        "read_file, grep, run_tests, git_log, search_docs, list_tickets, check_ci"
        if kind == "coding"
        else "web_search, fetch_page, read_wiki, query_logs, list_tickets, check_rollout"
    )
    return (
        f"You are a {role} for the {scene.team} team, working in the {scene.repo} repository. "
        f"Tools: {tools}. Cite the tool output you rely on, never guess configuration values, "
        "and ask before changing anything in production."
    )


def generate_fleet(n: int, turns: int = 60, seed: int = 0) -> list[Conversation]:
    """`n` conversations, research and coding alternating, each with its own derived seed."""
    kinds: tuple[Kind, Kind] = ("research", "coding")
    return [generate_conversation(seed * 1000 + i, turns, kinds[i % 2]) for i in range(n)]

"""The client's copy of one session: the history as the agent will send it, kept in step with
the worker by applying its commands, and a local fallback when the worker does not answer.

No Kafka and no asyncio here: `BudgetClient` feeds it what it publishes and what it reads.
The mirror counts with the same core and the same session settings as the worker, so after the
worker's commands are applied its ledger equals the worker's snapshot, token for token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.budget import (
    ActionKind,
    Component,
    LexicalScorer,
    Message,
    Scorer,
    Session,
    Snapshot,
    to_anthropic,
    to_openai,
)
from streams.codecs import BudgetCommand, BudgetSnapshot, SessionStart
from streams.errors import InvalidMessageError

Json = dict[str, object]


@dataclass(frozen=True, slots=True)
class Context:
    """The history to send with the next LLM call, and where it came from.

    `fallback` is True when the worker did not answer in time and the local cascade decided
    instead; the next call after the worker catches up is exact again.
    """

    session_id: str
    messages: tuple[Message, ...]
    snapshot: Snapshot
    seq: int
    fallback: bool = False
    tokens: int = 0

    def openai(self) -> list[Json]:
        """The messages in OpenAI chat format (the system prompt first)."""
        return to_openai(self.messages)

    def anthropic(self) -> Json:
        """`{"system": …, "messages": […]}` for the Anthropic Messages API."""
        return to_anthropic(self.messages)


@dataclass(slots=True)
class Mirror:
    """One session as the client sees it."""

    session_id: str
    start: SessionStart
    session: Session
    seq: int = 0
    worker: BudgetSnapshot | None = None
    applied: set[str] = field(default_factory=set)
    awaiting: set[str] = field(default_factory=set)
    rejected: str | None = None
    last_context: Context | None = None

    @classmethod
    def begin(cls, session_id: str, start: SessionStart, scorer: Scorer | None = None) -> Mirror:
        """A new session; `SystemPromptTooLargeError` and policy errors raise here, before
        anything is published."""
        manager = start.manager(scorer or LexicalScorer())
        system = system_message(session_id, start)
        manager.check_system_prompt(system)
        session = Session(manager, start.task or "")
        if system.text:
            session.add(system)
        return cls(session_id, start, session)

    # -- what the agent publishes ------------------------------------------------------------
    def next_seq(self) -> int:
        """The seq of the next event (the start was 0)."""
        self.seq += 1
        return self.seq

    def add(self, message: Message) -> None:
        """Append a turn's message; an id already used in the session is an error."""
        if message.id in self.session:
            raise InvalidMessageError(
                f"session {self.session_id!r} already has a message {message.id!r}"
            )
        self.session.add(message)

    # -- what the worker says ----------------------------------------------------------------
    def apply(self, command: BudgetCommand) -> bool:
        """Apply a command once; False when it was applied before (or changes nothing here)."""
        if command.command_id in self.applied:
            return False
        self.applied.add(command.command_id)
        self.awaiting.discard(command.command_id)
        action = command.action
        if action.kind is ActionKind.REJECTED:
            self.rejected = action.reason
        else:
            self.session.apply([action])
        return True

    def observe(self, snapshot: BudgetSnapshot) -> None:
        """Take the worker's snapshot: remember the commands it names, adopt its calibration."""
        if self.worker is None or snapshot.seq >= self.worker.seq:
            self.worker = snapshot
        self.awaiting.update(i for i in snapshot.command_ids if i not in self.applied)
        if snapshot.count_factor != self.session.manager.count_factor:
            self._recount(snapshot.count_factor)

    def _recount(self, factor: float) -> None:
        """Count everything again with the worker's calibration factor for this session."""
        manager = self.start.manager(self.session.manager.scorer, factor)
        session = Session(manager, self.session.task)
        for message in self.session.messages.values():
            session.add(message.uncounted())
        self.session = session

    def in_step(self) -> bool:
        """The worker has processed every event published so far and its commands are in."""
        return self.worker is not None and self.worker.seq >= self.seq and not self.awaiting

    # -- what the agent gets -----------------------------------------------------------------
    def context(self, *, fallback: bool) -> Context:
        """The history for the next call: as it is (in step), or cut by the local cascade."""
        messages = list(self.session.messages.values())
        if fallback:
            strategy = self.start.strategy or "cascade"
            prepared = self.session.manager.prepare(
                messages, self.session.task, strategy, plan_summary=False
            )
            messages, snapshot = list(prepared.messages), prepared.snapshot
        else:
            snapshot = self.session.snapshot()
        context = Context(
            self.session_id, tuple(messages), snapshot, self.seq, fallback, snapshot.used
        )
        self.last_context = context
        return context

    def headroom(self, component: Component | str) -> int:
        """Tokens still free for `component` per the latest snapshot (the worker's if any)."""
        snapshot = self.worker.snapshot if self.worker is not None else self.session.snapshot()
        return snapshot.headroom(component)


def system_message(session_id: str, start: SessionStart) -> Message:
    """The system prompt as the session's first message (the same id the worker gives it)."""
    return Message(id=f"{session_id}/system", role="system", content=start.system_prompt)


def ledger_matches(mirror: Mirror, snapshot: Snapshot) -> bool:
    """Whether the mirror's ledger equals a worker snapshot, component by component."""
    mine = mirror.session.snapshot()
    return (
        mine.used == snapshot.used
        and mine.message_count == snapshot.message_count
        and all(mine.components[c].used == u.used for c, u in snapshot.components.items())
    )

"""What the corpus generator hands back: a conversation, its planted facts and its questions."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from streams.budget.model import Message

Kind = Literal["research", "coding"]
KINDS: tuple[Kind, ...] = ("research", "coding")


@dataclass(frozen=True, slots=True)
class Fact:
    """One planted fact: how it is said, how it is asked about, and look-alikes that are not it.

    `near_misses` mention the same subject or the same attribute with other values; they are
    spread through the conversation so that a scorer cannot find the evidence by topic alone.
    """

    key: str
    statement: str
    note: str
    question: str
    answer: str
    near_misses: tuple[str, ...]

    @classmethod
    def pick(
        cls,
        rng: random.Random,
        key: str,
        statements: Sequence[str],
        note: str,
        questions: Sequence[str],
        answer: str,
        near_misses: Sequence[str],
    ) -> Fact:
        """A fact stated and asked in one of several phrasings, drawn by `rng`."""
        return cls(
            key, rng.choice(statements), note, rng.choice(questions), answer, tuple(near_misses)
        )


@dataclass(frozen=True, slots=True)
class Question:
    """A question about planted facts, with the ids of the messages needed to answer it."""

    text: str
    evidence_ids: tuple[str, ...]
    answer: str
    fact_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskChange:
    """The user redirected the agent: from which message on, and to what task."""

    message_id: str
    index: int
    task: str


@dataclass(slots=True)
class Conversation:
    """A generated agent session: messages in order, the facts planted in them, the questions."""

    seed: int
    kind: Kind
    task: str
    messages: list[Message]
    facts: list[Fact] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    task_changes: list[TaskChange] = field(default_factory=list)
    placements: dict[str, str] = field(default_factory=dict)

    def message(self, message_id: str) -> Message:
        """The message with id `message_id` (KeyError when there is none)."""
        for message in self.messages:
            if message.id == message_id:
                return message
        raise KeyError(message_id)

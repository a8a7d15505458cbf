"""Synthetic agent sessions with planted facts, for benchmarks and demos (pure, seeded, no I/O).

`generate_conversation(seed, turns, kind)` builds one research or coding session; every question
it returns names the messages that hold its answer, so a pruning strategy can be scored by how
much of that evidence it keeps.
"""

from streams.corpus.conversation import KINDS, Conversation, Fact, Kind, Question, TaskChange
from streams.corpus.generator import generate_conversation, generate_fleet

__all__ = [
    "KINDS",
    "Conversation",
    "Fact",
    "Kind",
    "Question",
    "TaskChange",
    "generate_conversation",
    "generate_fleet",
]

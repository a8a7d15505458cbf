"""Topic names. All topics are keyed by session id and co-partitioned."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The five topics of the product, under an optional prefix."""

    prefix: str = ""

    @property
    def turns(self) -> str:
        """What agents publish: session starts, turns, task updates, session ends."""
        return f"{self.prefix}agent.turns"

    @property
    def commands(self) -> str:
        """What agents apply: DROP, TRUNCATE, SUMMARIZE, RESET, REJECTED."""
        return f"{self.prefix}budget.commands"

    @property
    def events(self) -> str:
        """One budget snapshot per processed turn, for dashboards and clients."""
        return f"{self.prefix}budget.events"

    @property
    def compressed(self) -> str:
        """Summaries written back by the summarizer."""
        return f"{self.prefix}history.compressed"

    @property
    def dead_letters(self) -> str:
        """Everything that could not be decoded or validated, with the reason."""
        return f"{self.prefix}agent.turns.dlq"

    def all(self) -> tuple[str, ...]:
        """Every topic the worker needs."""
        return (self.turns, self.commands, self.events, self.compressed, self.dead_letters)

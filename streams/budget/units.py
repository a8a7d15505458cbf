"""Droppable units: a tool call and its results always go (or stay) together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.budget.model import Message


@dataclass(slots=True)
class Unit:
    """Message indices that are dropped together, in conversation order."""

    indices: list[int]
    protected: bool
    tokens: int

    @property
    def first(self) -> int:
        """Index of the unit's oldest message."""
        return self.indices[0]

    @property
    def last(self) -> int:
        """Index of the unit's newest message."""
        return self.indices[-1]


def group_units(messages: Sequence[Message]) -> list[Unit]:
    """Group counted messages into units; a unit with a pinned or fixed member is protected.

    A message making tool calls is joined with every message answering one of those calls
    (OpenAI `tool` messages or Anthropic `tool_result` blocks). Units come out ordered by their
    first message. O(n) with a union-find over indices.
    """
    parent = list(range(len(messages)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    caller: dict[str, int] = {}
    for i, message in enumerate(messages):
        for call_id in message.tool_call_ids:
            caller[call_id] = i
        for call_id in message.answers:
            j = caller.get(call_id)
            if j is not None:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(messages)):
        groups.setdefault(find(i), []).append(i)
    units = []
    for indices in groups.values():
        members = [messages[i] for i in indices]
        units.append(
            Unit(
                indices=indices,
                protected=any(not m.component.prunable for m in members),
                tokens=sum(m.token_count or 0 for m in members),
            )
        )
    units.sort(key=lambda u: u.first)
    return units

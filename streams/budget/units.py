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
    first message. O(n); only messages that take part in a tool call go through the union-find.
    """
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    caller: dict[str, int] = {}
    units: list[Unit] = []
    for i, message in enumerate(messages):
        calls, answers = message.tool_call_ids, message.answers
        if not calls and not answers:
            units.append(Unit([i], not message.component.prunable, message.token_count or 0))
            continue
        parent[i] = i
        for call_id in calls:
            caller[call_id] = i
        for call_id in answers:
            j = caller.get(call_id)
            if j is not None:
                parent[find(i)] = find(j)
    if parent:
        groups: dict[int, list[int]] = {}
        for i in parent:
            groups.setdefault(find(i), []).append(i)
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


def unit_index(units: Sequence[Unit], size: int) -> list[Unit]:
    """For each message index, the unit it belongs to."""
    index: list[Unit] = [None] * size  # type: ignore[list-item]
    for unit in units:
        for i in unit.indices:
            index[i] = unit
    return index

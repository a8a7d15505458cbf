"""A turn's table writes behind one journal row, so a worker killed midway redoes the same turn.

A turn that prunes writes several rows (messages removed, truncated, the cursor). The worker can
die after some of them reached the changelog and others did not; its commands may already be
with the agent. Computed again from that half-applied state, the cascade decides differently,
under the same command ids, and the agent (which ignores an id it has applied) and the worker
no longer agree. Found by `bench/soak.py`.

So the writes of an operation that sends commands are staged, then written behind one row that
holds them all with the commands: journal row, the writes in order, then the journal row
deleted. One session's rows share a changelog partition, written in order, so after a crash
either no write of the operation is there (it is computed again, from the same state: the same
plan) or the journal row is (its writes are applied again and its commands sent again, the same
ids and contents). Operations without commands stage nothing special: their writes go straight
through, and computing them again gives the same result.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.codecs.commands import BudgetCommand, command_from_record, command_to_record

JOURNAL = "!journal"


class StagedTable(MutableMapping[str, Any]):
    """Writes kept in order instead of reaching the table; reads see them.

    Iteration and length are the underlying table's: nothing iterates while a turn is staged.
    """

    _DELETED = object()

    def __init__(self, base: MutableMapping[str, Any]) -> None:
        self.base = base
        self.ops: list[list[Any]] = []  # [key, value] to write, [key] to delete
        self._view: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._view:
            value = self._view[key]
            if value is self._DELETED:
                raise KeyError(key)
            return value
        return self.base[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._view[key] = value
        self.ops.append([key, value])

    def __delitem__(self, key: str) -> None:
        self[key]  # a KeyError when absent, like a dict
        self._view[key] = self._DELETED
        self.ops.append([key])

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


def apply_ops(table: MutableMapping[str, Any], ops: list[list[Any]]) -> None:
    """Write staged (or journaled) operations to the table, in order; idempotent."""
    for op in ops:
        if len(op) == 2:
            table[op[0]] = op[1]
        else:
            table.pop(op[0], None)


@dataclass
class Journal:
    """One operation of a session (`turn <seq>` or `summary <id>`) and the commands it sent."""

    operation: str
    commands: list[BudgetCommand] = field(default_factory=list)

    def record(self, ops: list[list[Any]]) -> dict[str, Any]:
        """The journal row: the operation, its writes and its commands."""
        return {
            "op": self.operation,
            "ops": ops,
            "commands": [command_to_record(c) for c in self.commands],
        }


def journaled_commands(row: dict[str, Any]) -> list[BudgetCommand]:
    """The commands a journal row holds."""
    return [command_from_record(r) for r in row["commands"]]

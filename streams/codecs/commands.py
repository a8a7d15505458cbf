"""`BudgetCommand`: one cascade `Action` addressed to an agent, on `budget.commands`.

Command ids are derived from the session, the seq the plan was computed from and the step within
the plan, so a worker that recomputes a plan after a crash emits the same ids and agents (which
deduplicate by id) apply each command once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.budget.actions import Action, ActionKind, Rule
from streams.codecs.messages import message_from_record, message_to_record
from streams.errors import InvalidMessageError

Record = dict[str, Any]
_RULES = frozenset(r.value for r in Rule)


@dataclass(frozen=True, slots=True)
class BudgetCommand:
    """An action for one session, with the id and seq that make applying it idempotent."""

    command_id: str
    session_id: str
    seq: int
    action: Action
    created_at: float
    model: str | None = None

    def __post_init__(self) -> None:
        if not self.command_id or not self.session_id:
            raise InvalidMessageError("a budget command needs a command_id and a session_id")

    @classmethod
    def plan(
        cls,
        session_id: str,
        seq: int,
        actions: Sequence[Action],
        created_at: float,
        model: str | None = None,
    ) -> list[BudgetCommand]:
        """The commands of one plan, in order, with deterministic ids."""
        return [
            cls(f"{session_id}/{seq}/{step}", session_id, seq, action, created_at, model)
            for step, action in enumerate(actions)
        ]


def command_to_record(command: BudgetCommand) -> Record:
    """The wire record of a command."""
    action = command.action
    replacement = action.replacement
    return {
        "command_id": command.command_id,
        "session_id": command.session_id,
        "seq": command.seq,
        "kind": action.kind.value,
        "rule": action.rule.value,
        "message_ids": list(action.message_ids),
        "tokens_before": action.tokens_before,
        "tokens_after": action.tokens_after,
        "reason": action.reason,
        "replacement": None if replacement is None else message_to_record(replacement),
        "target_tokens": action.target_tokens,
        "created_at": command.created_at,
        "model": command.model,
        "segment": [message_to_record(m) for m in action.segment],
    }


def command_from_record(record: Record) -> BudgetCommand:
    """A validated command; an unknown rule is an `InvalidMessageError` naming the known ones."""
    rule = record["rule"]
    if rule not in _RULES:
        raise InvalidMessageError(
            f"command {record['command_id']!r}: unknown rule {rule!r} (expected one of "
            f"{', '.join(sorted(_RULES))})"
        )
    replacement = record["replacement"]
    action = Action(
        kind=ActionKind(record["kind"]),
        rule=Rule(rule),
        message_ids=tuple(record["message_ids"]),
        tokens_before=record["tokens_before"],
        tokens_after=record["tokens_after"],
        reason=record["reason"],
        replacement=None if replacement is None else message_from_record(replacement),
        target_tokens=record["target_tokens"],
        segment=tuple(message_from_record(m) for m in record["segment"]),
    )
    return BudgetCommand(
        command_id=record["command_id"],
        session_id=record["session_id"],
        seq=record["seq"],
        action=action,
        created_at=record["created_at"],
        model=record["model"],
    )

"""`TurnEvent`, what agents publish to `agent.turns`, and its session-start payload.

The event validates itself, so a producer learns of a malformed event when it builds one and a
consumer when it decodes one (the codec turns the error into a dead-letter reason).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streams.budget.importance import Scorer
from streams.budget.manager import BudgetManager
from streams.budget.model import Message
from streams.budget.planner import STRATEGIES
from streams.budget.policy import Policy
from streams.codecs.identifiers import check_identifier, check_message_identifiers
from streams.codecs.messages import message_from_record, message_to_record
from streams.errors import InvalidMessageError, UnknownStrategyError

Record = dict[str, Any]


class TurnEventType(StrEnum):
    """What a turn event says happened."""

    SESSION_START = "SESSION_START"
    TURN = "TURN"
    TASK_UPDATE = "TASK_UPDATE"
    SESSION_END = "SESSION_END"
    USAGE = "USAGE"


@dataclass(frozen=True, slots=True)
class Usage:
    """The provider's billed counts for one LLM call, and the context it was made with."""

    prompt_tokens: int
    context_seq: int
    context_tokens: int
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "completion_tokens", "context_tokens"):
            if getattr(self, name) < 0:
                raise InvalidMessageError(f"usage: {name} {getattr(self, name)} is negative")


@dataclass(frozen=True, slots=True)
class SessionStart:
    """How a session is budgeted: model, context limit, policy and the fixed components."""

    model: str
    context_limit: int
    policy: Policy = field(default_factory=Policy)
    system_prompt: str = ""
    tools: tuple[Mapping[str, Any], ...] = ()
    task: str | None = None
    tokenizer: str | None = None
    strategy: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise InvalidMessageError("a session start needs a model name")
        if self.context_limit <= 0:
            raise InvalidMessageError(
                f"model {self.model!r}: context limit must be positive, got {self.context_limit}"
            )
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise UnknownStrategyError(
                f"unknown strategy {self.strategy!r} (expected one of {', '.join(STRATEGIES)})"
            )

    def manager(self, scorer: Scorer | None = None, count_factor: float = 1.0) -> BudgetManager:
        """The budget manager of this session, as the worker and the client SDK both build it."""
        return BudgetManager(
            self.model,
            self.context_limit,
            self.policy,
            tools=self.tools,
            scorer=scorer,
            count_factor=count_factor,
        )


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """One event of an agent session; `type` says which payload is set."""

    event_id: str
    session_id: str
    seq: int
    type: TurnEventType
    timestamp: float
    session_start: SessionStart | None = None
    message: Message | None = None
    task: str | None = None
    end_reason: str | None = None
    usage: Usage | None = None

    def __post_init__(self) -> None:
        if not self.event_id or not self.session_id:
            raise InvalidMessageError("a turn event needs an event_id and a session_id")
        if self.seq < 0:
            raise InvalidMessageError(f"event {self.event_id!r}: seq {self.seq} is negative")
        object.__setattr__(self, "type", TurnEventType(self.type))
        needed = {
            TurnEventType.SESSION_START: ("session_start", self.session_start),
            TurnEventType.TURN: ("message", self.message),
            TurnEventType.TASK_UPDATE: ("task", self.task),
            TurnEventType.USAGE: ("usage", self.usage),
        }.get(self.type)
        if needed is not None and needed[1] is None:
            raise InvalidMessageError(
                f"event {self.event_id!r}: a {self.type} event needs its {needed[0]}"
            )


def turn_event_to_record(event: TurnEvent) -> Record:
    """The wire record of a turn event."""
    start = event.session_start
    return {
        "event_id": event.event_id,
        "session_id": event.session_id,
        "seq": event.seq,
        "type": event.type.value,
        "timestamp": event.timestamp,
        "session_start": None if start is None else session_start_to_record(start),
        "message": None if event.message is None else message_to_record(event.message),
        "task": event.task,
        "end_reason": event.end_reason,
        "usage": None if event.usage is None else usage_to_record(event.usage),
    }


def turn_event_from_record(record: Record) -> TurnEvent:
    """A validated turn event (`InvalidMessageError`, `PolicyError` when it is not)."""
    start, message, usage = record["session_start"], record["message"], record.get("usage")
    check_identifier(record["event_id"], "event_id", key=True)
    check_identifier(record["session_id"], "session_id", key=True)
    if message is not None:
        check_message_identifiers(message)
    if start is not None:
        check_identifier(start["model"], "model")
        check_identifier(start["tokenizer"], "tokenizer")
    return TurnEvent(
        event_id=record["event_id"],
        session_id=record["session_id"],
        seq=record["seq"],
        type=TurnEventType(record["type"]),
        timestamp=record["timestamp"],
        session_start=None if start is None else session_start_from_record(start),
        message=None if message is None else message_from_record(message),
        task=record["task"],
        end_reason=record["end_reason"],
        usage=None if usage is None else Usage(**usage),
    )


def usage_to_record(usage: Usage) -> Record:
    """The wire record of billed usage."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "context_seq": usage.context_seq,
        "context_tokens": usage.context_tokens,
    }


def session_start_to_record(start: SessionStart) -> Record:
    """The wire record of a session start: the policy as its overrides, tools as JSON text."""
    return {
        "model": start.model,
        "context_limit": start.context_limit,
        "policy": start.policy.overrides(),
        "system_prompt": start.system_prompt,
        "tool_schemas": [json.dumps(tool, separators=(",", ":")) for tool in start.tools],
        "task": start.task,
        "tokenizer": start.tokenizer,
        "strategy": start.strategy,
    }


def session_start_from_record(record: Record) -> SessionStart:
    """A validated session start: a policy that resolves, tool schemas that are JSON objects."""
    tools = []
    for i, text in enumerate(record["tool_schemas"]):
        try:
            tool = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidMessageError(f"tool schema {i} is not JSON: {error}") from None
        if not isinstance(tool, dict):
            raise InvalidMessageError(f"tool schema {i} is not a JSON object")
        tools.append(tool)
    return SessionStart(
        model=record["model"],
        context_limit=record["context_limit"],
        policy=Policy.from_mapping(record["policy"]),
        system_prompt=record["system_prompt"],
        tools=tuple(tools),
        task=record["task"],
        tokenizer=record["tokenizer"],
        strategy=record["strategy"],
    )

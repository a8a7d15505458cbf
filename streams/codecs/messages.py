"""`Message` ↔ the `tokenbudget.v1.Message` record (embedded in turn events and commands).

The `avro` package decodes a union of records to a bare dict, so a part's kind is read from the
field that only it has: `text`, `arguments` (a tool call) or `tool_call_id` (a tool result).
"""

from __future__ import annotations

from typing import Any

from streams.budget.model import Component, Message, Part, TextPart, ToolCallPart, ToolResultPart
from streams.errors import InvalidMessageError

Record = dict[str, Any]
_COMPONENTS = frozenset(c.value for c in Component)


def message_to_record(message: Message) -> Record:
    """The wire record of a message (the cached token count stays local)."""
    content = message.content
    return {
        "id": message.id,
        "role": message.role,
        "component": message.component.value,
        "content": content if isinstance(content, str) else [_part_to_record(p) for p in content],
        "pinned": message.pinned,
        "tool_call_id": message.tool_call_id,
        "name": message.name,
        "timestamp": message.timestamp,
        "truncated": message.truncated,
        "summary_of": list(message.summary_of),
    }


def message_from_record(record: Record) -> Message:
    """A validated message; `InvalidMessageError` for an unknown role or component, no id, ..."""
    content = record["content"]
    component = record["component"]
    if component is not None and component not in _COMPONENTS:
        raise InvalidMessageError(
            f"message {record['id']!r}: unknown component {component!r} (expected one of "
            f"{', '.join(sorted(_COMPONENTS))})"
        )
    return Message(
        id=record["id"],
        role=record["role"],
        content=content if isinstance(content, str) else tuple(map(_part_from_record, content)),
        component=component,
        pinned=record["pinned"],
        tool_call_id=record["tool_call_id"],
        name=record["name"],
        timestamp=record["timestamp"],
        truncated=record["truncated"],
        summary_of=tuple(record["summary_of"]),
    )


def _part_to_record(part: Part) -> Record:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ToolCallPart):
        return {"id": part.id, "name": part.name, "arguments": part.arguments}
    if isinstance(part, ToolResultPart):
        return {
            "tool_call_id": part.tool_call_id,
            "content": part.content,
            "is_error": part.is_error,
        }
    raise InvalidMessageError(f"not a content part: {part!r}")


def _part_from_record(record: Record) -> Part:
    if "text" in record:
        return TextPart(record["text"])
    if "arguments" in record:
        return ToolCallPart(record["id"], record["name"], record["arguments"])
    return ToolResultPart(record["tool_call_id"], record["content"], record["is_error"])

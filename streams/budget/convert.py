"""Converters between our `Message` and the OpenAI and Anthropic chat formats, both directions.

Ids: provider messages carry none, so an `"id"` key is used when present, else `f"{prefix}{i}"`.
An Anthropic user turn holding several `tool_result` blocks becomes one `tool` message per result
(so each pairs with its call); `to_anthropic` merges consecutive same-role messages back, as the
Messages API requires alternating roles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.budget.model import (
    Component,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from streams.errors import InvalidMessageError

Json = dict[str, Any]


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for block in content:
            if isinstance(block, str):
                texts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                texts.append(str(block.get("text", "")))
        return "\n".join(texts)
    raise InvalidMessageError(f"{where}: content must be a string or a list of blocks")


def _extras(raw: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if "component" in raw:
        extra["component"] = Component(raw["component"])
    if raw.get("pinned"):
        extra["pinned"] = True
    if "timestamp" in raw:
        extra["timestamp"] = float(raw["timestamp"])
    return extra


def from_openai(messages: Iterable[Mapping[str, Any]], prefix: str = "msg-") -> list[Message]:
    """OpenAI chat messages (system/developer, user, assistant with tool_calls, tool) → ours."""
    out: list[Message] = []
    for i, raw in enumerate(messages):
        where = f"message {i}"
        if not isinstance(raw, Mapping) or "role" not in raw:
            raise InvalidMessageError(f"{where}: expected an object with a role")
        role = "system" if raw["role"] == "developer" else raw["role"]
        mid = str(raw.get("id") or f"{prefix}{i}")
        text = _text_of(raw.get("content"), where)
        parts: list[Part] = []
        for call in raw.get("tool_calls") or []:
            fn = call.get("function", {})
            parts.append(
                ToolCallPart(
                    str(call["id"]), str(fn.get("name", "")), str(fn.get("arguments", "{}"))
                )
            )
        content: str | tuple[Part, ...] = (
            ((TextPart(text),) if text else ()) + tuple(parts) if parts else text
        )
        out.append(
            Message(
                id=mid,
                role=role,
                content=content,
                tool_call_id=raw.get("tool_call_id"),
                name=raw.get("name"),
                **_extras(raw),
            )
        )
    return out


def to_openai(messages: Sequence[Message]) -> list[Json]:
    """Our messages → OpenAI chat messages."""
    out: list[Json] = []
    for m in messages:
        if isinstance(m.content, str):
            item: Json = {"role": m.role, "content": m.content}
        else:
            texts = [p.text for p in m.content if isinstance(p, TextPart)]
            calls = [p for p in m.content if isinstance(p, ToolCallPart)]
            results = [p for p in m.content if isinstance(p, ToolResultPart)]
            if results and m.role != "tool":
                for r in results:
                    out.append(
                        {"role": "tool", "tool_call_id": r.tool_call_id, "content": r.content}
                    )
                if not texts:
                    continue
            item = {"role": m.role, "content": "\n".join(texts) if texts or not calls else None}
            if calls:
                item["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ]
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        if m.name:
            item["name"] = m.name
        out.append(item)
    return out


def from_anthropic(
    messages: Iterable[Mapping[str, Any]],
    system: str | Sequence[Mapping[str, Any]] | None = None,
    prefix: str = "msg-",
) -> list[Message]:
    """Anthropic Messages API turns (text, tool_use, tool_result blocks) → ours."""
    out: list[Message] = []
    if system:
        out.append(Message(id=f"{prefix}system", role="system", content=_text_of(system, "system")))
    for i, raw in enumerate(messages):
        where = f"message {i}"
        if not isinstance(raw, Mapping) or raw.get("role") not in ("user", "assistant"):
            raise InvalidMessageError(f"{where}: expected role 'user' or 'assistant'")
        mid = str(raw.get("id") or f"{prefix}{i}")
        content = raw.get("content")
        if isinstance(content, str):
            out.append(Message(id=mid, role=raw["role"], content=content, **_extras(raw)))
            continue
        if not isinstance(content, list):
            raise InvalidMessageError(f"{where}: content must be a string or a list of blocks")
        parts: list[Part] = []
        results: list[Message] = []
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "text":
                parts.append(TextPart(str(block.get("text", ""))))
            elif kind == "tool_use":
                parts.append(
                    ToolCallPart(
                        str(block["id"]),
                        str(block.get("name", "")),
                        json.dumps(block.get("input", {}), sort_keys=True),
                    )
                )
            elif kind == "tool_result":
                results.append(
                    Message(
                        id=f"{mid}.{j}" if len(content) > 1 else mid,
                        role="tool",
                        content=(
                            ToolResultPart(
                                str(block["tool_use_id"]),
                                _text_of(block.get("content"), where),
                                bool(block.get("is_error", False)),
                            ),
                        ),
                        tool_call_id=str(block["tool_use_id"]),
                    )
                )
            else:
                raise InvalidMessageError(f"{where}: unsupported content block {kind!r}")
        out.extend(results)
        if parts:
            only_text = all(isinstance(p, TextPart) for p in parts)
            body: str | tuple[Part, ...] = (
                "\n".join(p.text for p in parts if isinstance(p, TextPart))
                if only_text
                else tuple(parts)
            )
            out.append(
                Message(
                    id=f"{mid}.text" if results else mid,
                    role=raw["role"],
                    content=body,
                    **_extras(raw),
                )
            )
    return out


def _anthropic_blocks(m: Message) -> list[Json]:
    if isinstance(m.content, str):
        if m.role == "tool":
            return [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}]
        return [{"type": "text", "text": m.content}]
    blocks: list[Json] = []
    for p in m.content:
        if isinstance(p, TextPart):
            blocks.append({"type": "text", "text": p.text})
        elif isinstance(p, ToolCallPart):
            try:
                arguments = json.loads(p.arguments or "{}")
            except json.JSONDecodeError:
                arguments = {"_raw": p.arguments}
            blocks.append({"type": "tool_use", "id": p.id, "name": p.name, "input": arguments})
        else:
            block: Json = {
                "type": "tool_result",
                "tool_use_id": p.tool_call_id,
                "content": p.content,
            }
            if p.is_error:
                block["is_error"] = True
            blocks.append(block)
    return blocks


def to_anthropic(messages: Sequence[Message]) -> Json:
    """Our messages → `{"system": str | None, "messages": [...]}` for the Messages API."""
    system = [m.text for m in messages if m.role == "system" and not m.pinned]
    turns: list[Json] = []
    for m in messages:
        if m.role == "system" and not m.pinned:
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _anthropic_blocks(m)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return {"system": "\n\n".join(system) or None, "messages": turns}


def message_from_json(raw: Mapping[str, Any], where: str = "message") -> Message:
    """Our own JSON form (one JSONL line): id, role, content, optional component, pinned, ….

    `content` is a string or a list of parts: `{"type": "text", "text"}`, `{"type": "tool_call",
    "id", "name", "arguments"}`, `{"type": "tool_result", "tool_call_id", "content"}`. OpenAI's
    `tool_calls` field is accepted too.
    """
    if not isinstance(raw, Mapping):
        raise InvalidMessageError(f"{where}: expected a JSON object")
    missing = [k for k in ("id", "role", "content") if k not in raw]
    if missing:
        raise InvalidMessageError(f"{where}: missing field(s) {', '.join(missing)}")
    content = raw["content"]
    parts: list[Part] = []
    if isinstance(content, list):
        for block in content:
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "text":
                parts.append(TextPart(str(block.get("text", ""))))
            elif kind == "tool_call":
                arguments = block.get("arguments", "{}")
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, sort_keys=True)
                parts.append(ToolCallPart(str(block["id"]), str(block.get("name", "")), arguments))
            elif kind == "tool_result":
                parts.append(
                    ToolResultPart(
                        str(block["tool_call_id"]),
                        str(block.get("content", "")),
                        bool(block.get("is_error", False)),
                    )
                )
            else:
                raise InvalidMessageError(f"{where}: unsupported content part {kind!r}")
        content = tuple(parts)
    elif content is None:
        content = ""
    elif not isinstance(content, str):
        raise InvalidMessageError(f"{where}: content must be a string or a list of parts")
    calls = [
        ToolCallPart(
            str(c["id"]),
            str(c.get("function", {}).get("name", "")),
            str(c.get("function", {}).get("arguments", "{}")),
        )
        for c in raw.get("tool_calls") or []
    ]
    if calls:
        base = ((TextPart(content),) if content else ()) if isinstance(content, str) else content
        content = (*base, *calls)
    try:
        return Message(
            id=str(raw["id"]),
            role=raw["role"],
            content=content,
            component=Component(raw["component"]) if raw.get("component") else None,
            pinned=bool(raw.get("pinned", False)),
            tool_call_id=raw.get("tool_call_id"),
            name=raw.get("name"),
            timestamp=raw.get("timestamp"),
        )
    except ValueError as error:  # InvalidMessageError, or an unknown component name
        raise InvalidMessageError(f"{where}: {error}") from error


def message_to_json(message: Message) -> Json:
    """A message in our JSON form, with its token count and flags."""
    out: Json = {"id": message.id, "role": message.role}
    if isinstance(message.content, str):
        out["content"] = message.content
    else:
        out["content"] = [
            {"type": "text", "text": p.text}
            if isinstance(p, TextPart)
            else {"type": "tool_call", "id": p.id, "name": p.name, "arguments": p.arguments}
            if isinstance(p, ToolCallPart)
            else {
                "type": "tool_result",
                "tool_call_id": p.tool_call_id,
                "content": p.content,
                **({"is_error": True} if p.is_error else {}),
            }
            for p in message.content
        ]
    out["component"] = message.component.value
    for key in ("pinned", "truncated"):
        if getattr(message, key):
            out[key] = True
    for key in ("tool_call_id", "name", "timestamp", "token_count"):
        value = getattr(message, key)
        if value is not None:
            out[key] = value
    if message.summary_of:
        out["summary_of"] = list(message.summary_of)
    return out

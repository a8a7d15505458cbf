"""Messages, components and content parts: the vocabulary the whole product speaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from streams.errors import InvalidMessageError

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})


class Component(StrEnum):
    """The ledger's components. Fixed and protected ones are never pruned."""

    SYSTEM_PROMPT = "system_prompt"
    TOOL_SCHEMAS = "tool_schemas"
    PINNED = "pinned"
    HISTORY = "history"
    TOOL_RESULTS = "tool_results"
    RAG_CONTEXT = "rag_context"
    SCRATCHPAD = "scratchpad"

    @property
    def prunable(self) -> bool:
        """Whether the cascade may remove messages of this component."""
        return self in PRUNABLE

    @property
    def fixed(self) -> bool:
        """Fixed components are set when a session starts and checked against their share."""
        return self in FIXED


FIXED: frozenset[Component] = frozenset({Component.SYSTEM_PROMPT, Component.TOOL_SCHEMAS})
PROTECTED: frozenset[Component] = FIXED | {Component.PINNED}
PRUNABLE: frozenset[Component] = frozenset(Component) - PROTECTED


@dataclass(frozen=True, slots=True)
class TextPart:
    """Plain text inside a multi-part message."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A tool call an assistant made; `arguments` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """A tool's answer to the call `tool_call_id` (Anthropic puts these inside user turns)."""

    tool_call_id: str
    content: str
    is_error: bool = False


Part = TextPart | ToolCallPart | ToolResultPart
Content = str | tuple[Part, ...]


def _default_component(role: str, pinned: bool) -> Component:
    if role == "system":
        return Component.SYSTEM_PROMPT
    if pinned:
        return Component.PINNED
    if role == "tool":
        return Component.TOOL_RESULTS
    return Component.HISTORY


@dataclass(slots=True, eq=False)
class Message:
    """One conversation message with its ledger component and its cached token count.

    The count is filled in once by a counter (`token_count`, with `counted_by` naming the
    tokenizer and chat format that produced it) and reused on every later call; a message
    counted for another model is recounted. Pinned messages belong to the `pinned` component.
    """

    id: str
    role: Role
    content: Content
    component: Component = None  # type: ignore[assignment]  # derived from role when omitted
    pinned: bool = False
    tool_call_id: str | None = None
    name: str | None = None
    timestamp: float | None = None
    truncated: bool = False
    summary_of: tuple[str, ...] = ()
    token_count: int | None = None
    counted_by: str | None = None
    _text: str | None = field(default=None, repr=False)
    _features: dict[str, object] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidMessageError("a message needs a non-empty id")
        if self.role not in ROLES:
            raise InvalidMessageError(
                f"message {self.id!r}: unknown role {self.role!r} (expected one of "
                f"{', '.join(sorted(ROLES))})"
            )
        if isinstance(self.content, list):
            self.content = tuple(self.content)
        if not isinstance(self.content, str | tuple):
            raise InvalidMessageError(f"message {self.id!r}: content must be text or parts")
        if self.component is None:
            self.component = _default_component(self.role, self.pinned)
        else:
            self.component = Component(self.component)
            if self.pinned and self.component.prunable:
                self.component = Component.PINNED
        if self.component is Component.PINNED:
            self.pinned = True
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidMessageError(f"message {self.id!r}: a tool message needs tool_call_id")

    @property
    def text(self) -> str:
        """All human-readable text of the message (what the importance scorer reads)."""
        if self._text is None:
            self._text = content_text(self.content)
        return self._text

    @property
    def features(self) -> dict[str, object]:
        """Per-message cache of derived features (duplicate fingerprints, passages, terms).

        Like the token count, they are computed once when first needed and kept with the message,
        so per-turn work does not grow with the session.
        """
        if self._features is None:
            self._features = {}
        return self._features

    @property
    def tool_call_ids(self) -> tuple[str, ...]:
        """Ids of the tool calls this message makes."""
        if isinstance(self.content, str):
            return ()
        return tuple(p.id for p in self.content if isinstance(p, ToolCallPart))

    @property
    def answers(self) -> tuple[str, ...]:
        """Ids of the tool calls this message answers."""
        if isinstance(self.content, str):
            return (self.tool_call_id,) if self.tool_call_id else ()
        ids = [self.tool_call_id] if self.tool_call_id else []
        ids += [p.tool_call_id for p in self.content if isinstance(p, ToolResultPart)]
        return tuple(ids)

    def uncounted(self) -> Message:
        """A copy with no cached count or features (for a from-scratch recount)."""
        return self.replace_content(self.content, truncated=False)

    def replace_content(self, content: Content, *, truncated: bool) -> Message:
        """A copy with new content and no cached count."""
        return Message(
            id=self.id,
            role=self.role,
            content=content,
            component=self.component,
            pinned=self.pinned,
            tool_call_id=self.tool_call_id,
            name=self.name,
            timestamp=self.timestamp,
            truncated=truncated or self.truncated,
            summary_of=self.summary_of,
        )


def content_text(content: Content) -> str:
    """Flatten content to text: text parts, tool names with arguments, tool results."""
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    for part in content:
        if isinstance(part, TextPart):
            pieces.append(part.text)
        elif isinstance(part, ToolCallPart):
            pieces.append(f"{part.name}({part.arguments})")
        else:
            pieces.append(part.content)
    return "\n".join(pieces)

"""What `publish_turn` accepts: our `Message`, an OpenAI chat message or an Anthropic message.

Provider messages carry no id; one is made from the session and the event's seq, so a retried
publish of the same turn object gets a new id only if the agent publishes it again on purpose.
An Anthropic user turn with several `tool_result` blocks becomes one message per result, each
published as its own event, so every result pairs with its call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from streams.budget import Message, from_anthropic, from_openai
from streams.errors import InvalidMessageError

Format = Literal["auto", "openai", "anthropic"]
_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "image", "document", "thinking"})


def detect(raw: Mapping[str, Any]) -> Literal["openai", "anthropic"]:
    """Which provider format a message dict is in (plain text messages read the same in both)."""
    content = raw.get("content")
    if isinstance(content, list) and any(
        isinstance(block, Mapping) and block.get("type") in _ANTHROPIC_BLOCKS for block in content
    ):
        return "anthropic"
    return "openai"


def to_messages(
    turn: Message | Mapping[str, Any], prefix: str, fmt: Format = "auto"
) -> list[Message]:
    """One turn as our messages; ids default to `prefix` plus a counter."""
    if isinstance(turn, Message):
        return [turn]
    if not isinstance(turn, Mapping):
        raise InvalidMessageError(
            f"a turn is a Message or a chat message dict, got {type(turn).__name__}"
        )
    kind = detect(turn) if fmt == "auto" else fmt
    if kind == "anthropic":
        return from_anthropic([turn], prefix=prefix)
    return from_openai([turn], prefix=prefix)

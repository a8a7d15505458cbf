"""Hard limits on one message and on one session's length: the worker's defence against
hostile or broken agents, separate from the budget cascade (which keeps a session within its
context window, not within the worker's memory).

- `cut_message`: a message larger than the largest allowed is cut to fit and marked truncated
  (its id, role, name and tool calls kept; only text and tool-result text are cut);
- `oldest_unit`: which messages go first when a session holds more messages than allowed: the
  oldest unprotected one, together with the results of its tool calls.

Both cost O(size of the message) in the common case; see each for the exceptions.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from streams.budget.counting import MessageCounter
from streams.budget.model import Message, TextPart, ToolResultPart

TRUNCATION_MARKER = " … [truncated]"
"""Appended to the cut text, so the model (and a person reading the history) sees the cut."""


def cut_message(counter: MessageCounter, message: Message, max_tokens: int) -> Message | None:
    """A copy of `message` within `max_tokens` (counted, marked truncated), or None when not even
    its fixed parts fit (role, name, tool-call names and arguments, the marker).

    Text parts keep their order: the parts before the cut are kept whole, the part the room runs
    out in is cut, the text of the parts after it is emptied (tool calls and tool-result ids stay,
    so a tool call is never separated from its result).
    """
    if isinstance(message.content, str):
        return counter.truncate(message, max_tokens, TRUNCATION_MARKER)
    tokenizer = counter.tokenizer
    parts = message.content
    emptied = tuple(_with_text(part, "") for part in parts)
    fixed = counter.measure(message.replace_content(emptied, truncated=False))
    room = max_tokens - fixed - tokenizer.count(TRUNCATION_MARKER) - 1
    for _ in range(3):  # a cut text can count a token more than its pieces: tighten and retry
        if room <= 0:
            return None
        cut = message.replace_content(_cut_parts(counter, parts, room), truncated=True)
        over = counter.count(cut) - max_tokens
        if over <= 0:
            return cut
        room -= over
    return None


def _cut_parts(counter: MessageCounter, parts: tuple[Any, ...], room: int) -> tuple[Any, ...]:
    """The parts with their text cut to `room` tokens in all, the marker after the cut."""
    out: list[Any] = []
    marked = False
    for part in parts:
        text = _text(part)
        if text is None:
            out.append(part)
            continue
        if marked:  # past the cut
            out.append(_with_text(part, ""))
            continue
        tokens = counter.tokenizer.count(text)
        if tokens <= room:
            out.append(part)
            room -= tokens
            continue
        kept = counter.tokenizer.truncate(text, room) if room > 0 else ""
        out.append(_with_text(part, kept + TRUNCATION_MARKER))
        marked = True
    return tuple(out)


def _text(part: Any) -> str | None:
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, ToolResultPart):
        return part.content
    return None


def _with_text(part: Any, text: str) -> Any:
    if isinstance(part, TextPart):
        return TextPart(text)
    if isinstance(part, ToolResultPart):
        return ToolResultPart(part.tool_call_id, text, part.is_error)
    return part


def oldest_unit(messages: Mapping[str, Message]) -> list[str]:
    """Ids of the oldest droppable unit of a session, oldest first; [] when nothing can go.

    The unit is the oldest unprotected message, with every later message answering one of its
    tool calls. Protected messages (system prompt, tool schemas, pinned) are skipped, and so are
    results of their tool calls. Walks from the oldest message and usually stops within a few;
    it looks further only for the results of a tool call (to the end of the session when a call
    was never answered, once, since that call is then dropped).
    """
    held: set[str] = set()  # tool calls whose unit is protected: their results stay too
    for position, message in enumerate(messages.values()):
        if not message.component.prunable or held.intersection(message.answers):
            held.update(message.tool_call_ids)
            continue
        calls = set(message.tool_call_ids)
        unit = [message.id]
        protected = False
        if calls:
            for later in itertools.islice(messages.values(), position + 1, None):
                if calls.intersection(later.answers):
                    protected = protected or not later.component.prunable
                    unit.append(later.id)
        if not protected:
            return unit
        held.update(calls)
    return []

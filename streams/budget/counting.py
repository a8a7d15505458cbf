"""Token counting: the tokenizer port, chat-format overheads and the per-message counter.

Real tokenizers (tiktoken, Hugging Face `tokenizer.json`) live in `streams.adapters`; this module
holds what is pure: which model family a name belongs to, the documented per-message overheads,
the estimating tokenizer for models nobody can count exactly, and the counter that caches a
message's count on the message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from streams.budget.model import Message, TextPart, ToolCallPart, ToolResultPart


@runtime_checkable
class Tokenizer(Protocol):
    """Counts and truncates text for one encoding."""

    name: str
    exact: bool

    def count(self, text: str) -> int:
        """Number of tokens in `text`."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of `text` that is at most `max_tokens` tokens."""
        ...


@dataclass(frozen=True, slots=True)
class ChatFormat:
    """Tokens a chat API adds around content.

    OpenAI's documented values (the "How to count tokens" cookbook, gpt-3.5-turbo-0613 onwards,
    gpt-4 and gpt-4o): 3 tokens per message, 1 per `name`, 3 priming the reply. Tool calls and
    tool schemas are serialized by the provider in an undocumented way; we count their JSON plus a
    fixed overhead per call and per schema, which the cookbook measured at 3 and 7 (+12 once).
    """

    name: str = "openai"
    per_message: int = 3
    per_name: int = 1
    reply_priming: int = 3
    per_tool_call: int = 3
    per_tool_schema: int = 7
    tool_schemas_end: int = 12


OPENAI_CHAT = ChatFormat()
GENERIC_CHAT = ChatFormat(name="generic", per_message=4, per_name=1, reply_priming=3)

# Prefix → tiktoken encoding, longest prefix first; mirrors tiktoken.model (checked by a test).
_ENCODING_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the counter needs to know about a model name."""

    model: str
    family: str
    encoding: str | None
    chat_format: ChatFormat


def resolve_model(model: str) -> ModelSpec:
    """Map a model name to its family, tiktoken encoding (if any) and chat format."""
    name = model.strip().lower()
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    for prefix, encoding in _ENCODING_PREFIXES:
        if name.startswith(prefix):
            return ModelSpec(model, f"openai-{encoding.split('_')[0]}", encoding, OPENAI_CHAT)
    for marker, family in (("claude", "anthropic"), ("gemini", "google"), ("gemma", "google")):
        if marker in name:
            return ModelSpec(model, family, None, GENERIC_CHAT)
    return ModelSpec(model, "other", None, GENERIC_CHAT)


_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_+|\s+", re.UNICODE)


class EstimatingTokenizer:
    """Counts without a vocabulary, for models whose tokenizer is not available.

    BPE vocabularies split English words into about one token per four letters, digits into
    groups of up to three, and most punctuation into single tokens; non-ASCII text takes more.
    The result is flagged `estimated` and sessions get a larger safety margin. A per-model
    correction factor (learnt from billed usage) can scale it.
    """

    exact = False

    def __init__(self, factor: float = 1.0, name: str = "estimate") -> None:
        self.factor = factor
        self.name = name if factor == 1.0 else f"{name}*{factor:.4f}"

    def count(self, text: str) -> int:
        """Estimated token count of `text`."""
        return math.ceil(self._raw(text) * self.factor)

    def _raw(self, text: str) -> float:
        total = 0.0
        for piece in _PIECES.findall(text):
            first = piece[0]
            if first.isspace():
                total += 0.0 if len(piece) == 1 else len(piece) / 4
            elif first.isdigit():
                total += math.ceil(len(piece) / 3)
            elif first.isalpha():
                ascii_letters = piece.isascii()
                total += math.ceil(len(piece) / 4) if ascii_letters else len(piece) * 0.75
            else:
                total += 1
        return total

    def truncate(self, text: str, max_tokens: int) -> str:
        """Longest prefix whose estimate fits `max_tokens` (binary search on characters)."""
        if self.count(text) <= max_tokens:
            return text
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count(text[:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]


def schema_text(schema: Mapping[str, Any]) -> str:
    """Canonical JSON of a tool or structured-output schema, as counted."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class MessageCounter:
    """Counts messages for one model: content tokens plus the chat format's overheads.

    `count` caches the result on the message (`token_count`, `counted_by`), so a message entering
    a session is counted once however often the session is prepared.
    """

    def __init__(self, tokenizer: Tokenizer, chat_format: ChatFormat = OPENAI_CHAT) -> None:
        self.tokenizer = tokenizer
        self.chat_format = chat_format
        self.key = f"{tokenizer.name}/{chat_format.name}"

    @property
    def exact(self) -> bool:
        """True when counts are exact, False when they are estimates."""
        return self.tokenizer.exact

    def count(self, message: Message) -> int:
        """The message's tokens, computed once and cached on it."""
        if message.token_count is not None and message.counted_by == self.key:
            return message.token_count
        tokens = self.measure(message)
        message.token_count = tokens
        message.counted_by = self.key
        return tokens

    def measure(self, message: Message) -> int:
        """Count a message from scratch, ignoring any cached value."""
        fmt, tok = self.chat_format, self.tokenizer
        total = fmt.per_message + tok.count(message.role)
        if message.name:
            total += fmt.per_name + tok.count(message.name)
        content = message.content
        if isinstance(content, str):
            return total + tok.count(content)
        for part in content:
            if isinstance(part, TextPart):
                total += tok.count(part.text)
            elif isinstance(part, ToolCallPart):
                total += fmt.per_tool_call + tok.count(part.name) + tok.count(part.arguments)
            elif isinstance(part, ToolResultPart):
                total += fmt.per_tool_call + tok.count(part.content)
        return total

    def count_text(self, text: str) -> int:
        """Tokens of bare text, without message overhead."""
        return self.tokenizer.count(text)

    def count_tools(self, schemas: Sequence[Mapping[str, Any]]) -> int:
        """Tokens that tool / structured-output JSON schemas add to every request."""
        if not schemas:
            return 0
        fmt = self.chat_format
        body = sum(fmt.per_tool_schema + self.tokenizer.count(schema_text(s)) for s in schemas)
        return body + fmt.tool_schemas_end

    def truncate(self, message: Message, max_tokens: int, marker: str) -> Message | None:
        """A copy of a text message cut to at most `max_tokens` in total, marked truncated.

        Returns None when not even the overhead and the marker fit. Only the text is cut; for
        multi-part content the last text or tool-result part is shortened.
        """
        overhead = self.measure(message.replace_content("", truncated=False))
        room = max_tokens - overhead - self.tokenizer.count(marker) - 1
        if room <= 0:
            return None
        content = message.content
        if isinstance(content, str):
            cut = self.tokenizer.truncate(content, room) + marker
            new = message.replace_content(cut, truncated=True)
        else:
            new = self._truncate_parts(message, content, max_tokens, marker)
            if new is None:
                return None
        self.count(new)
        assert new.token_count is not None
        return new if new.token_count <= max_tokens else None

    def _truncate_parts(
        self, message: Message, parts: tuple[Any, ...], max_tokens: int, marker: str
    ) -> Message | None:
        for index in range(len(parts) - 1, -1, -1):
            part = parts[index]
            if not isinstance(part, TextPart | ToolResultPart):
                continue
            text = part.text if isinstance(part, TextPart) else part.content
            without = message.replace_content(parts[:index] + parts[index + 1 :], truncated=False)
            room = max_tokens - self.measure(without) - self.tokenizer.count(marker) - 4
            if room <= 0:
                return None
            cut = self.tokenizer.truncate(text, room) + marker
            new_part: Any = (
                TextPart(cut)
                if isinstance(part, TextPart)
                else ToolResultPart(part.tool_call_id, cut, part.is_error)
            )
            return message.replace_content(
                (*parts[:index], new_part, *parts[index + 1 :]), truncated=True
            )
        return None

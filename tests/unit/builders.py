"""Small deterministic conversations for unit tests."""

from __future__ import annotations

from streams.budget import Message, ToolCallPart


def conversation(turns: int, *, words: int = 40, tools: bool = True) -> list[Message]:
    """A system prompt and `turns` user/assistant(/tool) exchanges about numbered topics."""
    messages = [Message(id="sys", role="system", content="You are a careful research agent.")]
    for i in range(turns):
        body = " ".join(f"topic{i} detail{j}" for j in range(words // 2))
        messages.append(Message(id=f"u{i}", role="user", content=f"Question {i}: {body}"))
        if tools:
            messages.append(
                Message(
                    id=f"a{i}",
                    role="assistant",
                    content=(ToolCallPart(f"call{i}", "search", f'{{"q": "topic{i}"}}'),),
                )
            )
            messages.append(
                Message(
                    id=f"t{i}", role="tool", tool_call_id=f"call{i}", content=f"found {body} {i}"
                )
            )
        messages.append(Message(id=f"r{i}", role="assistant", content=f"Answer {i}: {body}"))
    return messages

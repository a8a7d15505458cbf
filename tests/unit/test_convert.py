"""OpenAI and Anthropic messages convert to ours and back without losing a tool pair."""

from __future__ import annotations

import pytest

from streams.budget import (
    Component,
    Message,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    from_anthropic,
    from_openai,
    to_anthropic,
    to_openai,
)
from streams.errors import InvalidMessageError

OPENAI = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C, cloudy"},
    {"role": "assistant", "content": "18C and cloudy."},
]

ANTHROPIC = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "tu_2", "name": "weather", "input": {"city": "Rome"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "tu_1", "content": "18C"},
            {
                "type": "tool_result",
                "tool_use_id": "tu_2",
                "content": [{"type": "text", "text": "25C"}],
                "is_error": False,
            },
        ],
    },
    {"role": "assistant", "content": [{"type": "text", "text": "Paris 18C, Rome 25C."}]},
]


def test_openai_messages_round_trip() -> None:
    ours = from_openai(OPENAI)
    assert [m.component for m in ours] == [
        Component.SYSTEM_PROMPT,
        Component.HISTORY,
        Component.HISTORY,
        Component.TOOL_RESULTS,
        Component.HISTORY,
    ]
    assert ours[2].tool_call_ids == ("call_1",)
    assert ours[3].answers == ("call_1",)
    assert to_openai(ours) == OPENAI


def test_anthropic_messages_round_trip_with_tool_results_split_per_call() -> None:
    ours = from_anthropic(ANTHROPIC, system="You are terse.")
    assert ours[0].role == "system"
    assistant = ours[2]
    assert assistant.tool_call_ids == ("tu_1", "tu_2")
    results = [m for m in ours if m.role == "tool"]
    assert [m.tool_call_id for m in results] == ["tu_1", "tu_2"]
    assert results[1].text == "25C"
    back = to_anthropic(ours)
    assert back["system"] == "You are terse."
    assert back["messages"][0] == {
        "role": "user",
        "content": [{"type": "text", "text": ANTHROPIC[0]["content"]}],
    }
    assert back["messages"][1] == ANTHROPIC[1]
    assert [b["tool_use_id"] for b in back["messages"][2]["content"]] == ["tu_1", "tu_2"]
    assert back["messages"][3] == ANTHROPIC[3]


def test_openai_to_anthropic_keeps_the_pair() -> None:
    back = to_anthropic(from_openai(OPENAI))
    roles = [m["role"] for m in back["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert back["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "weather",
        "input": {"city": "Paris"},
    }
    assert back["messages"][2]["content"][0]["tool_use_id"] == "call_1"


def test_anthropic_results_inside_our_messages_become_openai_tool_messages() -> None:
    message = Message(id="x", role="user", content=(ToolResultPart("c9", "done"),))
    assert to_openai([message]) == [{"role": "tool", "tool_call_id": "c9", "content": "done"}]


def test_pinned_and_component_hints_are_read() -> None:
    (message,) = from_openai([{"role": "user", "content": "Goal: ship", "pinned": True}])
    assert message.pinned and message.component is Component.PINNED
    (rag,) = from_openai([{"role": "user", "content": "doc", "component": "rag_context"}])
    assert rag.component is Component.RAG_CONTEXT


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ([{"content": "no role"}], "expected an object with a role"),
        ([{"role": "wizard", "content": "x"}], "unknown role 'wizard'"),
        ([{"role": "tool", "content": "x"}], "needs tool_call_id"),
        ([{"role": "user", "content": 42}], "content must be"),
    ],
)
def test_invalid_openai_messages_raise_clear_errors(raw: list, error: str) -> None:
    with pytest.raises(InvalidMessageError, match=error):
        from_openai(raw)


def test_invalid_anthropic_blocks_raise_clear_errors() -> None:
    with pytest.raises(InvalidMessageError, match="unsupported content block 'video'"):
        from_anthropic([{"role": "user", "content": [{"type": "video"}]}])
    with pytest.raises(InvalidMessageError, match="role 'user' or 'assistant'"):
        from_anthropic([{"role": "system", "content": "x"}])


def test_text_of_parts() -> None:
    message = Message(
        id="m",
        role="assistant",
        content=[TextPart("Searching."), ToolCallPart("c", "search", '{"q": "x"}')],
    )
    assert message.text == 'Searching.\nsearch({"q": "x"})'

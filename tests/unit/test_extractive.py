"""The extractive backend and the summarizer's answers, with the real local embedding model."""

from __future__ import annotations

import asyncio

import pytest

from streams.budget import Action, ActionKind, BudgetManager, Message, Rule
from streams.codecs import BudgetCommand, SummaryStatus
from streams.corpus import generate_conversation
from streams.summarizer.backend import SummarizerError, SummaryRequest, summary_tokens
from streams.summarizer.extractive import ExtractiveBackend, extract, sentences
from streams.summarizer.service import Summarizer

pytestmark = pytest.mark.slow
MANAGER = BudgetManager("gpt-4o", 128_000)


def segment(seed: int = 3, n: int = 24) -> list[Message]:
    conversation = generate_conversation(seed=seed, turns=40)
    messages = [m for m in conversation.messages if m.role != "system"][:n]
    for message in messages:
        MANAGER.count(message)
    return messages


def request(messages: list[Message], target: int, command_id: str = "s/9/0") -> SummaryRequest:
    return SummaryRequest(command_id, "s", 9, "gpt-4o", tuple(messages), target)


@pytest.mark.parametrize("ratio", [0.05, 0.25, 0.5])
def test_the_summary_fits_its_target_exactly_as_the_worker_counts_it(embedder, ratio) -> None:
    messages = segment()
    size = sum(m.token_count or 0 for m in messages)
    target = int(size * ratio)
    text = extract(messages, target, MANAGER.counter, embedder)
    tokens = summary_tokens(text, [m.id for m in messages], MANAGER.counter)
    assert target - 12 <= tokens <= target, (target, tokens)
    if ratio == 0.05:
        assert text == extract(messages, target, MANAGER.counter, embedder)  # deterministic


def test_numbers_names_and_decisions_survive_while_chatter_goes(embedder) -> None:
    chatter = [
        Message(id=f"c{i}", role="assistant", content=f"Let me think about this a bit more {i}.")
        for i in range(12)
    ]
    facts = [
        Message(id="f1", role="user", content="We decided to ship on Friday with Alice as owner."),
        Message(
            id="f2", role="tool", tool_call_id="x", name="billing", content="Quota is 4200 units."
        ),
    ]
    messages = chatter[:6] + facts + chatter[6:]
    for message in messages:
        MANAGER.count(message)
    text = extract(messages, 60, MANAGER.counter, embedder)
    assert "4200" in text and "Alice" in text
    assert text.index("Alice") < text.index("4200")  # original order
    assert "[billing] Quota is 4200 units." in text


def test_sentences_are_distinct_and_bounded() -> None:
    long = " ".join(f"w{i}" for i in range(500))
    messages = [
        Message(id="a", role="user", content="Same sentence here. Same sentence here.\n" + long),
    ]
    found = [s.text for s in sentences(messages)]
    assert found.count("[user] Same sentence here.") == 1
    assert all(len(s.split()) <= 61 for s in found)


def test_a_summarize_command_becomes_a_request_and_others_do_not() -> None:
    messages = segment(n=4)
    plan = Action(
        ActionKind.SUMMARIZE,
        Rule.SUMMARIZATION,
        tuple(m.id for m in messages),
        10,
        10,
        "why",
        target_tokens=50,
        segment=tuple(messages),
    )
    drop = Action(ActionKind.DROP, Rule.SLIDING_WINDOW, ("x",), 10, 5, "why")
    asked = SummaryRequest.of(BudgetCommand("s/3/0", "s", 3, plan, 0.0, "gpt-4.1"))
    assert asked is not None and asked.model == "gpt-4.1" and asked.target_tokens == 50
    assert (
        asked.summary_id == SummaryRequest.of(BudgetCommand("s/3/0", "s", 3, plan, 1.0)).summary_id
    )
    assert SummaryRequest.of(BudgetCommand("s/3/1", "s", 3, drop, 0.0)) is None


def test_the_summarizer_answers_once_per_command_and_reports_failures(embedder) -> None:
    messages = segment()
    summarizer = Summarizer(ExtractiveBackend(embedder), clock=lambda: 5.0)
    first = asyncio.run(summarizer.answer(request(messages, 200)))
    again = asyncio.run(summarizer.answer(request(messages, 200)))
    assert first is again and first.status is SummaryStatus.OK
    assert first.token_count == summary_tokens(first.summary, first.replaces, MANAGER.counter)
    assert first.token_count <= 200 and first.backend == "extractive"

    class Broken:
        name = "broken"

        async def summarize(self, request, counter) -> str:
            raise SummarizerError("endpoint answered 503 three times", retriable=True)

    failed = asyncio.run(Summarizer(Broken()).answer(request(messages, 200, "s/10/0")))
    assert failed.status is SummaryStatus.FAILED and "503" in (failed.error or "")


def test_an_overshooting_backend_is_trimmed_to_the_target(embedder) -> None:
    class Verbose:
        name = "verbose"

        async def summarize(self, request, counter) -> str:
            return "word " * 5000

    answer = asyncio.run(Summarizer(Verbose()).answer(request(segment(), 120)))
    assert answer.status is SummaryStatus.OK and answer.token_count <= 120

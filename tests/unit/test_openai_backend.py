"""The OpenAI-compatible summarizer backend against a real local chat completions server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from pydantic import SecretStr

from streams.budget import BudgetManager, Message, MessageCounter, ToolCallPart
from streams.settings import Settings
from streams.summarizer.backend import SummarizerError, SummaryRequest, fit_summary, summary_tokens
from streams.summarizer.openai import OpenAIBackend
from streams.testing import (
    ChatCompletionsServer,
    Delay,
    Disconnect,
    Malformed,
    MissingChoices,
    Reply,
    Status,
)

KEY = "sk-test-SECRET123"
TARGET = 60

Backend = Callable[..., OpenAIBackend]


@pytest.fixture
def server() -> Iterator[ChatCompletionsServer]:
    with ChatCompletionsServer() as server:
        yield server


@pytest.fixture(scope="module")
def counter() -> MessageCounter:
    return BudgetManager("gpt-4o", 8000).counter


@pytest.fixture
async def backend(server: ChatCompletionsServer) -> AsyncIterator[Backend]:
    """Build backends on the local server (fast backoff); all are closed after the test."""
    made: list[OpenAIBackend] = []

    def make(**overrides: object) -> OpenAIBackend:
        options: dict[str, object] = {
            "api_key": SecretStr(KEY),
            "timeout": 1.0,
            "retries": 3,
            "backoff": 0.01,
        }
        options.update(overrides)
        made.append(OpenAIBackend(server.base_url, "summarizer-1", **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for each in made:
        await each.aclose()


def request(target: int = TARGET) -> SummaryRequest:
    segment = (
        Message(id="u1", role="user", content="Deploy build 4812 to staging-eu; owner is Priya."),
        Message(
            id="a1",
            role="assistant",
            content=(ToolCallPart("call-7", "kubectl", '{"args": "rollout status web"}'),),
        ),
        Message(
            id="t1",
            role="tool",
            tool_call_id="call-7",
            name="kubectl",
            content="deployment web rolled out: 3/3 replicas ready",
        ),
        Message(id="a2", role="assistant", content="Rolled out. Open question: run migrations?"),
    )
    return SummaryRequest("cmd-1", "session-1", 7, "gpt-4o", segment, target)


async def test_success_returns_the_reply_and_sends_a_complete_request(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    server.script("  - build 4812 deployed to staging-eu\n- migrations undecided  \n")
    text = await backend().summarize(request(), counter)

    assert text == "- build 4812 deployed to staging-eu\n- migrations undecided"
    [seen] = server.requests
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == f"Bearer {KEY}"
    body = seen["json"]
    assert body["model"] == "summarizer-1"
    assert body["temperature"] == 0
    assert body["max_tokens"] == TARGET
    system, user = body["messages"]
    assert system["role"] == "system"
    room = TARGET - summary_tokens("", request().replaces, counter)
    assert f"at most {room} tokens" in system["content"]
    assert user["role"] == "user"
    for message in request().segment:
        assert message.text in user["content"]
    assert 'role="tool" name="kubectl"' in user["content"]

    fitted, tokens = fit_summary(text, request(), counter)
    assert fitted == text
    assert tokens <= TARGET


async def test_default_reply_of_the_fake_is_built_from_the_segment(
    backend: Backend, counter: MessageCounter
) -> None:
    text = await backend().summarize(request(), counter)
    assert "Deploy build 4812 to staging-eu" in text


async def test_no_authorization_header_without_a_key(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    await backend(api_key=None).summarize(request(), counter)
    assert "authorization" not in server.requests[0]["headers"]


async def test_server_errors_are_retried_until_an_answer(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    server.script(500, 503, "- recovered")
    assert await backend().summarize(request(), counter) == "- recovered"
    assert len(server.requests) == 3


async def test_rate_limit_is_retried(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    server.script(429, "- after the rate limit")
    assert await backend().summarize(request(), counter) == "- after the rate limit"
    assert len(server.requests) == 2


async def test_persistent_server_errors_fail_retriably_after_every_attempt(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    server.script(*[500] * 10)
    with pytest.raises(SummarizerError) as failure:
        await backend(retries=2).summarize(request(), counter)
    assert failure.value.retriable is True
    assert "HTTP 500" in str(failure.value)
    assert "3 attempt" in str(failure.value)
    assert len(server.requests) == 3


async def test_a_slow_answer_times_out_and_the_retry_succeeds(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    server.script(Delay(2.0, Reply("- too late")), "- in time")
    assert await backend(timeout=0.2).summarize(request(), counter) == "- in time"
    assert len(server.requests) == 2


async def test_persistent_timeouts_fail_naming_the_timeout(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    server.script(Delay(2.0), Delay(2.0))
    with pytest.raises(SummarizerError) as failure:
        await backend(timeout=0.2, retries=1).summarize(request(), counter)
    assert failure.value.retriable is True
    assert "timed out after 0.2 s" in str(failure.value)
    assert "2 attempt" in str(failure.value)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (Malformed(), "body is not JSON"),
        (MissingChoices(), "no choices[0].message.content"),
        (Reply("   "), "empty content"),
    ],
)
async def test_malformed_answers_are_retried(
    server: ChatCompletionsServer,
    backend: Backend,
    counter: MessageCounter,
    bad: Malformed | MissingChoices | Reply,
    says: str,
) -> None:
    server.script(bad, "- fine")
    assert await backend().summarize(request(), counter) == "- fine"
    assert len(server.requests) == 2

    server.script(bad, bad)
    with pytest.raises(SummarizerError) as failure:
        await backend(retries=1).summarize(request(), counter)
    assert failure.value.retriable is True
    assert f"malformed response: {says}" in str(failure.value)


async def test_a_dropped_connection_is_retried(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    server.script(Disconnect(), "- reconnected")
    assert await backend().summarize(request(), counter) == "- reconnected"
    assert len(server.requests) == 2


async def test_an_unreachable_server_fails_retriably(counter: MessageCounter) -> None:
    with ChatCompletionsServer() as gone:
        base_url = gone.base_url
    async with OpenAIBackend(base_url, "m", retries=1, backoff=0.01) as backend:
        with pytest.raises(SummarizerError) as failure:
            await backend.summarize(request(), counter)
    assert failure.value.retriable is True
    assert "connection failed" in str(failure.value)


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_errors_fail_at_once_and_are_not_retriable(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter, status: int
) -> None:
    server.script(Status(status, "no such thing"), "- never asked for")
    with pytest.raises(SummarizerError) as failure:
        await backend().summarize(request(), counter)
    assert failure.value.retriable is False
    assert f"HTTP {status}: no such thing" in str(failure.value)
    assert len(server.requests) == 1


async def test_the_api_key_never_leaks(
    server: ChatCompletionsServer,
    backend: Backend,
    counter: MessageCounter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(500, Delay(2.0), Malformed(), Status(401, f"Incorrect API key provided: {KEY}"))
    made = backend(timeout=0.2)
    with pytest.raises(SummarizerError) as failure:
        await made.summarize(request(), counter)

    assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"  # it was sent
    assert len(caplog.records) >= 4  # one warning per failed attempt, at least
    assert KEY not in caplog.text
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in str(failure.value)
    assert "[redacted]" in str(failure.value)
    assert KEY not in repr(made)
    assert "SECRET" not in repr(made)


async def test_settings_build_the_backend(
    server: ChatCompletionsServer, counter: MessageCounter
) -> None:
    settings = Settings(
        openai_base_url=server.base_url + "/",
        openai_model="local-model",
        openai_api_key=SecretStr(KEY),
        openai_timeout=2.0,
        openai_retries=0,
    )
    async with OpenAIBackend.from_settings(settings) as backend:
        assert backend.name == "openai:local-model"
        assert KEY not in repr(backend)
        server.script("- from settings")
        assert await backend.summarize(request(), counter) == "- from settings"
    assert server.requests[0]["json"]["model"] == "local-model"


async def test_an_overshooting_reply_is_trimmed_to_the_target(
    server: ChatCompletionsServer, backend: Backend, counter: MessageCounter
) -> None:
    long = "\n".join(
        f"- fact {i}: build 4812 replica {i} is ready on staging-eu" for i in range(80)
    )
    server.script(long)
    text = await backend().summarize(request(), counter)
    assert text == long  # the backend does not trim; the caller does

    fitted, tokens = fit_summary(text, request(), counter)
    assert tokens <= TARGET
    assert fitted != text
    assert fitted.startswith("- fact 0: build 4812")

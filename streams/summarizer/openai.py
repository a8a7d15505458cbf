"""The summarizer backend for any OpenAI-compatible chat completions endpoint.

OpenAI, vLLM, Ollama and LiteLLM all serve `POST {base_url}/chat/completions`. Transient failures
(5xx, 429, timeouts, dropped connections, answers without text) are retried with exponential
backoff; a request the server refuses (other 4xx) fails at once, since repeating it cannot help.
The API key goes only into the Authorization header: never into logs, errors or reprs.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx
from pydantic import SecretStr

from streams.budget import Message, MessageCounter
from streams.summarizer.backend import SummarizerError, SummaryRequest, summary_tokens

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger("tokenbudget.summarizer")

SYSTEM_PROMPT = """\
You summarize a segment of a conversation between a user, an AI agent and its tools. The agent \
will continue its task from your summary alone, in place of this segment, so keep everything it \
needs: decisions made, facts, numbers, names, identifiers (ids, paths, URLs, commands), open \
questions, and progress on the task (what is done, what remains). Write terse bullet points. No \
preamble, no closing remarks. Use at most {tokens} tokens."""

_ERROR_DETAIL_CHARS = 200


class _AttemptFailed(Exception):
    """One attempt failed in a way that trying again may fix; the text says how."""


class _Refused(Exception):
    """The request itself is wrong (4xx other than 429, bad URL): repeating it cannot help."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(reason)


def transcript(segment: tuple[Message, ...]) -> str:
    """The segment as the user message: one block per message with its role and tool name."""
    blocks = [f"Conversation segment to summarize ({len(segment)} messages):"]
    for message in segment:
        name = f' name="{message.name}"' if message.name else ""
        blocks.append(f'<message role="{message.role}"{name}>\n{message.text}\n</message>')
    return "\n\n".join(blocks)


class OpenAIBackend:
    """Summarizes with a chat model behind an OpenAI-compatible chat completions API."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._api_key = api_key if api_key and api_key.get_secret_value() else None
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIBackend:
        """The backend the `TOKENBUDGET_OPENAI_*` settings describe."""
        return cls(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            timeout=settings.openai_timeout,
            retries=settings.openai_retries,
        )

    def __repr__(self) -> str:
        key = "none" if self._api_key is None else "set"
        return (
            f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key=<{key}>, "
            f"timeout={self.timeout}, retries={self.retries})"
        )

    async def summarize(self, request: SummaryRequest, counter: MessageCounter) -> str:
        """Summary text for the segment, stripped; `fit_summary` trims any overshoot."""
        payload = self.payload(request, counter)
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                return await self._attempt(payload)
            except _AttemptFailed as failure:
                last = str(failure)
                self._warn(request, attempt, attempts, last)
            except _Refused as refusal:
                self._warn(request, attempt, attempts, f"{refusal.reason}, not retried")
                raise SummarizerError(
                    f"{self.name}: {refusal.reason}{refusal.detail} (not retried)",
                    retriable=False,
                ) from refusal
        raise SummarizerError(
            f"{self.name}: no summary after {attempts} attempt(s); last: {last}", retriable=True
        )

    def _warn(self, request: SummaryRequest, attempt: int, attempts: int, reason: str) -> None:
        log.warning(
            "%s: attempt %d of %d for command %s failed: %s",
            self.name,
            attempt + 1,
            attempts,
            request.command_id,
            reason,
        )

    def payload(self, request: SummaryRequest, counter: MessageCounter) -> dict[str, Any]:
        """The chat completions request body for `request`."""
        room = request.target_tokens - summary_tokens("", request.replaces, counter)
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT.format(tokens=max(room, 1))},
                {"role": "user", "content": transcript(request.segment)},
            ],
            "temperature": 0,
            "max_tokens": request.target_tokens,
        }

    async def _attempt(self, payload: dict[str, Any]) -> str:
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(self.url, json=payload, headers=headers)
        except (TimeoutError, httpx.TimeoutException) as error:
            raise _AttemptFailed(f"timed out after {self.timeout:g} s") from error
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            raise _Refused("bad URL", f": {error}") from error
        except httpx.TransportError as error:
            kind = type(error).__name__
            raise _AttemptFailed(f"connection failed ({kind}: {error})") from error
        status = response.status_code
        if status == 429 or status >= 500:
            raise _AttemptFailed(f"HTTP {status}")
        if status >= 300:  # a redirect means a wrong base URL, as much as a 4xx does
            raise _Refused(f"HTTP {status}", self._error_detail(response))
        return _content(response)

    def _error_detail(self, response: httpx.Response) -> str:
        """The provider's error message, short and with the key scrubbed (some providers echo
        part of a rejected key)."""
        try:
            error = response.json().get("error")
            message = error.get("message") if isinstance(error, dict) else error
        except (ValueError, AttributeError):
            return ""
        if not isinstance(message, str) or not message:
            return ""
        if self._api_key is not None:
            message = message.replace(self._api_key.get_secret_value(), "[redacted]")
        return f": {message[:_ERROR_DETAIL_CHARS]}"

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _content(response: httpx.Response) -> str:
    """The assistant's text of a 200 answer; an answer without text may be retried."""
    try:
        body = response.json()
    except ValueError as error:
        raise _AttemptFailed("malformed response: body is not JSON") from error
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise _AttemptFailed("malformed response: no choices[0].message.content") from error
    if not isinstance(content, str) or not content.strip():
        raise _AttemptFailed("malformed response: empty content")
    return content.strip()

"""Honest test doubles shipped with the package, so tests exercise real I/O instead of mocks.

`ChatCompletionsServer` is a real HTTP server on 127.0.0.1 that speaks the OpenAI chat completions
API. Tests script what it answers (`Reply`, `Status`, `Delay`, `Malformed`, `MissingChoices`,
`Disconnect`) and read back every request it received, so a client's retries, timeouts, headers
and prompts are checked over a real socket.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypedDict

log = logging.getLogger("tokenbudget.testing")

DEFAULT_MAX_TOKENS = 256
"""Words in the default reply when a request sets no `max_tokens`."""

_MARKUP = re.compile(r"</?[A-Za-z][^<>]*>")


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer 200 with `text` as the assistant's content."""

    text: str


@dataclass(frozen=True, slots=True)
class Status:
    """Answer with HTTP status `code` and an OpenAI-shaped error body."""

    code: int
    message: str = "scripted error"


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait `seconds` (cut short when the server closes), then answer with `then`."""

    seconds: float
    then: Step | None = None


@dataclass(frozen=True, slots=True)
class Malformed:
    """Answer 200 with a body that is not valid JSON."""

    body: str = '{"choices": [{"message": '


@dataclass(frozen=True, slots=True)
class MissingChoices:
    """Answer 200 with valid JSON that has no `choices`."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection without sending any response."""


Step = Reply | Status | Delay | Malformed | MissingChoices | Disconnect
"""What the server does with one request."""


class RecordedRequest(TypedDict):
    """One request as the server received it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


def as_step(step: Step | str | int) -> Step:
    """A step from its shorthand: text is a `Reply`, an integer a `Status`."""
    if isinstance(step, str):
        return Reply(step)
    if isinstance(step, int):
        return Status(step)
    return step


def default_reply(body: Any) -> str:
    """Deterministic extractive reply: leading lines of the last user message as bullets (lines
    that are only a markup tag skipped), at most `max_tokens` words."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    text = content if isinstance(content, str) else ""
    budget = body.get("max_tokens") if isinstance(body, dict) else None
    room = budget if isinstance(budget, int) and budget > 0 else DEFAULT_MAX_TOKENS
    bullets: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or _MARKUP.fullmatch(line.strip()):
            continue
        words = words[:room]
        room -= len(words)
        bullets.append("- " + " ".join(words))
        if room <= 0:
            break
    return "\n".join(bullets) or "- (nothing to summarize)"


def completion(text: str, model: str, number: int, prompt_words: int) -> dict[str, Any]:
    """A chat completion response body in the OpenAI shape."""
    completion_words = len(text.split())
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": completion_words,
            "total_tokens": prompt_words + completion_words,
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10.0  # a silent client cannot hold a handler thread forever

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fake = self.server.fake
        fake._record(
            RecordedRequest(
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                json=body,
            )
        )
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "404"}})
            return
        if not isinstance(body, dict):
            self._send_json(400, {"error": {"message": "body is not a JSON object"}})
            return
        self._perform(fake._next_step(), body)

    def _perform(self, step: Step | None, body: dict[str, Any]) -> None:
        fake = self.server.fake
        match step:
            case None:
                self._send_completion(default_reply(body), body)
            case Reply(text):
                self._send_completion(text, body)
            case Status(code, message):
                error = {"message": message, "type": "scripted", "code": code}
                self._send_json(code, {"error": error})
            case Delay(seconds, then):
                if fake._closing.wait(seconds):
                    return  # closing: drop the request instead of holding up shutdown
                self._perform(then, body)
            case Malformed(text):
                self._send(200, text.encode())
            case MissingChoices():
                self._send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion"})
            case Disconnect():
                self.close_connection = True

    def _send_completion(self, text: str, body: dict[str, Any]) -> None:
        number = self.server.fake._numbers()
        prompt_words = sum(
            len(str(m.get("content", "")).split())
            for m in body.get("messages", [])
            if isinstance(m, dict)
        )
        model = str(body.get("model", "fake-model"))
        self._send_json(200, completion(text, model, number, prompt_words))

    def _send_json(self, code: int, payload: Any) -> None:
        self._send(code, json.dumps(payload).encode())

    def _send(self, code: int, data: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing left to answer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("chat completions fake: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: ChatCompletionsServer


class ChatCompletionsServer:
    """A real local OpenAI-compatible chat completions endpoint with scripted answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: deque[Step] = deque()
        self._requests: list[RecordedRequest] = []
        self._closing = threading.Event()
        self._numbers = itertools.count(1).__next__
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The URL clients use as their base URL, `http://127.0.0.1:PORT/v1`."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def script(self, *steps: Step | str | int) -> None:
        """Queue what the next requests get, one step per request; then the default reply."""
        with self._lock:
            self._steps.extend(as_step(s) for s in steps)

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._closing.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="chat-completions-fake",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; scripted delays still running are cut short."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_step(self) -> Step | None:
        with self._lock:
            return self._steps.popleft() if self._steps else None


class ReferenceBilling:
    """A provider's billing for models we can only estimate, with a real tokenizer in its place.

    Nobody can count Claude or Gemini tokens offline, so tests and the calibration benchmark
    bill prompts with tiktoken's `o200k_base` and the OpenAI chat format's overheads: a
    tokenizer that really differs from our estimate, which calibration must learn to match.
    """

    def __init__(self, reference_model: str = "gpt-4o") -> None:
        from streams.budget import BudgetManager

        self.manager = BudgetManager(reference_model, 10**9)

    def prompt_tokens(self, messages: Any) -> int:
        """What the provider would bill for a prompt of these messages."""
        return self.manager.ledger([m.uncounted() for m in messages]).total

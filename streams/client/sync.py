"""`SyncBudgetClient`: the same client for agents that are not async.

It runs a `BudgetClient` on an event loop of its own, in a background thread, and waits for each
call's result; every method has the async client's meaning and signature.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from streams.budget import Component, Message, Policy
from streams.client.client import DEFAULT_TIMEOUT, BudgetClient
from streams.client.messages import Format
from streams.client.mirror import Context

T = TypeVar("T")


class SyncBudgetClient:
    """A blocking `BudgetClient`; use it as a context manager (`with SyncBudgetClient(...)`)."""

    def __init__(self, bootstrap_servers: str = "127.0.0.1:9092", **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tokenbudget-client", daemon=True
        )
        self._thread.start()
        self._client = self._call(_build(bootstrap_servers, options))

    def __enter__(self) -> SyncBudgetClient:
        self._call(self._client.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush, disconnect and stop the background loop."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start_session(
        self,
        session_id: str,
        *,
        model: str,
        context_limit: int,
        system_prompt: str = "",
        tools: Sequence[Mapping[str, Any]] = (),
        policy: Policy | Mapping[str, Any] | None = None,
        task: str | None = None,
        strategy: str | None = None,
    ) -> None:
        """See `BudgetClient.start_session`."""
        self._call(
            self._client.start_session(
                session_id,
                model=model,
                context_limit=context_limit,
                system_prompt=system_prompt,
                tools=tools,
                policy=policy,
                task=task,
                strategy=strategy,
            )
        )

    def publish_turn(
        self, session_id: str, message: Message | Mapping[str, Any], *, format: Format = "auto"
    ) -> list[Message]:
        """See `BudgetClient.publish_turn`."""
        return self._call(self._client.publish_turn(session_id, message, format=format))

    def update_task(self, session_id: str, task: str) -> None:
        """See `BudgetClient.update_task`."""
        self._call(self._client.update_task(session_id, task))

    def context(self, session_id: str, timeout: float = DEFAULT_TIMEOUT) -> Context:
        """See `BudgetClient.context`."""
        return self._call(self._client.context(session_id, timeout))

    def headroom(self, session_id: str, component: Component | str = "tool_results") -> int:
        """See `BudgetClient.headroom`."""
        return self._client.headroom(session_id, component)

    def report_usage(
        self, session_id: str, *, prompt_tokens: int, completion_tokens: int = 0
    ) -> None:
        """See `BudgetClient.report_usage`."""
        self._call(
            self._client.report_usage(
                session_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        )

    def end_session(self, session_id: str, reason: str | None = None) -> None:
        """See `BudgetClient.end_session`."""
        self._call(self._client.end_session(session_id, reason))


async def _build(bootstrap_servers: str, options: dict[str, Any]) -> BudgetClient:
    """The async client, created on the background loop (its asyncio objects belong there)."""
    return BudgetClient(bootstrap_servers, **options)

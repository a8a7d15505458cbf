"""A TCP proxy in front of the embedded broker that can be cut and restored: a broker outage
without losing the broker's in-memory data.

Tansu keeps topics, offsets and committed group offsets in memory, so restarting it would also
wipe everything the outage is meant to test recovery from. Instead Tansu advertises this
proxy's address (`EmbeddedBroker(advertised=proxy.bootstrap)`), every client connection goes
through it, and `cut()` makes the broker unreachable: open connections are reset, and so is
every new one (counted in `refused`: how often the clients tried meanwhile) until `restore()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import Self

from streams.broker import free_port


class OutageProxy:
    """Loopback TCP proxy to `target` (host:port) on its own event-loop thread."""

    def __init__(self, target: str, port: int | None = None) -> None:
        host, _, target_port = target.rpartition(":")
        self.target = (host, int(target_port))
        self.port = port or free_port()
        self.connections = 0
        self.refused = 0
        self.down = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def bootstrap(self) -> str:
        """The address clients use: "127.0.0.1:PORT"."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start the loop thread and listen."""
        self._thread.start()
        self._call(self._listen())
        return self

    def restore(self) -> None:
        """Pass connections through again: the broker is reachable."""
        self.down = False

    def cut(self) -> None:
        """Reset every open connection and each new one: the broker is unreachable."""
        self._call(self._cut())

    def stop(self) -> None:
        """Stop listening, reset everything, end the loop thread."""
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        with contextlib.suppress(concurrent.futures.TimeoutError):
            future.result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        self.down = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._cut()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            writer.transport.abort()
            return
        self.connections += 1
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, upstream}
        try:
            await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
        finally:
            for w in (writer, upstream):
                self._open.discard(w)
                w.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes until either side closes."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()

"""Waiting for a Kafka broker that is not reachable yet: retry with backoff, and say so once.

A worker or a summarizer started before its broker (a compose file bringing everything up at
once, a broker being restarted) waits instead of exiting. The log gets one WARNING when the
broker is found unreachable and one INFO when it answers again, however long the wait: an
operator sees the state changes, not a line per attempt. Errors that retrying cannot fix (a
refused TLS or SASL login, an invalid topic) are raised at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

log = logging.getLogger("tokenbudget.broker")
FIRST_DELAY = 0.5
MAX_DELAY = 10.0


class BrokerWait:
    """Backoff and state-change logging for one broker address (pure: no I/O of its own)."""

    def __init__(
        self,
        bootstrap: str,
        logger: logging.Logger = log,
        first: float = FIRST_DELAY,
        maximum: float = MAX_DELAY,
    ) -> None:
        self.bootstrap = bootstrap
        self.logger = logger
        self.first = first
        self.maximum = maximum
        self.delay = first
        self.attempts = 0
        self.down_since: float | None = None

    def unreachable(self, error: BaseException) -> float:
        """An attempt failed: log it if this is news, and return how long to wait."""
        self.attempts += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.logger.warning(
                "broker %s unreachable (%s); retrying with backoff (up to %.0f s between "
                "attempts) until it answers",
                self.bootstrap,
                _first_line(error),
                self.maximum,
            )
        delay, self.delay = self.delay, min(self.delay * 2, self.maximum)
        self.logger.debug(
            "broker %s: attempt %d failed; next in %.1f s", self.bootstrap, self.attempts, delay
        )
        return delay

    def reachable(self) -> None:
        """An attempt succeeded: log it if the broker was unreachable before."""
        if self.down_since is not None:
            self.logger.info(
                "broker %s reachable again after %.1f s (%d attempts)",
                self.bootstrap,
                time.monotonic() - self.down_since,
                self.attempts,
            )
        self.down_since, self.delay, self.attempts = None, self.first, 0


def retriable(error: BaseException) -> bool:
    """Whether waiting may fix it: aiokafka's own `retriable` flag, or a refused connection."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return bool(getattr(error, "retriable", False))


async def create_topics_when_reachable(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    *,
    options: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
    wait: BrokerWait | None = None,
) -> bool:
    """Create the topics (existing ones are fine), waiting for the broker with backoff.

    Returns False when `stop` was set before the broker answered.
    """
    from streams.broker import create_topics_async

    names = list(names)
    wait = wait or BrokerWait(bootstrap)
    stop = stop or asyncio.Event()
    with quiet_connection_errors():
        while not stop.is_set():
            try:
                await create_topics_async(bootstrap, names, partitions, options=options)
            except Exception as error:
                if not retriable(error):
                    raise
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait.unreachable(error))
                continue
            wait.reachable()
            return True
    return False


class _ConnectionErrors(logging.Filter):
    """Drops aiokafka's per-attempt connection errors (`BrokerWait` logs the state change)."""

    PREFIXES = ("Unable connect to", "Unable to request metadata")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


@contextlib.contextmanager
def quiet_connection_errors() -> Iterator[None]:
    """While waiting for a broker, aiokafka's "Unable connect to …" lines (one per attempt)
    are left out of the log."""
    logger, quiet = logging.getLogger("aiokafka"), _ConnectionErrors()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def wait_for_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    *,
    options: Mapping[str, Any] | None = None,
) -> bool:
    """Blocking `create_topics_when_reachable` for a process's start, before its event loop.

    SIGTERM or Ctrl-C while waiting returns False (the caller exits 0: nothing to clean up).
    Logs to stderr when logging is not configured yet (Faust sets it up later).
    """

    async def main() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await create_topics_when_reachable(
            bootstrap, names, partitions, options=options, stop=stop
        )

    handler: logging.Handler | None = None
    level = log.level
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        return asyncio.run(main())
    finally:
        if handler is not None:
            log.removeHandler(handler)
            log.setLevel(level)


def _first_line(error: BaseException) -> str:
    """The error's first line, for a one-line log record."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


CONNECTION_ERRORS = (
    "Unable connect to",
    "Unable to update metadata",
    "Unable to request metadata",
    "Failed fetch messages from",
    "Group Coordinator Request failed",
    "Error sending OffsetCommitRequest",
    "Marking the coordinator dead",
    "NodeNotReadyError",
    "KafkaConnectionError",
)
"""What aiokafka logs, once per attempt (every ~100 ms per client), while a broker is away."""


class OutageLog(logging.Filter):
    """Collapses aiokafka's per-attempt connection errors during a broker outage into two lines.

    The first connection error logs one WARNING (broker unreachable, the clients retry on their
    own) and every further one is left out; once none has come for `quiet` seconds, `check()`
    logs one INFO (reachable again, how long, how many errors were left out). aiokafka keeps
    fetching and heartbeating while the broker is away, so silence means its connections work.
    Thread-safe: Faust's consumer logs from its own thread.
    """

    def __init__(
        self,
        bootstrap: str,
        logger: logging.Logger = log,
        quiet: float = 2.0,
        clock: Any = time.monotonic,
    ) -> None:
        super().__init__()
        self.bootstrap = bootstrap
        self.logger = logger
        self.quiet = quiet
        self.clock = clock
        self.down_since: float | None = None
        self.last_error = 0.0
        self.left_out = 0
        self.outages = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """False (leave out) for a connection error; log the state change on the first one."""
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if not any(marker in text for marker in CONNECTION_ERRORS):
            return True
        with self._lock:
            self.last_error = now = self.clock()
            first = self.down_since is None
            if first:
                self.down_since, self.left_out = now, 0
                self.outages += 1
            self.left_out += 1
        if first:
            self.logger.warning(
                "broker %s unreachable (%s); the Kafka clients retry on their own, and their "
                "connection errors are left out of the log until it answers again",
                self.bootstrap,
                text.strip().splitlines()[0] if text.strip() else record.name,
            )
        return False

    def check(self) -> None:
        """Log "reachable again" once no connection error has come for `quiet` seconds."""
        with self._lock:
            if self.down_since is None or self.clock() - self.last_error < self.quiet:
                return
            lasted, left_out = self.last_error - self.down_since, self.left_out
            self.down_since = None
        self.logger.info(
            "broker %s reachable again (no connection error for %.0f s; errors for %.1f s, "
            "%d lines left out)",
            self.bootstrap,
            self.quiet,
            lasted,
            left_out,
        )


_INSTALLED: list[OutageLog] = []


def install_outage_log(bootstrap: str, quiet: float = 2.0) -> OutageLog:
    """Put an `OutageLog` on every aiokafka logger and check it every second (daemon thread).

    Once per process: aiokafka's log lines do not say which client wrote them, so a later call
    (another client, maybe of another cluster) adds its address to the one filter's name.
    """
    import aiokafka  # noqa: F401  (creates the loggers the filter goes on)

    if _INSTALLED:
        outage = _INSTALLED[0]
        if bootstrap not in outage.bootstrap.split(" or "):
            outage.bootstrap += f" or {bootstrap}"
        return outage
    outage = OutageLog(bootstrap, quiet=quiet)
    _INSTALLED.append(outage)
    for name in list(logging.root.manager.loggerDict):
        if name == "aiokafka" or name.startswith("aiokafka."):
            logging.getLogger(name).addFilter(outage)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            outage.check()

    threading.Thread(target=watch, name="tokenbudget-outage-log", daemon=True).start()
    return outage

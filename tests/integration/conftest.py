"""Fixtures for tests against the real embedded broker and real Faust worker processes.

The broker is part of the project: if it cannot start, every test here fails (never skips).
Nothing here sleeps a fixed time and hopes: every wait polls a condition against a deadline
(`wait_for` / `wait_for_async`), and a timeout says what it was waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest

from streams.broker import EmbeddedBroker, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_URL_ENV = "TOKENBUDGET_BROKER_URL"
WORKER_READY_LINE = "[^Worker]: Ready"
# Logged by Faust each time a (re)assignment has been recovered and processing resumes.
RECOVERED_LINE = "[^---Recovery]: Worker ready"
LOG_TAIL_CHARS = 20_000

T = TypeVar("T")

_workers = pytest.StashKey[list["FaustWorker"]]()
_brokers = pytest.StashKey[EmbeddedBroker]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """When a test that ran Faust workers fails, attach their logs and the broker's."""
    report: pytest.TestReport = yield
    workers = item.stash.get(_workers, [])
    if report.failed and workers:
        for worker in workers:
            report.sections.append((f"Faust worker {worker.name} log", worker.log_tail()))
        broker = item.stash.get(_brokers, None)
        if broker is not None and broker.log_path is not None and broker.log_path.exists():
            tail = broker.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            report.sections.append(("broker log", tail))
    return report


# Deadline-based waiting ---------------------------------------------------------------


def poll_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    what: str | Callable[[], str] = "",
) -> T:
    """Call `predicate` until it returns something truthy and return that; fail at the deadline.

    `what` names the condition in the timeout message; a callable is asked at the deadline,
    so the message can show the state the test was stuck in.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(_timeout_message(timeout, what, predicate))
        time.sleep(interval)


async def poll_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float,
    interval: float = 0.05,
    what: str | Callable[[], str] = "",
) -> T:
    """Async `poll_until`: `predicate` may be a plain or a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(_timeout_message(timeout, what, predicate))
        await asyncio.sleep(interval)


def _timeout_message(timeout: float, what: str | Callable[[], str], predicate: object) -> str:
    """The timeout message, naming the condition as precisely as the caller could."""
    described = what() if callable(what) else what
    return f"timed out after {timeout}s waiting for {described or predicate}"


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """`wait_for(predicate, timeout, interval=0.05, what="")` → the predicate's truthy result."""
    return poll_until


@pytest.fixture
def wait_for_async() -> Callable[..., Awaitable[Any]]:
    """Async `wait_for`: `await wait_for_async(predicate, timeout)`; predicate may be async."""
    return poll_until_async


# The broker ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the whole session, on a free loopback port."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make topic/group/app names unique per test, so tests share the session broker safely."""
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
    token = uuid.uuid4().hex[:6]
    counter = itertools.count()

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{test}-{token}-{next(counter)}"

    return make


# Faust workers -------------------------------------------------------------------------


class FaustWorker:
    """A Faust worker subprocess with its own datadir, web port and log file; restartable."""

    def __init__(
        self,
        app: str,
        *,
        name: str,
        workdir: Path,
        env: dict[str, str],
        log_level: str = "info",
        stop_timeout: float = 20.0,
        command: Callable[[FaustWorker], list[str]] | None = None,
    ) -> None:
        self.app = app
        self.command = command
        self.name = name
        self.datadir = workdir / f"{name}-data"
        self.log_path = workdir / f"{name}.log"
        self.env = env
        self.log_level = log_level
        self.stop_timeout = stop_timeout
        self.starts = 0
        self.web_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        """The current process id."""
        assert self._process is not None, f"worker {self.name} is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        """True while the current process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start a worker process (same datadir as before, a fresh web port)."""
        assert not self.running, f"worker {self.name} is already running"
        self.starts += 1
        self.web_port = free_port()
        command = (self.command or FaustWorker.faust_cli)(self)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(command)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def faust_cli(self) -> list[str]:
        """The default command line: `python -m faust -A APP --datadir D worker ...`."""
        return [
            sys.executable,
            "-m",
            "faust",
            "-A",
            self.app,
            "--datadir",
            str(self.datadir),
            "worker",
            "-l",
            self.log_level,
            "--web-bind",
            "127.0.0.1",
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(self.web_port),
        ]

    def log_mark(self) -> int:
        """A position in the log: pass it as `since` to wait only for lines logged after now."""
        return self.log_path.stat().st_size

    def log_since(self, since: int | None = None) -> str:
        """What was logged after `since` (a `log_mark()`), or by the current process."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset if since is None else since)
            return log.read().decode(errors="replace")

    def log_since_start(self) -> str:
        """What the current process has logged so far."""
        return self.log_since()

    def wait_for_log(self, text: str, timeout: float, since: int | None = None) -> None:
        """Wait until `text` is logged after `since` (default: by this process); fail if it dies."""

        def logged() -> bool:
            if text in self.log_since(since):
                return True
            if not self.running:
                raise AssertionError(
                    f"worker {self.name} exited ({self._exit_status()}) before logging {text!r}"
                )
            return False

        poll_until(logged, timeout, interval=0.1, what=f"worker {self.name} to log {text!r}")

    def wait_ready(self, timeout: float = 60.0) -> Self:
        """Wait until the worker has joined the group, recovered its tables and is processing."""
        self.wait_for_log(WORKER_READY_LINE, timeout)
        return self

    def wait_recovered(self, since: int, timeout: float = 60.0) -> Self:
        """Wait until the worker has recovered a (re)assignment made after `since` (a log mark)."""
        self.wait_for_log(RECOVERED_LINE, timeout, since=since)
        return self

    def kill(self) -> None:
        """SIGKILL the worker's process group (a crash: no commit, no leave-group) and reap it."""
        if self._process is None:
            return
        self._signal(signal.SIGKILL)
        self._process.wait()

    def freeze(self) -> None:
        """SIGSTOP the worker: alive, but answering nothing (a stalled or overloaded worker)."""
        assert self._process is not None, f"worker {self.name} was never started"
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen worker."""
        assert self._process is not None, f"worker {self.name} was never started"
        self._signal(signal.SIGCONT)

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM only (a graceful shutdown): the exit status, or None if it still runs after
        `timeout` seconds (then `stop()` or `kill()` it)."""
        assert self._process is not None, f"worker {self.name} was never started"
        self._signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL after the stop timeout; always reaps."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._process.wait()
        self._signal(signal.SIGKILL)  # anything it left behind in its group

    def restart(self) -> Self:
        """Start again after a kill or a stop, with the same datadir."""
        self.stop()
        return self.start()

    def log_tail(self, limit: int = LOG_TAIL_CHARS) -> str:
        """The end of the worker's log file (all starts)."""
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_bytes()[-limit:].decode(errors="replace")

    def _signal(self, signum: int) -> None:
        """Signal the worker's whole process group; a group already gone is fine."""
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    def _exit_status(self) -> str:
        """A readable exit status for error messages."""
        code = self._process.poll() if self._process is not None else None
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"status {code}"


@pytest.fixture
def faust_worker(
    broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., FaustWorker]]:
    """Factory: `faust_worker("pkg.module", env={...})` starts a worker and waits until Ready.

    `command(worker)` replaces the default `python -m faust -A pkg.module ... worker` line (for
    an app's own CLI); it is called at every (re)start and should pass on the worker's
    `datadir` and its freshly picked `web_port`.

    The worker's environment points at the session broker (`TOKENBUDGET_BROKER_URL`).
    Every worker is stopped at teardown (SIGTERM, then SIGKILL); when the test fails, each
    worker's log and the broker's are attached to the failure report.
    """
    workers: list[FaustWorker] = []

    def make(
        app: str,
        *,
        env: dict[str, str] | None = None,
        name: str | None = None,
        ready: bool = True,
        ready_timeout: float = 60.0,
        log_level: str = "info",
        command: Callable[[FaustWorker], list[str]] | None = None,
    ) -> FaustWorker:
        worker_env = {
            **os.environ,
            BROKER_URL_ENV: broker.url,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        worker = FaustWorker(
            app,
            name=name or f"worker{len(workers) + 1}",
            workdir=tmp_path,
            env=worker_env,
            log_level=log_level,
            command=command,
        )
        workers.append(worker)
        worker.start()
        if ready:
            worker.wait_ready(ready_timeout)
        return worker

    request.node.stash[_workers] = workers
    request.node.stash[_brokers] = broker
    yield make
    for worker in workers:
        worker.stop()

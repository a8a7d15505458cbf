"""The soak's processes and what it reads back: a worker and a summarizer as subprocesses that
can be killed and restarted, a check that they consumed everything, and the topics read back.

Used by `bench/soak.py`; no fleet logic here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.broker import end_offsets, free_port
from streams.codecs import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    COMPRESSED_HISTORY,
    TURN_EVENT,
    BudgetCommand,
    BudgetSnapshot,
    CompressedHistory,
    TurnEvent,
    default_codec,
)
from streams.summarizer.service import command_line as summarizer_command_line
from streams.topics import TopicNames
from streams.worker import command_line as worker_command_line

CODEC = default_codec()
WORKER_READY = "[^Worker]: Ready"
SUMMARIZER_READY = "summarizer ready"


# -- processes ---------------------------------------------------------------------------------


class Process:
    """A worker or summarizer subprocess in its own process group: kill, restart, log."""

    def __init__(self, name: str, argv: Any, log_path: Path, ready_line: str) -> None:
        self.name = name
        self.argv = argv  # a callable, so each start can pick a fresh port
        self.log_path = log_path
        self.ready_line = ready_line
        self.starts = 0
        self.kills = 0
        self.mark = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the current process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last process (None while it runs)."""
        return None if self._process is None else self._process.poll()

    def start(self) -> None:
        """Start (again): same arguments, same data directory."""
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}\n".encode())
            log.flush()
            self.mark = log.tell()
            self._process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )

    def signal(self, signum: int) -> None:
        """Signal the whole process group; a group already gone is fine."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signum)

    def kill(self) -> None:
        """SIGKILL: a crash (no commit, no flush, no leave-group), then reap."""
        self.signal(signal.SIGKILL)
        if self._process is not None:
            self._process.wait()
        self.kills += 1

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, SIGKILL after `timeout`; the exit status."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self._process.wait()
        self.signal(signal.SIGKILL)
        return self._process.returncode

    def log_since_start(self) -> str:
        """What the current process has logged."""
        with self.log_path.open("rb") as log:
            log.seek(self.mark)
            return log.read().decode(errors="replace")

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the log (every start)."""
        return self.log_path.read_bytes()[-limit:].decode(errors="replace")

    def ready(self) -> bool:
        """The current process logged its ready line."""
        return self.running and self.ready_line in self.log_since_start()

    async def wait_ready(self, timeout: float) -> None:
        """Poll the log for the ready line until `timeout`; fail if the process exits."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.running:
                raise SoakError(f"{self.name} exited ({self.returncode}):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise SoakError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)


class SoakError(AssertionError):
    """A soak check failed; the message says which session and what differed."""


@dataclass
class Stack:
    """A budget worker and a summarizer on one topic prefix of a running broker."""

    bootstrap: str
    topics: TopicNames
    worker: Process
    summarizer: Process

    @classmethod
    def create(cls, bootstrap: str, prefix: str, workdir: Path, partitions: int) -> Stack:
        """Declare the two processes (not started yet)."""
        topics = TopicNames(prefix)
        workdir.mkdir(parents=True, exist_ok=True)

        def worker_argv() -> list[str]:
            return worker_command_line(
                bootstrap,
                topic_prefix=prefix,
                app_id=prefix + "worker",
                data_dir=str(workdir / "worker-data"),
                web_port=free_port(),
                partitions=partitions,
                scoring=False,
                loglevel="info",
            )

        def summarizer_argv() -> list[str]:
            return summarizer_command_line(
                bootstrap,
                topic_prefix=prefix,
                group=prefix + "summarizer",
                partitions=partitions,
                loglevel="info",
            )

        worker = Process("worker", worker_argv, workdir / "worker.log", WORKER_READY)
        summarizer = Process(
            "summarizer", summarizer_argv, workdir / "summarizer.log", SUMMARIZER_READY
        )
        return cls(bootstrap, topics, worker, summarizer)

    async def start(self, timeout: float, summarizer: bool = True) -> None:
        """Start the worker (and the summarizer) and wait until ready."""
        processes = [self.worker, self.summarizer] if summarizer else [self.worker]
        for process in processes:
            process.start()
        await asyncio.gather(*(p.wait_ready(timeout) for p in processes))

    def stop(self) -> None:
        """SIGTERM both (SIGKILL after a while)."""
        self.worker.stop()
        self.summarizer.stop()


async def quiescent(stack: Stack, timeout: float) -> None:
    """Wait until the worker has committed `agent.turns` and `history.compressed` to their end
    and the summarizer (if it ran) `budget.commands`, with no new record meanwhile."""
    t = stack.topics
    groups = [(stack.worker, t.prefix + "worker", (t.turns, t.compressed))]
    if stack.summarizer.starts:
        groups.append((stack.summarizer, t.prefix + "summarizer", (t.commands,)))
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None)
    await consumer.start()
    try:
        deadline, previous = time.monotonic() + timeout, None
        while True:
            ends: dict[TopicPartition, int] = {}
            done = True
            for _, group, topics in groups:
                tps = [TopicPartition(x, p) for x in topics for p in await _partitions(consumer, x)]
                tops = await end_offsets(stack.bootstrap, tps)
                ends |= tops
                committed = await _committed(stack.bootstrap, group, tps)
                done = done and all(committed[tp] >= end for tp, end in tops.items())
            if done and ends == previous:
                return
            previous = ends
            if time.monotonic() > deadline:
                raise SoakError(f"the processes did not consume their inputs in {timeout}s")
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, tps: list[TopicPartition]) -> dict[Any, int]:
    """A group's committed offsets (0 where none), read without joining the group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) or 0 for tp in tps}
    finally:
        await consumer.stop()


# -- reading the topics back -------------------------------------------------------------------


@dataclass
class Audit:
    """Everything on the topics for the fleet's sessions, in partition order."""

    # the worker's whole input per session, in log order: turns and forwarded summary answers
    inputs: dict[str, list[TurnEvent | CompressedHistory]] = field(
        default_factory=lambda: defaultdict(list)
    )
    commands: dict[str, list[BudgetCommand]] = field(default_factory=lambda: defaultdict(list))
    snapshots: dict[str, list[BudgetSnapshot]] = field(default_factory=lambda: defaultdict(list))

    def turns(self, sid: str) -> list[TurnEvent]:
        """The session's turn events in log order (its input less the summary answers)."""
        return [r for r in self.inputs.get(sid, ()) if isinstance(r, TurnEvent)]

    def latest(self, sid: str) -> BudgetSnapshot:
        """The session's latest snapshot: the highest seq, the last of equal ones (a restarted
        worker re-sends older snapshots; clients keep the same one)."""
        best = self.snapshots[sid][0]
        for snapshot in self.snapshots[sid]:
            if snapshot.seq >= best.seq:
                best = snapshot
        return best

    def duplicate_commands(self) -> int:
        """Command records whose id was on the topic before."""
        return sum(len(c) - len({x.command_id for x in c}) for c in self.commands.values())

    def duplicate_snapshots(self) -> int:
        """Snapshot records identical (seq, commands, ledger) to an earlier one."""
        return sum(
            len(s) - len({(x.seq, x.command_ids, repr(x.snapshot)) for x in s})
            for s in self.snapshots.values()
        )

    def missing_snapshots(self) -> int:
        """Seqs a session published but never got a snapshot for."""
        missing = 0
        for sid in self.inputs:
            events = self.turns(sid)
            seen = {s.seq for s in self.snapshots.get(sid, ())}
            missing += len({e.seq for e in events} - seen)
        return missing


async def audit(bootstrap: str, topics: TopicNames, sessions: set[str]) -> Audit:
    """Read `agent.turns`, `budget.commands` and `budget.events` from the start to their end."""
    found = Audit()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        fetch_max_wait_ms=50,
        auto_offset_reset="earliest",  # from the start, even before the seek below lands
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in (topics.turns, topics.commands, topics.events)
            for p in sorted(
                consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
            )
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await end_offsets(bootstrap, partitions)
        left = {tp for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + 120
        while left:
            if time.monotonic() > deadline:
                raise SoakError(f"could not read the topics to their end: {left}")
            for tp, records in (await consumer.getmany(*left, timeout_ms=500)).items():
                for record in records:
                    sid = (record.key or b"").decode()
                    if sid in sessions:
                        _take(found, tp.topic, topics, record.value)
                    if record.offset + 1 >= ends[tp]:
                        left.discard(tp)
    finally:
        await consumer.stop()
    return found


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions once the metadata lists them."""
    for _ in range(100):
        await consumer.topics()
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
    raise SoakError(f"topic {topic} has no partitions")


def _take(found: Audit, topic: str, topics: TopicNames, value: bytes) -> None:
    if topic == topics.turns:
        if CODEC.holds(COMPRESSED_HISTORY, value):  # an answer forwarded by the worker
            answer = CODEC.loads(COMPRESSED_HISTORY, value)
            found.inputs[answer.session_id].append(answer)
            return
        event = CODEC.loads(TURN_EVENT, value)
        found.inputs[event.session_id].append(event)
    elif topic == topics.commands:
        command = CODEC.loads(BUDGET_COMMAND, value)
        found.commands[command.session_id].append(command)
    else:
        snapshot = CODEC.loads(BUDGET_SNAPSHOT, value)
        found.snapshots[snapshot.session_id].append(snapshot)

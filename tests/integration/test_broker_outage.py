"""A broker that is not there yet, or goes away for a while: the worker, the summarizer and the
client SDK wait, log each state change once, and go on without a restart. A turn whose send
fails during the outage (the producer's request timeout) is sent again by the SDK with the
session's next turn, so the worker's ledger still matches the agent's.

Tansu keeps everything in memory, so restarting it would lose the topics, the changelogs and the
committed offsets too: that is a new, empty broker, not an outage. The outage test therefore
puts a TCP proxy in front of it (`tests/integration/outage.py`) and cuts that: connections reset,
new ones refused, then the same port listens again with the broker's data intact.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

from aiokafka.errors import KafkaError

from streams.broker import EmbeddedBroker, free_port
from streams.budget import ActionKind
from streams.client import BudgetClient
from streams.client.mirror import ledger_matches
from streams.corpus import generate_conversation
from streams.summarizer.service import command_line as summarizer_command_line
from streams.topics import TopicNames
from tests.integration.fleet import worker_command
from tests.integration.outage import OutageProxy

PARTITIONS = 4
BROKER_LINES = re.compile(r"broker 127\.0\.0\.1:\d+|Unable connect|Unable to bootstrap")
MAX_BROKER_LINES = 5
RETRIES = 1000


def start_pair(faust_worker, bootstrap: str, prefix: str, ready: bool) -> tuple[object, object]:
    """A budget worker and a summarizer on `bootstrap` (waiting for readiness or not); the
    summarizer logs at debug level, so each of its attempts to reach the broker shows."""
    topics = TopicNames(prefix)

    def summarizer_command(_worker: object) -> list[str]:
        return summarizer_command_line(
            bootstrap,
            topic_prefix=prefix,
            group=prefix + "summarizer",
            partitions=PARTITIONS,
            loglevel="debug",
        )

    summarizer = faust_worker("streams", name="summarizer", command=summarizer_command, ready=False)
    worker = faust_worker(
        "streams",
        name="budget",
        command=worker_command(bootstrap, topics, prefix + "worker", PARTITIONS),
        ready=False,
    )
    if ready:
        worker.wait_ready(90)
        summarizer.wait_for_log("summarizer ready", timeout=90)
    return worker, summarizer


async def agent_round(bootstrap: str, prefix: str, sid: str, turns: int, seed: int) -> list[str]:
    """One agent on the SDK, in lockstep, then until a summary was applied; the command kinds."""
    conversation = generate_conversation(seed=seed, turns=turns)
    messages = [m for m in conversation.messages if m.role != "system"][:turns]
    kinds: list[str] = []
    summarized = asyncio.Event()
    async with BudgetClient(bootstrap, topic_prefix=prefix, partitions=PARTITIONS) as client:

        async def watch() -> None:
            async for command in client.commands(sid):
                applied = command.action.replacement is not None
                kinds.append(command.action.kind.value + (" applied" if applied else ""))
                if command.action.kind is ActionKind.SUMMARIZE and applied:
                    summarized.set()

        watcher = asyncio.create_task(watch())
        await client.start_session(sid, model="gpt-4o", context_limit=3_000, task=conversation.task)
        for message in messages:
            await client.publish_turn(sid, message.uncounted())
            context = await client.context(sid, timeout=30)
            assert not context.fallback, f"{sid}: the worker did not answer"
        try:
            await asyncio.wait_for(summarized.wait(), 60)
        except TimeoutError:
            raise AssertionError(f"no summary applied within 60 s; commands: {kinds}") from None
        finally:
            watcher.cancel()
    return kinds


class LogLines(logging.Handler):
    """The WARNING-and-above lines this (the agents') process logs, by top-level logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name.split(".")[0], record.getMessage()))

    def of(self, logger: str) -> list[str]:
        return [text for name, text in self.lines if name == logger]


def broker_lines(process: object) -> list[str]:
    """Lines of the process's log (all starts) that are about reaching the broker."""
    text = Path(process.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
    return [
        line
        for line in text.splitlines()
        if BROKER_LINES.search(line) and "DEBUG" not in line  # debug: off in production
    ]


def test_worker_and_summarizer_wait_for_a_late_broker_and_ride_out_an_outage(
    faust_worker, tmp_path, unique_name, wait_for
) -> None:
    port = free_port()
    proxy = OutageProxy(f"127.0.0.1:{port}")  # its port is reserved; nothing listens there yet
    prefix = unique_name("outage") + "."
    worker, summarizer = start_pair(faust_worker, proxy.bootstrap, prefix, ready=False)
    processes = (worker, summarizer)
    for process in processes:
        process.wait_for_log(f"broker {proxy.bootstrap} unreachable", timeout=60)
    summarizer.wait_for_log("attempt 4 failed", timeout=60)  # backing off: 0.5, 1, 2, 4 s
    assert worker.running and summarizer.running  # waiting, not exited

    with (
        EmbeddedBroker(port, advertised=proxy.bootstrap, log_path=tmp_path / "broker.log"),
        proxy,
    ):
        worker.wait_ready(90)
        summarizer.wait_for_log("summarizer ready", timeout=90)
        kinds = asyncio.run(agent_round(proxy.bootstrap, prefix, prefix + "early", 40, seed=21))
        assert "SUMMARIZE applied" in kinds  # both process traffic once the broker is there
        attempts = re.search(r"\((\d+) attempts\)", "\n".join(broker_lines(summarizer)))
        assert attempts and int(attempts.group(1)) >= 4  # several attempts, two lines

        marks = {p.name: p.log_mark() for p in processes}

        def noticed() -> bool:
            return all("unreachable" in p.log_since(marks[p.name]) for p in processes)

        async def scenario() -> bool:
            sid, other = prefix + "agent", prefix + "impatient"
            conversation = generate_conversation(seed=22, turns=40)
            messages = [m for m in conversation.messages if m.role != "system"][:40]
            async with (
                BudgetClient(proxy.bootstrap, topic_prefix=prefix, partitions=PARTITIONS) as client,
                # its producer gives up on a send after 1.5 s: the turn fails during the outage
                BudgetClient(
                    proxy.bootstrap,
                    topic_prefix=prefix,
                    partitions=PARTITIONS,
                    request_timeout_ms=1500,
                ) as impatient,
            ):
                for agent, name in ((client, sid), (impatient, other)):
                    await agent.start_session(
                        name, model="gpt-4o", context_limit=3_000, task=conversation.task
                    )
                    for message in messages[:15]:
                        await agent.publish_turn(name, message.uncounted())
                        assert not (await agent.context(name, timeout=30)).fallback
                agents_log = LogLines()
                logging.getLogger().addHandler(agents_log)
                proxy.cut()
                cut_at = time.monotonic()
                # the agent's next turn waits for the broker (aiokafka retries the send) ...
                publish = asyncio.create_task(client.publish_turn(sid, messages[15].uncounted()))
                # ... the impatient one's fails, and the SDK sends it again with the next turn
                turn = messages[15].uncounted()
                failing = asyncio.create_task(impatient.publish_turn(other, turn))
                await asyncio.to_thread(wait_for, noticed, 60, 0.2, "both to notice the outage")
                # the outage lasts while the clients retry: a thousand reconnection attempts,
                # longer than the worker's group session, so it has to rejoin afterwards
                await asyncio.to_thread(
                    wait_for, lambda: proxy.refused >= RETRIES, 120, 0.2, "reconnection attempts"
                )
                waited, lasted = not publish.done(), time.monotonic() - cut_at
                assert failing.done() and isinstance(failing.exception(), KafkaError)
                proxy.restore()
                await asyncio.wait_for(publish, 60)
                logging.getLogger().removeHandler(agents_log)
                # the SDK's Kafka clients tried a thousand times; the agents' log says so once
                print(f"\nagents' log during the outage: {agents_log.lines}")
                assert len(agents_log.of("aiokafka")) <= 2, agents_log.of("aiokafka")
                assert any("unreachable" in line for line in agents_log.of("tokenbudget"))
                for message in messages[16:]:
                    for agent, name in ((client, sid), (impatient, other)):
                        await agent.publish_turn(name, message.uncounted())
                        assert not (await agent.context(name, timeout=60)).fallback
                for agent, name in ((client, sid), (impatient, other)):
                    mirror = agent.sessions[name]
                    assert mirror.worker is not None
                    assert ledger_matches(mirror, mirror.worker.snapshot), name  # nothing lost
                print(f"\noutage of {lasted:.1f} s, {proxy.refused} reconnection attempts refused")
                return waited

        assert asyncio.run(scenario())  # the publish waited out the outage, then went through
        for process in processes:
            process.wait_for_log("reachable again", timeout=30, since=marks[process.name])
            assert process.running
        kinds = asyncio.run(agent_round(proxy.bootstrap, prefix, prefix + "after", 40, seed=23))
        assert "SUMMARIZE applied" in kinds  # worker and summarizer both work after the outage
        for process in processes:
            lines = broker_lines(process)
            print(f"\n{process.name}: {len(lines)} lines about the broker:\n" + "\n".join(lines))
            assert len(lines) <= MAX_BROKER_LINES, lines  # late start 2, outage 2
            process.stop()  # while the broker is still there to leave the group

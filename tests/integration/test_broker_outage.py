"""A broker that is not there yet, or goes away for a while: the worker, the summarizer and the
client SDK wait, log each state change once, and go on without a restart.

Tansu keeps everything in memory, so restarting it would lose the topics, the changelogs and the
committed offsets too: that is a new, empty broker, not an outage. The outage test therefore
puts a TCP proxy in front of it (`tests/integration/outage.py`) and cuts that: connections reset,
new ones refused, then the same port listens again with the broker's data intact.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from streams.broker import EmbeddedBroker, free_port
from streams.budget import ActionKind
from streams.client import BudgetClient
from streams.corpus import generate_conversation
from streams.summarizer.service import command_line as summarizer_command_line
from streams.topics import TopicNames
from tests.integration.fleet import worker_command
from tests.integration.outage import OutageProxy

PARTITIONS = 4
BROKER_LINES = re.compile(r"broker 127\.0\.0\.1:\d+|Unable connect|Unable to bootstrap")
MAX_BROKER_LINES = 5
RETRIES = 300


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


def broker_lines(process: object) -> list[str]:
    """Lines of the process's log (all starts) that are about reaching the broker."""
    text = Path(process.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
    return [
        line
        for line in text.splitlines()
        if BROKER_LINES.search(line) and "DEBUG" not in line  # debug: off in production
    ]


def test_worker_and_summarizer_wait_for_a_broker_that_starts_late(
    faust_worker, tmp_path, unique_name
) -> None:
    port = free_port()  # reserved: nothing listens there yet
    bootstrap = f"127.0.0.1:{port}"
    prefix = unique_name("late") + "."
    worker, summarizer = start_pair(faust_worker, bootstrap, prefix, ready=False)
    for process in (worker, summarizer):
        process.wait_for_log(f"broker {bootstrap} unreachable", timeout=60)
    summarizer.wait_for_log("attempt 4 failed", timeout=60)  # backing off: 0.5, 1, 2, 4 s
    assert worker.running and summarizer.running  # waiting, not exited

    with EmbeddedBroker(port, log_path=tmp_path / "late-broker.log"):
        worker.wait_ready(90)
        summarizer.wait_for_log("summarizer ready", timeout=90)
        kinds = asyncio.run(agent_round(bootstrap, prefix, prefix + "agent", 40, seed=21))

    assert "DROP" in kinds or "SUMMARIZE" in kinds
    for process in (worker, summarizer):
        lines = broker_lines(process)
        print(f"\n{process.name}: {len(lines)} lines about the broker:\n" + "\n".join(lines))
        assert 2 <= len(lines) <= MAX_BROKER_LINES, lines
        again = [line for line in lines if "reachable again" in line]
        assert again and re.search(r"\((\d+) attempts\)", again[0]), lines
    attempts = re.search(r"\((\d+) attempts\)", "\n".join(broker_lines(summarizer)))
    assert attempts and int(attempts.group(1)) >= 4  # several attempts, two lines


def test_a_broker_outage_is_ridden_out_by_worker_summarizer_and_client(
    faust_worker, tmp_path, unique_name, wait_for
) -> None:
    port = free_port()
    with (
        OutageProxy(f"127.0.0.1:{port}") as proxy,
        EmbeddedBroker(port, advertised=proxy.bootstrap, log_path=tmp_path / "b.log"),
    ):
        prefix = unique_name("outage") + "."
        worker, summarizer = start_pair(faust_worker, proxy.bootstrap, prefix, ready=True)

        processes = (worker, summarizer)

        def noticed() -> bool:
            return all("unreachable" in "\n".join(broker_lines(p)) for p in processes)

        async def scenario() -> bool:
            sid = prefix + "agent"
            conversation = generate_conversation(seed=22, turns=40)
            messages = [m for m in conversation.messages if m.role != "system"][:40]
            async with BudgetClient(
                proxy.bootstrap, topic_prefix=prefix, partitions=PARTITIONS
            ) as client:
                await client.start_session(
                    sid, model="gpt-4o", context_limit=3_000, task=conversation.task
                )
                for message in messages[:15]:
                    await client.publish_turn(sid, message.uncounted())
                    assert not (await client.context(sid, timeout=30)).fallback
                proxy.cut()
                cut_at = time.monotonic()
                # the agent's next turn waits for the broker (aiokafka retries the send)
                publish = asyncio.create_task(client.publish_turn(sid, messages[15].uncounted()))
                await asyncio.to_thread(wait_for, noticed, 60, 0.2, "both to notice the outage")
                # the outage lasts while the clients retry: a few hundred reconnection attempts
                # (longer than the worker's group session, so it has to rejoin afterwards)
                await asyncio.to_thread(
                    wait_for, lambda: proxy.refused >= RETRIES, 120, 0.2, "reconnection attempts"
                )
                waited, lasted = not publish.done(), time.monotonic() - cut_at
                proxy.restore()
                await asyncio.wait_for(publish, 60)
                for message in messages[16:]:
                    await client.publish_turn(sid, message.uncounted())
                    assert not (await client.context(sid, timeout=60)).fallback
                print(f"\noutage of {lasted:.1f} s, {proxy.refused} reconnection attempts refused")
                return waited

        assert asyncio.run(scenario())  # the publish waited out the outage, then went through
        for process in processes:
            process.wait_for_log("reachable again", timeout=30)
            assert process.running
        kinds = asyncio.run(agent_round(proxy.bootstrap, prefix, prefix + "after", 40, seed=23))
        assert "SUMMARIZE applied" in kinds  # worker and summarizer both work after the outage
    for process in processes:
        lines = broker_lines(process)
        print(f"\n{process.name}: {len(lines)} lines about the broker:\n" + "\n".join(lines))
        assert len(lines) <= MAX_BROKER_LINES, lines

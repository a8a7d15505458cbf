"""Message content never reaches the logs, even at debug level: a worker and a summarizer
process a fleet (and broken events) whose every text carries a canary, and neither log holds it."""

from __future__ import annotations

import dataclasses

from streams.budget import Message
from streams.codecs import TurnEvent, TurnEventType
from streams.summarizer.service import command_line as summarizer_command_line
from streams.topics import TopicNames
from streams.worker import command_line
from tests.integration.fleet import FleetClient, fleet_events, run

CANARY = "zebra-canary-4417"
PARTITIONS = 2


def with_canary(events: list[TurnEvent]) -> list[TurnEvent]:
    """The same session with the canary in its system prompt, task and every message."""
    out = []
    for event in events:
        if event.session_start is not None:
            start = dataclasses.replace(
                event.session_start,
                system_prompt=f"{event.session_start.system_prompt} {CANARY}",
                task=f"{event.session_start.task} {CANARY}",
            )
            event = dataclasses.replace(event, session_start=start)
        elif event.message is not None and isinstance(event.message.content, str):
            message = Message(
                id=event.message.id,
                role=event.message.role,
                content=f"{event.message.content} {CANARY}",
                tool_call_id=event.message.tool_call_id,
                component=event.message.component,
            )
            event = dataclasses.replace(event, message=message)
        out.append(event)
    return out


def test_content_stays_out_of_the_logs_at_debug_level(
    broker, faust_worker, unique_name, wait_for
) -> None:
    prefix = unique_name("privacy") + "."
    topics = TopicNames(prefix)

    def worker(w: object) -> list[str]:
        return command_line(
            broker.bootstrap,
            topic_prefix=prefix,
            app_id=prefix + "worker",
            data_dir=str(w.datadir),  # type: ignore[attr-defined]
            web_port=w.web_port,  # type: ignore[attr-defined]
            partitions=PARTITIONS,
            scoring=False,
            loglevel="debug",
        )

    def summarizer(_w: object) -> list[str]:
        return summarizer_command_line(
            broker.bootstrap,
            topic_prefix=prefix,
            group=prefix + "summarizer",
            partitions=PARTITIONS,
            loglevel="debug",
        )

    summarizing = faust_worker("streams", name="summarizer", command=summarizer, ready=False)
    budget = faust_worker("streams", name="budget", command=worker, ready_timeout=90)
    summarizing.wait_for_log("summarizer ready", timeout=90)

    fleet = {sid: with_canary(events) for sid, events in fleet_events(3, 30, seed=4).items()}
    orphan = Message(id="orphan", role="user", content=f"never started {CANARY}")
    broken = [
        TurnEvent("ghost/1", "ghost", 1, TurnEventType.TURN, 0.0, message=orphan),
        (b"ghost", f"not avro {CANARY}".encode()),
    ]

    async def publish() -> None:
        async with FleetClient(broker.bootstrap, topics) as client:
            await client.publish([e for events in fleet.values() for e in events])
            await client.publish(broken)
            await client.collect_until(
                lambda c: (
                    len(c.dead_letters) == len(broken)
                    and all(len(c.snapshots[sid]) == len(events) for sid, events in fleet.items())
                    and any(
                        command.action.replacement is not None
                        for commands in c.commands.values()
                        for command in commands
                    )
                ),
                timeout=90,
            )

    run(publish())
    worker_log, summarizer_log = budget.log_since_start(), summarizing.log_since_start()
    assert "DEBUG" in worker_log and "DEBUG" in summarizer_log  # really at debug level
    assert CANARY not in worker_log
    assert CANARY not in summarizer_log

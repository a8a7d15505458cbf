"""A minimal Faust app for the Tansu probe: count events per key in a changelog-backed table.

Configured only through the environment so each test gets its own app id, topics and consumer
group on the shared session broker: `TOKENBUDGET_BROKER_URL` ("kafka://127.0.0.1:PORT") and
`PROBE_NAMESPACE` (prefix of the app id and the topic names).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import faust

from streams.broker import TANSU_FAUST_SETTINGS
from streams.faust_fixes import exact_end_offsets

BROKER = os.environ.get("TOKENBUDGET_BROKER_URL", "kafka://127.0.0.1:9092")
NAMESPACE = os.environ.get("PROBE_NAMESPACE", "probe")
PARTITIONS = 4

app = faust.App(
    f"{NAMESPACE}-app",
    broker=BROKER,
    store="memory://",
    topic_partitions=PARTITIONS,
    table_standby_replicas=0,
    broker_commit_interval=0.5,  # commit often, so the crash test waits less for a commit
    consumer_auto_offset_reset="earliest",
    **TANSU_FAUST_SETTINGS,
)
exact_end_offsets(app, BROKER.removeprefix("kafka://"), {})  # Tansu's ListOffsets counts batches

events_topic = app.topic(
    f"{NAMESPACE}-events",
    key_type=str,
    value_type=str,
    key_serializer="raw",
    value_serializer="raw",
    partitions=PARTITIONS,
)
counts_topic = app.topic(
    f"{NAMESPACE}-counts",
    key_type=str,
    key_serializer="raw",
    value_serializer="json",
    partitions=PARTITIONS,
)
counts = app.Table("counts", default=int, partitions=PARTITIONS)


@app.agent(events_topic)
async def count_events(stream: faust.StreamT[str]) -> AsyncIterator[None]:
    """Count each key's events and publish the running count, with who counted it."""
    async for key, _value in stream.items():
        counts[key] += 1
        event = stream.current_event
        partition = event.message.partition if event is not None else -1
        await counts_topic.send(
            key=key,
            value={"key": key, "count": counts[key], "partition": partition, "pid": os.getpid()},
        )
        yield None


if __name__ == "__main__":
    app.main()

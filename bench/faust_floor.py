"""The floor under the worker: a Faust relay that does no work, on the embedded broker.

One Faust worker process (4 partitions, the worker's Faust settings and fixes) reads records and,
for each, writes R rows to a changelog-backed table and sends the record on: 1 record in, 1 out,
R changelog records, as the budget worker does per turn (R is 1 for an ordinary turn). The
producer and consumer here are plain aiokafka, as in `bench/pipeline.py`. Records/s and CPU per
record of the relay, the broker and this driver show what Faust, aiokafka and Tansu cost before
any budget work: the most turns/s one worker can reach on these cores.

Run: `.venv/bin/python bench/faust_floor.py [ROWS ...]` (default: 0 1 3)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

RECORDS = 20_000
IN, OUT = "floor-in", "floor-out"


def relay_app() -> object:
    """The Faust relay, configured from the environment (`FLOOR_BROKER`, `FLOOR_ROWS`)."""
    import faust
    from faust.streams import _current_event

    from streams.broker import TANSU_FAUST_SETTINGS
    from streams.faust_fixes import complete_flushes, short_fetch_waits

    rows = int(os.environ["FLOOR_ROWS"])
    short_fetch_waits()
    complete_flushes()
    app = faust.App(
        f"floor{rows}",
        broker="kafka://" + os.environ["FLOOR_BROKER"],
        store="memory://",
        topic_partitions=4,
        table_standby_replicas=0,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        **TANSU_FAUST_SETTINGS,
    )
    app.producer.buffer.max_messages = 8 * 256
    source = app.topic(IN, key_type=bytes, value_type=bytes, partitions=4)
    sink = app.topic(OUT, key_type=bytes, value_type=bytes, partitions=4)
    table = app.Table("rows", partitions=4, key_type=str)

    @app.agent(source)
    async def relay(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """Write the rows, send the record on, a micro-batch at a time (as the worker does)."""
        async for batch in stream.take_events(256, within=0.01):
            for event in batch:
                _current_event.set(weakref.ref(event))
                for row in range(rows):
                    table[f"{event.message.offset}-{row}"] = {"row": row}
                await sink.send(key=event.message.key, value=event.value)
            yield None

    return app


async def measure(rows: int) -> str:
    """Start a broker and a relay with `rows` table rows per record; time RECORDS through it."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from pipeline import cpu_seconds

    from streams.broker import EmbeddedBroker, create_topics_async, free_port

    with EmbeddedBroker() as broker:
        await create_topics_async(broker.bootstrap, [IN, OUT], 4)
        data = tempfile.mkdtemp(prefix="floor-")
        env = os.environ | {"FLOOR_BROKER": broker.bootstrap, "FLOOR_ROWS": str(rows)}
        argv = [sys.executable, __file__, "--datadir", data, "worker", "-l", "warn"]
        argv += ["--web-port", str(free_port())]
        log = Path(data, "relay.log")
        with log.open("wb") as out:
            relay = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        consumer = AIOKafkaConsumer(
            OUT, bootstrap_servers=broker.bootstrap, group_id=None, fetch_max_wait_ms=20
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=20, max_batch_size=1 << 20
        )
        await consumer.start()
        await producer.start()
        try:
            await producer.send_and_wait(IN, b"x" * 400, key=b"warm")
            deadline = time.monotonic() + 120
            while not await consumer.getmany(timeout_ms=500):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the relay did not answer; log: {log}")
            pids = {"relay": relay.pid, "broker": broker.pid, "driver": None}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.perf_counter()

            async def publish() -> None:
                for i in range(RECORDS):
                    await producer.send(IN, b"x" * 400, key=b"s%d" % (i % 200))
                await producer.flush()

            sender = asyncio.create_task(publish())
            got = 0
            while got < RECORDS:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                got += sum(len(records) for records in batch.values())
            elapsed = time.perf_counter() - started
            await sender
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        finally:
            await producer.stop()
            await consumer.stop()
            relay.terminate()
            relay.wait(30)
    cpu = ", ".join(f"{name} {s / RECORDS * 1e6:.0f} µs" for name, s in spent.items())
    rate = RECORDS / elapsed
    return f"{rows} table rows per record: {rate:,.0f} records/s; CPU per record: {cpu}"


def main() -> int:
    """Entry point: the driver, or the relay itself when Faust's arguments are given."""
    if "worker" in sys.argv[1:]:
        relay_app().main()  # type: ignore[attr-defined]
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for rows in [int(a) for a in sys.argv[1:]] or [0, 1, 3]:
        print(asyncio.run(measure(rows)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

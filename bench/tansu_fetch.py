"""The embedded broker's CPU per record as a partition fills up.

Measured here on Tansu 0.6's in-memory engine: a fetch that returns records costs the broker
more the more its partition already holds, while producing does not. The pipeline benchmark
therefore starts every run on a fresh broker, and a long-lived embedded broker (the demo's, a
long test session's) gets slower to read from as it fills.

Each round produces `--round` records in small batches (a few records each, ~1,800 records/s)
to one partition and, unless `--produce-only`, reads them back at the tail as they come; it
prints the broker's CPU per record and the records/s the round reached.

Run: `.venv/bin/python bench/tansu_fetch.py [--rounds 8] [--round 5000] [--produce-only]`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pipeline import cpu_seconds  # bench/, the directory of this script

from streams.broker import EmbeddedBroker

TOPIC = "fetch-cost"


async def measure(rounds: int, size: int, consume: bool) -> None:
    """Print the broker's CPU per record, round by round."""
    with EmbeddedBroker() as broker:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        consumer = AIOKafkaConsumer(
            TOPIC,
            bootstrap_servers=broker.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        await producer.start()
        await consumer.start()
        received = 0

        async def read() -> None:
            nonlocal received
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                received += sum(len(records) for records in batch.values())

        reader = asyncio.create_task(read()) if consume else None
        sent = 0
        try:
            for n in range(rounds):
                cpu, started = cpu_seconds(broker.pid), time.perf_counter()
                for i in range(size):
                    await producer.send(TOPIC, b"x" * 300, key=str(i).encode())
                    if i % 5 == 4:
                        await asyncio.sleep(0.002)  # ~1,800 records/s in small batches
                sent += size
                await producer.flush()
                deadline = time.monotonic() + 120
                while consume and received < sent:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"only {received} of {sent} records read back")
                    await asyncio.sleep(0.01)
                spent = cpu_seconds(broker.pid) - cpu
                rate = size / (time.perf_counter() - started)
                print(
                    f"round {n + 1}: partition holds {sent:,} records; broker "
                    f"{spent / size * 1e6:.0f} µs CPU per record; {rate:,.0f} records/s",
                    flush=True,
                )
        finally:
            if reader is not None:
                reader.cancel()
            await producer.stop()
            await consumer.stop()


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds to run")
    parser.add_argument("--round", type=int, default=5000, help="records per round")
    parser.add_argument("--produce-only", action="store_true", help="no consumer")
    args = parser.parse_args()
    asyncio.run(measure(args.rounds, args.round, not args.produce_only))
    return 0


if __name__ == "__main__":
    sys.exit(main())

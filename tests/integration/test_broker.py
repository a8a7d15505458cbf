"""The embedded broker behaves like Kafka for what the product relies on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.broker import (
    EmbeddedBroker,
    create_topics,
    create_topics_async,
    end_offsets,
    kafka_responds,
)
from streams.errors import BrokerUnavailableError, TokenBudgetError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _port_is_free(port: int) -> bool:
    """True when nothing listens on the loopback port any more."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_produce_group_consume_commit_round_trip(broker, unique_name, wait_for_async):
    topic, group = unique_name("turns"), unique_name("group")
    await create_topics_async(broker.bootstrap, [topic], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, key=f"s{i % 3}".encode(), value=f"{i}".encode())

        first = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            # Tansu answers a new group's JoinGroup after about half the session timeout.
            session_timeout_ms=3000,
            heartbeat_interval_ms=1000,
        )
        await first.start()
        received: list[bytes] = []
        try:

            async def all_ten() -> bool:
                batches = await first.getmany(timeout_ms=200)
                received.extend(m.value for msgs in batches.values() for m in msgs)
                return len(received) >= 10

            await wait_for_async(all_ten, timeout=30, what="the group consumer to get 10 records")
            await first.commit()
            committed = {p: await first.committed(TopicPartition(topic, p)) for p in (0, 1)}
        finally:
            await first.stop()
        assert sorted(received, key=int) == [f"{i}".encode() for i in range(10)]
        assert sum(committed.values()) == 10

        # The commit is durable: a consumer of the same group resumes after it, so only the
        # record produced since arrives. (Manual assignment: joining the group again would
        # only wait for the old member's session to expire, see docs/FAUST_ON_TANSU.md.)
        await producer.send_and_wait(topic, key=b"s0", value=b"10")
        second = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await second.start()
        second.assign([TopicPartition(topic, p) for p in (0, 1)])
        resumed: list[bytes] = []
        try:

            async def the_new_one() -> bool:
                batches = await second.getmany(timeout_ms=200)
                resumed.extend(m.value for msgs in batches.values() for m in msgs)
                return bool(resumed)

            await wait_for_async(the_new_one, timeout=30, what="the resumed consumer's record")
            extra = await second.getmany(timeout_ms=300)
            resumed.extend(m.value for msgs in extra.values() for m in msgs)
        finally:
            await second.stop()
        assert resumed == [b"10"]
    finally:
        await producer.stop()


async def test_keyed_records_land_on_one_stable_partition(broker, unique_name, wait_for_async):
    topic = unique_name("keyed")
    await create_topics_async(broker.bootstrap, [topic], partitions=4)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 4

    keys = [f"session-{i}".encode() for i in range(24)]
    placements: dict[bytes, set[int]] = defaultdict(set)
    for _round in range(2):  # a fresh producer each round: placement must not depend on it
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for key in keys:
                metadata = await producer.send_and_wait(topic, key=key, value=b"turn")
                placements[key].add(metadata.partition)
        finally:
            await producer.stop()
    assert all(len(partitions) == 1 for partitions in placements.values()), placements
    assert len({p for partitions in placements.values() for p in partitions}) > 1

    # What a consumer reads back sits where the producer said it went.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: dict[bytes, set[int]] = defaultdict(set)
    count = 0
    try:

        async def all_records() -> bool:
            nonlocal count
            for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                for message in messages:
                    seen[message.key].add(tp.partition)
                    count += 1
            return count >= 2 * len(keys)

        await wait_for_async(all_records, timeout=30, what="all keyed records")
    finally:
        await consumer.stop()
    assert seen == placements


async def _produce_batches(bootstrap: str, topic: str) -> None:
    """Produce 1, then 3 (in one go), then 4 records (one batch each) to partition 0."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for burst in (1, 3, 4):
            pending = [await producer.send(topic, b"turn", partition=0) for _ in range(burst)]
            await producer.flush()
            offsets = [(await sent).offset for sent in pending]
        assert offsets == [4, 5, 6, 7]
    finally:
        await producer.stop()


async def _listed_end(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def test_end_offsets_are_exact_after_multi_record_batches(broker, unique_name):
    # What Faust's table recovery reads on Tansu (streams.faust_fixes.exact_end_offsets).
    topic, empty = unique_name("ends"), unique_name("empty")
    await create_topics_async(broker.bootstrap, [topic, empty], partitions=2)
    await _produce_batches(broker.bootstrap, topic)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1), TopicPartition(empty, 0)]
    assert await end_offsets(broker.bootstrap, tps) == dict(zip(tps, [8, 0, 0], strict=True))


async def test_tansu_end_offsets_still_count_batches_not_records(broker, unique_name):
    # Canary for the Tansu 0.6 quirk behind `end_offsets`: when it fails, Tansu reports end
    # offsets correctly and the fix (and this test) can go.
    topic = unique_name("quirk")
    await create_topics_async(broker.bootstrap, [topic], partitions=1)
    await _produce_batches(broker.bootstrap, topic)
    end = await _listed_end(broker.bootstrap, TopicPartition(topic, 0))
    assert end == 5, f"ListOffsets(latest) said {end} for 8 records; Tansu may have fixed it"


def test_create_topics_is_idempotent(broker, unique_name):
    topic = unique_name("twice")
    create_topics(broker.bootstrap, [topic], partitions=3)
    create_topics(broker.bootstrap, [topic], partitions=3)  # already there: fine


def test_stop_terminates_the_broker_and_frees_its_port(tmp_path):
    embedded = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    port = embedded.port
    assert embedded.running
    assert kafka_responds("127.0.0.1", port)
    assert not _port_is_free(port)

    embedded.stop()

    assert not embedded.running
    assert not kafka_responds("127.0.0.1", port)
    assert _port_is_free(port)
    embedded.stop()  # stopping twice is harmless


def test_context_manager_on_a_chosen_port(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with EmbeddedBroker(port, log_path=tmp_path / "tansu.log") as embedded:
        assert embedded.bootstrap == f"127.0.0.1:{port}"
        assert embedded.url == f"kafka://127.0.0.1:{port}"
        assert kafka_responds("127.0.0.1", port)
    assert _port_is_free(port)


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port, log_path=tmp_path / "tansu.log", startup_timeout=10)
        with pytest.raises(BrokerUnavailableError, match=str(port)):
            broker.start()
        assert not broker.running


def test_a_missing_or_non_executable_binary_is_a_clear_error(tmp_path):
    missing = EmbeddedBroker(binary=tmp_path / "no-such-tansu")
    with pytest.raises(BrokerUnavailableError, match="no Tansu binary"):
        missing.start()

    not_executable = tmp_path / "tansu"
    not_executable.write_bytes(b"#!/bin/sh\n")
    not_executable.chmod(0o644)
    with pytest.raises(BrokerUnavailableError, match="not executable") as raised:
        EmbeddedBroker(binary=not_executable).start()
    assert isinstance(raised.value, TokenBudgetError)
    assert raised.value.retriable is False


def test_cli_prints_the_address_and_stops_cleanly_on_sigterm(wait_for):
    cli = subprocess.Popen(
        [sys.executable, "-m", "streams.broker"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.stdout is not None
        line = cli.stdout.readline()  # blocks until the broker is ready (or the CLI dies)
        assert line.startswith("broker ready on 127.0.0.1:"), (line, cli.stderr.read())
        port = int(line.split("127.0.0.1:")[1].split()[0])
        assert kafka_responds("127.0.0.1", port)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=15) == 0
        assert wait_for(lambda: _port_is_free(port), timeout=5, what="the port to be freed")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()

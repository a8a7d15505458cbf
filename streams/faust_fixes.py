"""Fixes to Faust 0.15.3 (and one to the embedded broker under it) that the worker installs.

Each is installed once per process by wrapping one Faust method; the wrapper is marked so a
second install is a no-op. Why each exists: docs/FAUST_ON_TANSU.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

FETCH_MAX_WAIT_MS = 20


def short_fetch_waits() -> None:
    """Make the worker's consumer long-poll for at most `FETCH_MAX_WAIT_MS`.

    Faust 0.15 hard-codes `fetch_max_wait_ms=1500`, and a broker may hold a fetch for a good
    part of that before answering (Tansu answers after ~750 ms even when records are waiting),
    which alone put ~0.5-1 s between publish and snapshot. The consumer is built in one Faust
    method; we wrap it and lower the value on the aiokafka consumer before it starts.
    """
    from faust.transport.drivers import aiokafka as driver

    create = driver.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "tokenbudget", False):
        return

    def create_with_short_waits(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    create_with_short_waits.tokenbudget = True  # type: ignore[attr-defined]
    driver.AIOKafkaConsumerThread._create_worker_consumer = create_with_short_waits


def no_acks_for_skipped_records() -> None:
    """Keep Faust from committing past a record its stream skipped without processing it.

    Faust 0.15.3's stream drops a record fetched while flow control is off or in an earlier
    consumer generation (a rebalance, a restart's recovery) and acknowledges it anyway, so the
    commit moves past a record no agent saw: a session loses that event for good (a hole the
    session then waits on, see `SequenceGapError`). Such a record was never tracked
    by the stream (tracking comes after the check); its acknowledgement is refused here, so the
    committed offset stays before it and the seek to committed offsets that follows the
    rebalance delivers it again.
    """
    from faust.transport.consumer import Consumer

    ack = Consumer.ack
    if getattr(ack, "tokenbudget", False):
        return

    def ack_if_processed(self: Any, message: Any) -> bool:
        if not message.tracked:
            return False
        return ack(self, message)

    ack_if_processed.tokenbudget = True  # type: ignore[attr-defined]
    Consumer.ack = ack_if_processed  # type: ignore[method-assign]


FLUSH_TIMEOUT = 60.0
"""Seconds a commit waits for the table writes before it; past that the worker fails loudly."""


def complete_flushes() -> None:
    """Make the flush before every offset commit wait for every buffered table write.

    Faust 0.15.3 writes table rows through a buffer, and the commit of the input offsets
    flushes it first, but that flush gives up after 100 ms without a message leaving, and it
    does not wait for the message being sent when the buffer looks empty. Under load the offsets
    of turns are then committed before their table rows reach the changelog; a worker killed at
    that moment restarts with the state of a few turns earlier and never reads those turns
    again (`bench/soak.py` saw sessions lose three events at once). Every buffered write is a
    future that completes when the broker acknowledges it: the flush now waits for all of
    those that were buffered when it began.
    """
    from faust.transport.producer import ProducerBuffer

    put, flush = ProducerBuffer.put, ProducerBuffer.flush
    if getattr(flush, "tokenbudget", False):
        return

    def put_tracked(self: Any, fut: Any) -> None:
        unsent = self.__dict__.setdefault("tokenbudget_unsent", set())
        unsent.add(fut)
        fut.add_done_callback(unsent.discard)
        put(self, fut)

    async def flush_all(self: Any) -> None:
        await flush(self)
        waiting = list(self.__dict__.get("tokenbudget_unsent", ()))
        if not waiting:
            return
        _, late = await asyncio.wait(waiting, timeout=FLUSH_TIMEOUT)
        if late:
            raise RuntimeError(
                f"{len(late)} table writes not acknowledged by the broker in "
                f"{FLUSH_TIMEOUT:.0f} s: the input offsets are not committed"
            )

    flush_all.tokenbudget = True  # type: ignore[attr-defined]
    ProducerBuffer.put = put_tracked  # type: ignore[method-assign]
    ProducerBuffer.flush = flush_all  # type: ignore[method-assign]


def exact_end_offsets(app: Any, bootstrap: str, options: Mapping[str, Any]) -> None:
    """Make the app's table recovery restore up to the real end of each changelog on Tansu 0.6.

    Faust restores a table from its changelog up to the end offsets ListOffsets reports; Tansu
    0.6 reports the base offset of a partition's last record batch + 1, short of the end when
    that batch holds several records, so a restarted worker came back with stale tables. The
    workaround used to be one record per producer batch, which cost a quarter of the worker's
    throughput (`bench/pipeline.py`); the end offsets now come from `streams.broker.end_offsets`
    (the high watermark of a fetch, which Tansu gets right), for this app only.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from streams.broker import end_offsets

    async def exact(partitions: Any) -> Mapping[Any, int]:
        return await end_offsets(bootstrap, partitions, options=options)

    app.tokenbudget_end_offsets = exact
    highwaters = AIOKafkaConsumerThread._highwaters
    if getattr(highwaters, "tokenbudget", False):
        return

    async def highwaters_exact(self: Any, partitions: Any) -> Mapping[Any, int]:
        exact = getattr(self.app, "tokenbudget_end_offsets", None)
        if exact is None or self.consumer.in_transaction:
            return await highwaters(self, partitions)
        return await exact(partitions)

    highwaters_exact.tokenbudget = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = highwaters_exact  # type: ignore[method-assign]

"""Idle-session eviction in the worker: a Faust timer around `TurnProcessor.evict`.

A session that sends nothing for `TOKENBUDGET_SESSION_IDLE_TIMEOUT` seconds is evicted like a
SESSION_END: its live state leaves memory, its table rows are deleted (tombstones on the
changelog) and the agent gets a REJECTED command (rule `idle_timeout`). The timer runs every
`Limits.sweep_every` seconds on every worker, over the sessions of the partitions it holds;
finding the idle ones walks only those (sessions are kept in order of last activity).

A table write outside a stream event needs the partition its changelog record belongs to. A
session's rows live in the partition of its events, which is where Kafka's default partitioner
puts the session id key: the same assumption that co-partitions `history.compressed` (written by
the summarizer, keyed by session id) with `agent.turns`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.streams import _current_event

from streams.metrics import WorkerMetrics
from streams.processors.turns import Outputs, TurnProcessor

log = logging.getLogger("tokenbudget.worker")
SHOWN = 5
"""Session ids named in one sweep's log line (the rest are counted)."""


@dataclass(frozen=True, slots=True)
class _Coordinates:
    topic: str
    partition: int


class _Placement:
    """Stands in for a stream event: Faust sends table changes to its topic's partition."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Coordinates(topic, partition)


def partition_of(session_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives the session id as a key."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(session_id.encode(), every, every))


def settled(app: faust.App) -> bool:
    """Whether the worker holds its partitions with their tables restored (no rebalance on)."""
    recovered = app.tables.recovery.completed.is_set()
    return recovered and not app.rebalancing and not app.in_recovery


def install_idle_sweep(
    app: faust.App,
    processor: TurnProcessor,
    turns_topic: str,
    partitions: int,
    send: Callable[[str, Outputs], Awaitable[None]],
    metrics: WorkerMetrics,
) -> None:
    """Add the timer that evicts idle sessions (none when the idle timeout is 0)."""
    limits = processor.limits
    if limits.session_idle_timeout <= 0:
        return
    store = processor.store

    @app.timer(limits.sweep_every)
    async def evict_idle_sessions() -> None:
        """Evict the sessions idle past the timeout, oldest first."""
        if not settled(app):
            return
        if not store.complete:
            store.rebuild()  # restored from the changelog and not touched since: idle ones too
        held = {tp.partition for tp in app.consumer.assignment() if tp.topic == turns_topic}
        evicted: list[str] = []
        for session_id in processor.idle_sessions():
            partition = partition_of(session_id, partitions)
            if partition not in held:  # left in the table by a revoked partition: not ours
                store.live.pop(session_id, None)
                continue
            placement = _Placement(turns_topic, partition)  # kept alive while it is used
            _current_event.set(weakref.ref(placement))  # type: ignore[arg-type]
            out = Outputs()
            if processor.evict(session_id, out):
                evicted.append(session_id)
                metrics.observe(out)
                metrics.forget_session(session_id)
                await send(session_id, out)
        if evicted:
            named = ", ".join(map(repr, evicted[:SHOWN]))
            more = f" and {len(evicted) - SHOWN} more" if len(evicted) > SHOWN else ""
            log.info(
                "evicted %d idle session(s) (no event for %g s): %s%s",
                len(evicted),
                limits.session_idle_timeout,
                named,
                more,
            )
            metrics.flush()

"""`BudgetSnapshot`: a session's ledger after one turn, on `budget.events`, for dashboards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.budget.ledger import AlertLevel, ComponentUsage, Snapshot
from streams.budget.model import Component
from streams.errors import InvalidMessageError

Record = dict[str, Any]
_COMPONENTS = frozenset(c.value for c in Component)


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """A core `Snapshot` with the session, seq and model it belongs to."""

    event_id: str
    session_id: str
    seq: int
    model: str
    snapshot: Snapshot
    timestamp: float
    command_ids: tuple[str, ...] = ()
    count_factor: float = 1.0

    @classmethod
    def of(
        cls,
        session_id: str,
        seq: int,
        model: str,
        snapshot: Snapshot,
        timestamp: float,
        command_ids: tuple[str, ...] = (),
        count_factor: float = 1.0,
    ) -> BudgetSnapshot:
        """A snapshot event whose id is derived from session and seq (redelivery-stable)."""
        return cls(
            f"{session_id}/{seq}/snapshot",
            session_id,
            seq,
            model,
            snapshot,
            timestamp,
            command_ids,
            count_factor,
        )


def snapshot_to_record(event: BudgetSnapshot) -> Record:
    """The wire record of a snapshot; components in the ledger's order."""
    s = event.snapshot
    return {
        "event_id": event.event_id,
        "session_id": event.session_id,
        "seq": event.seq,
        "model": event.model,
        "context_limit": s.context_limit,
        "effective_limit": s.effective_limit,
        "reserved": s.reserved,
        "used": s.used,
        "overhead": s.overhead,
        "utilization": s.utilization,
        "level": s.level.value.upper(),
        "estimated": s.estimated,
        "components": [
            {"component": u.component.value, "used": u.used, "budget": u.budget}
            for u in s.components.values()
        ],
        "message_count": s.message_count,
        "timestamp": event.timestamp,
        "command_ids": list(event.command_ids),
        "count_factor": event.count_factor,
    }


def snapshot_from_record(record: Record) -> BudgetSnapshot:
    """A snapshot event; `utilization` is recomputed from `used` and `effective_limit`."""
    if record["effective_limit"] <= 0:
        raise InvalidMessageError(
            f"snapshot {record['event_id']!r}: effective limit {record['effective_limit']} "
            "must be positive"
        )
    components: dict[Component, ComponentUsage] = {}
    for usage in record["components"]:
        if usage["component"] not in _COMPONENTS:
            raise InvalidMessageError(
                f"snapshot {record['event_id']!r}: unknown component {usage['component']!r}"
            )
        component = Component(usage["component"])
        components[component] = ComponentUsage(component, usage["used"], usage["budget"])
    snapshot = Snapshot(
        context_limit=record["context_limit"],
        effective_limit=record["effective_limit"],
        reserved=record["reserved"],
        used=record["used"],
        overhead=record["overhead"],
        level=AlertLevel(record["level"].lower()),
        estimated=record["estimated"],
        message_count=record["message_count"],
        components=components,
    )
    return BudgetSnapshot(
        event_id=record["event_id"],
        session_id=record["session_id"],
        seq=record["seq"],
        model=record["model"],
        snapshot=snapshot,
        timestamp=record["timestamp"],
        command_ids=tuple(record["command_ids"]),
        count_factor=record["count_factor"],
    )

"""`DeadLetter`: a record that could not be decoded or validated, with its bytes and the reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
MAX_REASON_CHARS = 2000
"""A reason quotes what was wrong (an id, a value); a hostile record can make that long, and the
dead letter must stay about as small as the record it holds."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Where a bad record came from, what it held and why it was rejected."""

    event_id: str
    reason: str
    error_class: str
    source_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
    source_timestamp: float | None = None

    @classmethod
    def of(
        cls,
        error: BaseException,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        timestamp: float,
        source_timestamp: float | None = None,
    ) -> DeadLetter:
        """The dead letter for a record `error` rejected; its id is the record's coordinates."""
        reason = str(error) or type(error).__name__
        if len(reason) > MAX_REASON_CHARS:
            reason = f"{reason[: MAX_REASON_CHARS - 30]}… ({len(reason)} characters)"
        return cls(
            event_id=f"{topic}/{partition}/{offset}",
            reason=reason,
            error_class=type(error).__name__,
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            timestamp=timestamp,
            source_timestamp=source_timestamp,
        )


def dead_letter_to_record(letter: DeadLetter) -> Record:
    """The wire record of a dead letter."""
    return {
        "event_id": letter.event_id,
        "reason": letter.reason,
        "error_class": letter.error_class,
        "source_topic": letter.source_topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "key": letter.key,
        "value": letter.value,
        "source_timestamp": letter.source_timestamp,
        "timestamp": letter.timestamp,
    }


def dead_letter_from_record(record: Record) -> DeadLetter:
    """A dead letter (no validation: it exists to hold what failed validation)."""
    return DeadLetter(
        event_id=record["event_id"],
        reason=record["reason"],
        error_class=record["error_class"],
        source_topic=record["source_topic"],
        partition=record["partition"],
        offset=record["offset"],
        key=record["key"],
        value=record["value"],
        timestamp=record["timestamp"],
        source_timestamp=record["source_timestamp"],
    )

"""`CompressedHistory`: the summarizer's answer to a SUMMARIZE command, on `history.compressed`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.errors import InvalidMessageError

Record = dict[str, Any]


class SummaryStatus(StrEnum):
    """Whether the summarizer produced a summary."""

    OK = "OK"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class CompressedHistory:
    """A summary of a segment (or why there is none), tied to the command that asked for it."""

    summary_id: str
    session_id: str
    source_command_id: str
    replaces: tuple[str, ...]
    backend: str
    status: SummaryStatus
    created_at: float
    summary: str = ""
    token_count: int = 0
    error: str | None = None
    source_seq: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", SummaryStatus(self.status))
        object.__setattr__(self, "replaces", tuple(self.replaces))
        if not self.summary_id or not self.session_id or not self.source_command_id:
            raise InvalidMessageError(
                "a compressed history needs a summary_id, a session_id and a source_command_id"
            )
        if not self.replaces:
            raise InvalidMessageError(f"summary {self.summary_id!r} replaces no message")
        if self.status is SummaryStatus.OK and not self.summary:
            raise InvalidMessageError(f"summary {self.summary_id!r} is OK but empty")
        if self.status is SummaryStatus.FAILED and not self.error:
            raise InvalidMessageError(f"summary {self.summary_id!r} FAILED without an error")


def summary_to_record(summary: CompressedHistory) -> Record:
    """The wire record of a compressed history."""
    return {
        "summary_id": summary.summary_id,
        "session_id": summary.session_id,
        "source_command_id": summary.source_command_id,
        "source_seq": summary.source_seq,
        "replaces": list(summary.replaces),
        "summary": summary.summary,
        "token_count": summary.token_count,
        "backend": summary.backend,
        "status": summary.status.value,
        "error": summary.error,
        "created_at": summary.created_at,
    }


def summary_from_record(record: Record) -> CompressedHistory:
    """A validated compressed history."""
    return CompressedHistory(
        summary_id=record["summary_id"],
        session_id=record["session_id"],
        source_command_id=record["source_command_id"],
        replaces=tuple(record["replaces"]),
        backend=record["backend"],
        status=SummaryStatus(record["status"]),
        created_at=record["created_at"],
        summary=record["summary"],
        token_count=record["token_count"],
        error=record["error"],
        source_seq=record["source_seq"],
    )

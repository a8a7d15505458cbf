"""Identifiers an agent sends: event, session, message and tool-call ids, names, the model.

They travel into every record the worker writes for a session (table keys, command ids,
snapshots, dead letters), so they are bounded in length. Session and event ids may not hold
control characters either: the table's keys join a session id and a row name with `\\x1f`, so a
session id holding one could name another session's rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from streams.errors import InvalidMessageError

MAX_ID_CHARS = 512
"""Longest identifier accepted from an agent, in characters."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_identifier(value: object, what: str, *, key: bool = False) -> None:
    """`InvalidMessageError` for an identifier that is too long, or for a `key` (a session or
    event id) that holds a control character."""
    if not isinstance(value, str):
        return
    if len(value) > MAX_ID_CHARS:
        raise InvalidMessageError(
            f"{what} of {len(value)} characters is longer than the {MAX_ID_CHARS} allowed "
            f"(it starts {value[:32]!r})"
        )
    if key and _CONTROL.search(value):
        raise InvalidMessageError(f"{what} {value!r} holds a control character")


def check_message_identifiers(record: Mapping[str, Any]) -> None:
    """Check the ids and names of a wire message record and of its content parts."""
    for name in ("id", "tool_call_id", "name"):
        check_identifier(record.get(name), f"message {name}")
    for message_id in record.get("summary_of") or ():
        check_identifier(message_id, "summary_of id")
    content = record.get("content")
    if isinstance(content, list):
        for part in content:
            for name in ("id", "name", "tool_call_id"):
                check_identifier(part.get(name), f"content part {name}")

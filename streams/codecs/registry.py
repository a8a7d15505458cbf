"""Schemas by fingerprint: which schema wrote a message, and which one we read it as.

The current schemas live in `schemas/<Record>.avsc`, one record per file; records embed `Message`
by name, so files are parsed in dependency order into one name space. Every schema a producer may
still be running is kept under `schemas/history/` as a self-contained file (its Parsing Canonical
Form is enough: a writer schema needs no docs or defaults), so old messages stay readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from avro.name import Names
from avro.schema import RecordSchema, Schema, make_avsc_object, parse

from streams.codecs.single_object import fingerprint
from streams.errors import DecodeError

NAMESPACE = "tokenbudget.v1"
RECORDS: tuple[str, ...] = (
    "Message",
    "TurnEvent",
    "BudgetCommand",
    "BudgetSnapshot",
    "CompressedHistory",
    "DeadLetter",
)
"""Record files in dependency order (`Message` first: two records embed it)."""


def default_schema_dir() -> Path:
    """The repository's `schemas/` directory."""
    return Path(__file__).resolve().parents[2] / "schemas"


def full_name(record: str) -> str:
    """`TurnEvent` → `tokenbudget.v1.TurnEvent`; full names pass through."""
    return record if "." in record else f"{NAMESPACE}.{record}"


class SchemaRegistry:
    """Writer schemas by fingerprint, and the current (reader) schema of every record."""

    def __init__(self) -> None:
        self._writers: dict[bytes, RecordSchema] = {}
        self._current: dict[str, RecordSchema] = {}

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaRegistry:
        """The current schemas of `directory` plus every older version under its `history/`."""
        directory = directory or default_schema_dir()
        registry = cls()
        names = Names()
        for record in RECORDS:
            text = (directory / f"{record}.avsc").read_text(encoding="utf-8")
            registry.add(make_avsc_object(json.loads(text), names), current=True)
        registry.add_all(
            parse(path.read_text(encoding="utf-8"))
            for path in sorted((directory / "history").glob("*.avsc"))
        )
        return registry

    def add(self, schema: Schema, *, current: bool = False) -> bytes:
        """Register a writer schema (the reader schema too when `current`); its fingerprint."""
        if not isinstance(schema, RecordSchema):
            raise TypeError(f"only records travel on topics, got a {schema.type} schema")
        key = fingerprint(schema)
        known = self._writers.get(key)
        if known is not None and known.canonical_form != schema.canonical_form:
            raise ValueError(f"fingerprint collision between two {schema.fullname} schemas")
        self._writers[key] = schema
        if current:
            self._current[schema.fullname] = schema
        return key

    def add_all(self, schemas: Iterable[Schema]) -> None:
        """Register older writer schemas."""
        for schema in schemas:
            self.add(schema)

    def writer(self, key: bytes) -> RecordSchema:
        """The schema with this fingerprint; `DecodeError` when no known schema has it."""
        schema = self._writers.get(key)
        if schema is None:
            raise DecodeError(
                f"unknown writer schema fingerprint {key.hex()} (a producer with a newer or "
                "foreign schema: add it to schemas/history)",
                kind="unknown_schema",
            )
        return schema

    def current(self, record: str) -> RecordSchema:
        """The schema we write and read `record` with now."""
        try:
            return self._current[full_name(record)]
        except KeyError:
            raise KeyError(
                f"no current schema for {record!r} (known: {', '.join(sorted(self._current))})"
            ) from None

    @property
    def writers(self) -> Mapping[bytes, RecordSchema]:
        """Every registered schema by fingerprint (read-only view)."""
        return MappingProxyType(self._writers)

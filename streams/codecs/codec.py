"""Encode and decode records: single-object framing around the `avro` package's binary codec.

Parsed schemas, datum writers and datum readers are built once per (writer, reader) pair and
cached: building them, and checking that an old writer schema resolves to the current reader
schema, is far costlier than a message. Every failure to decode is a `DecodeError` whose message
is the dead-letter reason and whose `kind` is a bounded metrics label.

The common case, writing with the current schema and reading bytes that it wrote, takes a fast
path: the schema compiled to closures (`streams.codecs.compiled`), about ten times cheaper than
the `avro` package's interpretation. Whenever a closure is not sure (a datum that does not fit,
a corrupt body, an older writer schema) the `avro` package does the work, so bytes, values and
errors are the package's either way; `AvroCodec(registry, compiled=False)` always uses it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.errors import AvroException
from avro.io import BinaryDecoder, BinaryEncoder, DatumReader, DatumWriter, validate
from avro.schema import RecordSchema, Schema, UnionSchema

from streams.codecs.compiled import (
    Check,
    Reader,
    Unsupported,
    Writer,
    compile_check,
    compile_reader,
    compile_writer,
)
from streams.codecs.registry import SchemaRegistry
from streams.codecs.single_object import HEADER_SIZE, fingerprint, header, read_fingerprint
from streams.errors import DecodeError, EncodeError, TokenBudgetError

T = TypeVar("T")
Record = dict[str, Any]
_WriterEntry = tuple[bytes, DatumWriter, RecordSchema, Writer | None, Check | None]
_ReaderEntry = tuple[DatumReader, Reader | None]


@dataclass(frozen=True, slots=True)
class RecordType(Generic[T]):
    """A wire record and its one mapping to and from a typed value."""

    name: str
    to_record: Callable[[T], Record]
    from_record: Callable[[Record], T]


class AvroCodec:
    """Single-object Avro for every record the registry knows."""

    def __init__(self, registry: SchemaRegistry, *, compiled: bool = True) -> None:
        self.registry = registry
        self.compiled = compiled
        """Whether the fast path is taken; False: the `avro` package alone (for comparison)."""
        self._writers: dict[str, _WriterEntry] = {}
        self._readers: dict[tuple[bytes, str], _ReaderEntry] = {}

    def encode(self, record: str, datum: Mapping[str, Any], *, checked: bool = True) -> bytes:
        """Header plus the Avro body of `datum`, written with the current `record` schema.

        `checked=False` skips `avro`'s whole-datum validation pass (a third of the cost) for
        datums built by our own mappings, whose keys always match the schema; every value is
        still type-checked as it is written, so a wrong type is an `EncodeError` either way.
        """
        head, writer, schema, fast, valid = self._writers.get(record) or self._writer(record)
        if fast is not None and valid is not None:
            try:
                if not checked or valid(datum):
                    buffer = bytearray(head)
                    fast(buffer, datum)
                    return bytes(buffer)
            except Exception:
                pass  # not sure: the avro path below writes it, or explains why it cannot
        out = io.BytesIO()
        out.write(head)
        try:
            if checked:
                writer.write(datum, BinaryEncoder(out))
            else:
                writer.write_data(schema, datum, BinaryEncoder(out))
        except (AvroException, ValueError) as error:
            raise EncodeError(f"{schema.name}: {_explain(schema, datum)}") from error
        return out.getvalue()

    def decode(self, data: bytes, record: str) -> Record:
        """The record in `data`, resolved from its writer schema to the current `record` schema."""
        if not isinstance(data, bytes | bytearray | memoryview):  # a tombstone: no value at all
            raise DecodeError(f"no bytes ({type(data).__name__})", kind="bad_header", record=record)
        try:
            key = read_fingerprint(data)
            reader, fast = self._readers.get((key, record)) or self._reader(key, record)
        except DecodeError as error:
            raise DecodeError(str(error), kind=error.kind, record=record) from None
        if fast is not None:
            try:
                buffer = data if type(data) is bytes else bytes(data)
                datum, end = fast(buffer, HEADER_SIZE)
                if end == len(buffer):
                    return datum  # type: ignore[no-any-return]
            except Exception:
                pass  # not sure: the avro path below reads it, or says why it cannot
        body = io.BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            datum = reader.read(BinaryDecoder(body))
        except (AvroException, UnicodeDecodeError, struct.error, ValueError) as error:
            said = str(error).partition("\n")[0]  # avro appends both schemas on further lines
            raise DecodeError(
                f"corrupt or truncated body ({type(error).__name__}: {said})",
                kind="bad_body",
                record=record,
            ) from error
        rest = len(data) - body.tell()
        if rest:
            raise DecodeError(f"{rest} bytes left after the body", kind="bad_body", record=record)
        return datum  # type: ignore[no-any-return]

    def dumps(self, kind: RecordType[T], value: T) -> bytes:
        """Encode a typed value (a `TurnEvent`, a `BudgetCommand`, ...)."""
        return self.encode(kind.name, kind.to_record(value), checked=False)

    def loads(self, kind: RecordType[T], data: bytes) -> T:
        """Decode and validate a typed value; every failure is a `DecodeError`."""
        record = self.decode(data, kind.name)
        try:
            return kind.from_record(record)
        except (TokenBudgetError, ValueError) as error:
            if isinstance(error, DecodeError):
                raise
            raise DecodeError(str(error), kind="invalid", record=kind.name) from error

    def holds(self, kind: RecordType[Any], data: object) -> bool:
        """Whether `data` was written with a known schema of `kind`'s record (header only).

        For a topic that carries more than one record type; anything unreadable is False, and
        decoding it as the topic's main record then gives the dead-letter reason.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            return False
        try:
            writer = self.registry.writer(read_fingerprint(bytes(data[:HEADER_SIZE])))
        except DecodeError:
            return False
        return writer.fullname == self.registry.current(kind.name).fullname

    def _writer(self, record: str) -> _WriterEntry:
        schema = self.registry.current(record)
        fast: Writer | None = None
        valid: Check | None = None
        if self.compiled:
            with suppress(Unsupported):  # a logical type, a recursive record: avro writes it
                fast, valid = compile_writer(schema), compile_check(schema)
        entry = (header(fingerprint(schema)), DatumWriter(schema), schema, fast, valid)
        self._writers[record] = entry
        return entry

    def _reader(self, key: bytes, record: str) -> _ReaderEntry:
        writer = self.registry.writer(key)
        reader = self.registry.current(record)
        if writer.fullname != reader.fullname:
            raise DecodeError(f"the bytes hold a {writer.fullname}", kind="wrong_record")
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        if result.compatibility is not SchemaCompatibilityType.compatible:
            raise DecodeError(
                f"writer schema {key.hex()} cannot be read as the current schema: "
                f"{'; '.join(sorted(result.messages))} at {', '.join(sorted(result.locations))}",
                kind="incompatible_schema",
            )
        fast: Reader | None = None
        if self.compiled and key == fingerprint(reader):  # no resolution: read as written
            with suppress(Unsupported):
                fast = compile_reader(writer)  # what avro's reading follows: the writer's schema
        entry = (DatumReader(writer, reader), fast)
        self._readers[(key, record)] = entry
        return entry


def _explain(schema: Schema, datum: object, path: str = "") -> str:
    """The first field of `datum` that does not fit `schema`, in a line (not the whole schema)."""
    if isinstance(schema, UnionSchema) and isinstance(datum, Mapping):
        records = [branch for branch in schema.schemas if isinstance(branch, RecordSchema)]
        if len(records) == 1:  # an optional record: explain inside it
            schema = records[0]
    if isinstance(schema, RecordSchema) and isinstance(datum, Mapping):
        unknown = sorted(set(datum) - {f.name for f in schema.fields})
        if unknown:
            return f"unknown field(s) {', '.join(map(repr, unknown))} at {path or '/'}"
        for field in schema.fields:
            value = datum.get(field.name)
            if not validate(field.type, value):
                return _explain(field.type, value, f"{path}/{field.name}")
    shown = repr(datum)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{path or '/'} = {shown} ({type(datum).__name__}) is not a valid {schema.type}"


@cache
def default_codec() -> AvroCodec:
    """The process's codec over the repository's schemas (loaded on first use, not on import)."""
    return AvroCodec(SchemaRegistry.load())

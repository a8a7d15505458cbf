"""Avro binary encoding compiled to nested closures, one tree per schema: the codec's fast path.

Why: the `avro` package interprets the schema for every datum (a dispatch on the schema type per
value, an encoder call and a small `bytearray` per varint byte, a full `validate` pass per union
branch), about 80 µs to decode one TurnEvent or to encode one BudgetSnapshot: a sixth of what the
worker may spend per turn. Walking the schema once and nesting closures that do the same thing
leaves only the work the bytes need: 6 to 9 µs (`bench/codecs.py`).

The `avro` package remains the schema authority: it parses the schemas, computes fingerprints,
resolves older writer schemas against the current ones and words every error. The closures are a
specialization of its binary encoding for one schema (the writer's schema is the reader's), and
they copy its rules, the surprising ones included:

- an unchecked write (`DatumWriter.write_data`) type-checks each value with `isinstance` but no
  int range; a record writes `datum.get(field)`, so an extra key is ignored and a missing one is
  written as null (an error unless the field's type takes null);
- a union is written with the *last* branch that `avro.io.validate` accepts: an int in
  `["double", "long"]` is a long, a float a double, and so is `True` (a bool is an int to it);
- `validate` (also the whole-datum check of a checked write) checks a nested union against its
  *first* branch whose top level fits, a record as a `dict` whose keys are all fields, an array
  as a `list`, a map as a `dict` of `str` keys, a float or double as any int or float;
- a read accepts every varint avro accepts (non-canonical ones too, at most 10 bytes), takes a
  boolean byte other than 1 as false, and refuses negative lengths and union or enum indexes out
  of range.

Where that is not certain the closures do not guess: compiling a schema they do not specialize
(logical types, recursive records, error types) raises `Unsupported`, and at run time a closure
raises on anything unusual (an int subclass, a non-`str` map key, a truncated body, more
collection items than bytes left, ...). `AvroCodec` then redoes the work with the `avro` package,
so what comes out, bytes, values or errors, is always what the package gives.
`tests/unit/test_compiled_codec.py` checks the two paths against each other on real records,
mutated bytes and wrong-typed datums.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from avro.schema import (
    INT_MAX_VALUE,
    INT_MIN_VALUE,
    LONG_MAX_VALUE,
    LONG_MIN_VALUE,
    ArraySchema,
    EnumSchema,
    FixedSchema,
    MapSchema,
    PrimitiveSchema,
    RecordSchema,
    Schema,
    UnionSchema,
)

Writer = Callable[[bytearray, Any], None]
"""Appends the Avro binary encoding of a datum to a buffer."""
Check = Callable[[Any], bool]
"""Whether `avro.io.validate` accepts a datum."""
Reader = Callable[[bytes, int], tuple[Any, int]]
"""Reads a value at a position of a buffer: the value and the position after it."""

_COLLECTION_LIMIT_ENV = "AVRO_MAX_COLLECTION_ITEMS"  # avro.io.MAX_COLLECTION_ITEMS_ENV
_STRUCTURAL_LIMIT = (1 << 31) - 1 - 8  # avro.io.DEFAULT_MAX_COLLECTION_STRUCTURAL
_pack_float = struct.Struct("<f").pack
_pack_double = struct.Struct("<d").pack
_unpack_float = struct.Struct("<f").unpack_from
_unpack_double = struct.Struct("<d").unpack_from


_PLAIN = (  # exact classes: the logical types are subclasses of these
    PrimitiveSchema,
    RecordSchema,
    UnionSchema,
    ArraySchema,
    MapSchema,
    EnumSchema,
    FixedSchema,
)


class Unsupported(Exception):
    """A schema the closures do not specialize; the codec keeps the `avro` package for it."""


class _Refused(Exception):
    """A datum or body the closures are not sure of; the caller redoes it with `avro`."""


def compile_writer(schema: Schema) -> Writer:
    """The closure that writes a datum as `DatumWriter.write_data(schema, ...)` does."""
    return _Compiler().writer(schema)


def compile_check(schema: Schema) -> Check:
    """The closure that answers as `avro.io.validate(schema, datum)` does."""
    return _Compiler().check(schema)


def compile_reader(schema: Schema) -> Reader:
    """The closure that reads a body as `DatumReader(schema, schema)` does."""
    return _Compiler().reader(schema)


def write_long(out: bytearray, n: int) -> None:
    """Zig-zag varint, as `BinaryEncoder.write_long` (any Python int, no range check)."""
    n = (n << 1) ^ (n >> 63)  # never negative: both operands have n's sign
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint, as `BinaryDecoder.read_long` (at most 10 bytes, a 64-bit value)."""
    byte = data[pos]
    pos += 1
    n = byte & 0x7F
    shift = 7
    while byte & 0x80:
        if shift >= 70:
            raise _Refused("varint is too long")
        byte = data[pos]
        pos += 1
        if shift == 63 and byte & 0x7E:
            raise _Refused("varint is too long")
        n |= (byte & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _supported(schema: Schema) -> None:
    """Raise `Unsupported` unless `schema` is a plain type (no logical type, no error type)."""
    if type(schema) not in _PLAIN or getattr(schema, "logical_type", None):
        raise Unsupported(f"{type(schema).__name__} ({schema.type})")
    if isinstance(schema, RecordSchema) and schema.type != "record":
        raise Unsupported(f"{schema.type} schema")
    if isinstance(schema, UnionSchema) and any(
        isinstance(branch, UnionSchema) for branch in schema.schemas
    ):
        raise Unsupported("a union directly inside a union")


def _zero_bytes(schema: Schema, seen: frozenset[int] = frozenset()) -> bool:
    """Whether every value of `schema` encodes to no bytes at all (null, fixed(0), ...)."""
    if schema.type == "null":
        return True
    if isinstance(schema, FixedSchema):
        return schema.size == 0
    if isinstance(schema, RecordSchema) and id(schema) not in seen:
        return all(_zero_bytes(f.type, seen | {id(schema)}) for f in schema.fields)
    return False


class _Compiler:
    """Builds the closures for one schema tree; named records are compiled once each."""

    def __init__(self) -> None:
        self._writers: dict[int, Writer] = {}
        self._checks: dict[int, Check] = {}
        self._readers: dict[int, Reader] = {}
        self._open: set[tuple[str, int]] = set()  # records being compiled: recursion

    def _enter(self, kind: str, schema: Schema) -> None:
        if (kind, id(schema)) in self._open:
            raise Unsupported(f"recursive record {schema.fullname}")  # type: ignore[attr-defined]
        self._open.add((kind, id(schema)))

    # --- writing: DatumWriter.write_data ----------------------------------------------------

    def writer(self, schema: Schema) -> Writer:
        """The writer of `schema` (see `compile_writer`)."""
        return _cached(self._writers, schema, self._new_writer)

    def _new_writer(self, schema: Schema) -> Writer:
        kind = schema.type
        if isinstance(schema, RecordSchema):
            self._enter("writer", schema)
            fields = tuple((f.name, self.writer(f.type)) for f in schema.fields)
            self._open.discard(("writer", id(schema)))

            def write_record(out: bytearray, datum: Any) -> None:
                if type(datum) is not dict and not isinstance(datum, Mapping):
                    raise _Refused("not a mapping")
                get = datum.get
                for name, write in fields:
                    write(out, get(name))

            return write_record
        if isinstance(schema, UnionSchema):
            return self._union_writer(schema)
        if isinstance(schema, ArraySchema):
            write_item = self.writer(schema.items)

            def write_array(out: bytearray, datum: Any) -> None:
                if type(datum) is not list and not isinstance(datum, Sequence):
                    raise _Refused("not a sequence")
                if len(datum) > 0:
                    write_long(out, len(datum))
                    for item in datum:
                        write_item(out, item)
                out.append(0)

            return write_array
        if isinstance(schema, MapSchema):
            write_value = self.writer(schema.values)

            def write_map(out: bytearray, datum: Any) -> None:
                if type(datum) is not dict and not isinstance(datum, Mapping):
                    raise _Refused("not a mapping")
                if len(datum) > 0:
                    write_long(out, len(datum))
                    for key, value in datum.items():
                        if type(key) is not str:  # avro calls key.encode on anything
                            raise _Refused("a map key that is not a str")
                        _write_string(out, key)
                        write_value(out, value)
                out.append(0)

            return write_map
        if isinstance(schema, EnumSchema):
            symbols = list(schema.symbols)
            indexes = {symbol: i for i, symbol in enumerate(symbols)}

            def write_enum(out: bytearray, datum: Any) -> None:
                if type(datum) is str:
                    write_long(out, indexes[datum])  # KeyError: the avro path raises
                elif isinstance(datum, str):
                    write_long(out, symbols.index(datum))
                else:
                    raise _Refused("not a str")

            return write_enum
        if isinstance(schema, FixedSchema):

            def write_fixed(out: bytearray, datum: Any) -> None:
                if type(datum) is not bytes:
                    raise _Refused("not bytes")
                out += datum  # no size check: write_data does not check it either

            return write_fixed
        return _PRIMITIVE_WRITERS[kind]

    def _union_writer(self, schema: UnionSchema) -> Writer:
        branches = list(enumerate(schema.schemas))
        null = next((i for i, branch in branches if branch.type == "null"), None)
        # write_union keeps the last branch that validates: try them last first. None only ever
        # validates as null, and null validates nothing else.
        others = tuple(
            (i, self.check(branch), self.writer(branch))
            for i, branch in reversed(branches)
            if branch.type != "null"
        )

        def write_union(out: bytearray, datum: Any) -> None:
            if datum is None:
                if null is None:
                    raise _Refused("null for a union without null")
                write_long(out, null)
                return
            for i, check, write in others:
                if check(datum):
                    write_long(out, i)
                    write(out, datum)
                    return
            raise _Refused("no branch of the union validates")

        return write_union

    # --- validating: avro.io.validate -------------------------------------------------------

    def check(self, schema: Schema) -> Check:
        """The check of `schema` (see `compile_check`)."""
        return _cached(self._checks, schema, self._new_check)

    def _new_check(self, schema: Schema) -> Check:
        if isinstance(schema, RecordSchema):
            self._enter("check", schema)
            names = frozenset(f.name for f in schema.fields)
            fields = tuple((f.name, self.check(f.type)) for f in schema.fields)
            self._open.discard(("check", id(schema)))

            def check_record(datum: Any) -> bool:
                if not isinstance(datum, dict) or not names.issuperset(datum.keys()):
                    return False
                get = datum.get
                for name, check in fields:  # noqa: SIM110 (all() of a generator: 2x slower)
                    if not check(get(name)):
                        return False
                return True

            return check_record
        if isinstance(schema, UnionSchema):
            # validate() descends into the first branch whose top level fits, and only that one.
            branches = tuple((_shallow(branch), self.check(branch)) for branch in schema.schemas)

            def check_union(datum: Any) -> bool:
                for fits, check in branches:
                    if fits(datum):
                        return check(datum)
                return False

            return check_union
        if isinstance(schema, ArraySchema):
            check_item = self.check(schema.items)
            return lambda datum: isinstance(datum, list) and all(map(check_item, datum))
        if isinstance(schema, MapSchema):
            check_value = self.check(schema.values)
            return lambda datum: (
                isinstance(datum, dict)
                and all(isinstance(key, str) for key in datum)
                and all(map(check_value, datum.values()))
            )
        return _shallow(schema)  # no children: the top level is all there is

    # --- reading: DatumReader.read_data -----------------------------------------------------

    def reader(self, schema: Schema) -> Reader:
        """The reader of `schema` (see `compile_reader`)."""
        return _cached(self._readers, schema, self._new_reader)

    def _new_reader(self, schema: Schema) -> Reader:
        if isinstance(schema, RecordSchema):
            self._enter("reader", schema)
            fields = tuple((f.name, self.reader(f.type)) for f in schema.fields)
            self._open.discard(("reader", id(schema)))

            def read_record(data: bytes, pos: int) -> tuple[Any, int]:
                record = {}
                for name, read in fields:
                    record[name], pos = read(data, pos)
                return record, pos

            return read_record
        if isinstance(schema, UnionSchema):
            branches = tuple(self.reader(branch) for branch in schema.schemas)
            count = len(branches)

            def read_union(data: bytes, pos: int) -> tuple[Any, int]:
                index = data[pos]
                if index < 0x80:
                    index = (index >> 1) ^ -(index & 1)
                    pos += 1
                else:
                    index, pos = read_long(data, pos)
                if not 0 <= index < count:
                    raise _Refused(f"union branch {index} of {count}")
                return branches[index](data, pos)

            return read_union
        if isinstance(schema, ArraySchema):
            return _array_reader(self.reader(schema.items), _zero_bytes(schema.items))
        if isinstance(schema, MapSchema):
            return _map_reader(self.reader(schema.values))
        if isinstance(schema, EnumSchema):
            symbols = tuple(schema.symbols)
            count = len(symbols)

            def read_enum(data: bytes, pos: int) -> tuple[Any, int]:
                index, pos = read_long(data, pos)
                if not 0 <= index < count:  # the avro path applies the enum's default, if any
                    raise _Refused(f"enum index {index} of {count}")
                return symbols[index], pos

            return read_enum
        if isinstance(schema, FixedSchema):
            size = schema.size

            def read_fixed(data: bytes, pos: int) -> tuple[Any, int]:
                end = pos + size
                if end > len(data):
                    raise _Refused("truncated")
                return data[pos:end], end

            return read_fixed
        return _PRIMITIVE_READERS[schema.type]


def _shallow(schema: Schema) -> Check:
    """`schema.validate(datum) is not None`: the top level only, as `validate` tests each node."""
    kind = schema.type
    if isinstance(schema, RecordSchema):
        names = frozenset(f.name for f in schema.fields)
        return lambda datum: isinstance(datum, dict) and names.issuperset(datum.keys())
    if isinstance(schema, ArraySchema):
        return lambda datum: isinstance(datum, list)
    if isinstance(schema, MapSchema):
        return lambda datum: isinstance(datum, dict) and all(isinstance(k, str) for k in datum)
    if isinstance(schema, EnumSchema):
        symbols = list(schema.symbols)  # `in` a list, as avro: == on each symbol
        return lambda datum: datum in symbols
    if isinstance(schema, FixedSchema):
        size = schema.size
        return lambda datum: isinstance(datum, bytes) and len(datum) == size
    if isinstance(schema, UnionSchema):
        raise Unsupported("a union directly inside a union")
    return _PRIMITIVE_CHECKS[kind]


def _write_null(out: bytearray, datum: Any) -> None:
    if datum is not None:
        raise _Refused("not None")


def _write_boolean(out: bytearray, datum: Any) -> None:
    if type(datum) is not bool:
        raise _Refused("not a bool")
    out.append(1 if datum else 0)


def _write_long(out: bytearray, datum: Any) -> None:
    if type(datum) is not int:  # bool and other int subclasses: the avro path
        raise _Refused("not an int")
    n = (datum << 1) ^ (datum >> 63)  # write_long, inlined: the most common value
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _write_float(out: bytearray, datum: Any) -> None:
    if type(datum) is not float and type(datum) is not int:
        raise _Refused("not a float")
    out += _pack_float(datum)


def _write_double(out: bytearray, datum: Any) -> None:
    if type(datum) is not float and type(datum) is not int:
        raise _Refused("not a float")
    out += _pack_double(datum)


def _write_string(out: bytearray, datum: Any) -> None:
    if type(datum) is not str:  # str subclasses (an enum's members): the avro path
        raise _Refused("not a str")
    encoded = datum.encode()
    size = len(encoded)
    if size < 64:
        out.append(size << 1)
    else:
        write_long(out, size)
    out += encoded


def _write_bytes(out: bytearray, datum: Any) -> None:
    if type(datum) is not bytes:
        raise _Refused("not bytes")
    write_long(out, len(datum))
    out += datum


_PRIMITIVE_WRITERS: dict[str, Writer] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": _write_long,  # write_data checks neither range: only validate() does
    "long": _write_long,
    "float": _write_float,
    "double": _write_double,
    "string": _write_string,
    "bytes": _write_bytes,
}

_PRIMITIVE_CHECKS: dict[str, Check] = {  # PrimitiveSchema._validators, verbatim
    "null": lambda x: x is None,
    "boolean": lambda x: isinstance(x, bool),
    "string": lambda x: isinstance(x, str),
    "bytes": lambda x: isinstance(x, bytes),
    "int": lambda x: isinstance(x, int) and INT_MIN_VALUE <= x <= INT_MAX_VALUE,
    "long": lambda x: isinstance(x, int) and LONG_MIN_VALUE <= x <= LONG_MAX_VALUE,
    "float": lambda x: isinstance(x, int | float),
    "double": lambda x: isinstance(x, int | float),
}


def _read_null(data: bytes, pos: int) -> tuple[Any, int]:
    return None, pos


def _read_boolean(data: bytes, pos: int) -> tuple[Any, int]:
    return data[pos] == 1, pos + 1  # avro: any byte but 1 is false


def _read_long(data: bytes, pos: int) -> tuple[Any, int]:
    byte = data[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    return read_long(data, pos)


def _read_float(data: bytes, pos: int) -> tuple[Any, int]:
    return _unpack_float(data, pos)[0], pos + 4  # struct.error when truncated


def _read_double(data: bytes, pos: int) -> tuple[Any, int]:
    return _unpack_double(data, pos)[0], pos + 8


def _read_bytes(data: bytes, pos: int) -> tuple[Any, int]:
    size = data[pos]
    if size < 0x80:
        size = (size >> 1) ^ -(size & 1)
        pos += 1
    else:
        size, pos = read_long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise _Refused(f"{size} bytes at {pos} of {len(data)}")
    return data[pos:end], end


def _read_string(data: bytes, pos: int) -> tuple[Any, int]:
    raw, end = _read_bytes(data, pos)
    return raw.decode(), end  # strict UTF-8, as avro


_PRIMITIVE_READERS: dict[str, Reader] = {
    "null": _read_null,
    "boolean": _read_boolean,
    "int": _read_long,  # read_int is read_long: no range check
    "long": _read_long,
    "float": _read_float,
    "double": _read_double,
    "string": _read_string,
    "bytes": _read_bytes,
}


def _block(data: bytes, pos: int, existing: int) -> tuple[int, int]:
    """The item count of the next array or map block (0 at the end), past its header.

    A negative count is followed by the block's size in bytes, which avro skips unread (but
    checked as a varint). Counts avro would refuse, or might (a collection limit set in the
    environment), are refused here; so is a count larger than the bytes left, which cannot hold
    that many items of a byte or more.
    """
    count, pos = _read_long(data, pos)
    if count:
        if count < 0:
            count = -count
            _, pos = read_long(data, pos)
        if count > len(data) - pos or existing + count > _STRUCTURAL_LIMIT:
            raise _Refused(f"a block of {count} items")
        if _COLLECTION_LIMIT_ENV in os.environ:
            raise _Refused(f"{_COLLECTION_LIMIT_ENV} is set")
    return count, pos


def _array_reader(read_item: Reader, zero_bytes: bool) -> Reader:
    def read_array(data: bytes, pos: int) -> tuple[Any, int]:
        items: list[Any] = []
        if data[pos] == 0:  # the empty array, by far the most common
            return items, pos + 1
        count, pos = _block(data, pos, 0)
        while count:
            if zero_bytes:  # bounded by avro's per-datum item budget: let it count
                raise _Refused("items that take no bytes")
            append = items.append
            for _ in range(count):
                item, pos = read_item(data, pos)
                append(item)
            count, pos = _block(data, pos, len(items))
        return items, pos

    return read_array


def _map_reader(read_value: Reader) -> Reader:
    def read_map(data: bytes, pos: int) -> tuple[Any, int]:
        values: dict[str, Any] = {}
        read = 0  # pairs, not keys: a key may repeat
        count, pos = _block(data, pos, read)
        while count:
            read += count
            for _ in range(count):
                key, pos = _read_string(data, pos)
                values[key], pos = read_value(data, pos)
            count, pos = _block(data, pos, read)
        return values, pos

    return read_map


def _cached(cache: dict[int, Any], schema: Schema, build: Callable[[Schema], Any]) -> Any:
    """The closure compiled for `schema` in `cache`, built (once) when missing."""
    found = cache.get(id(schema))
    if found is None:
        _supported(schema)
        found = cache[id(schema)] = build(schema)
    return found

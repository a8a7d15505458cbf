"""Avro single-object encoding: the framing of every message on every topic.

Layout (Avro specification, "Single-object encoding"): the two-byte marker `C3 01`, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the
Avro binary body. The fingerprint tells a reader which schema wrote the body without a schema
registry service; the body is resolved against the reader's schema.
"""

from __future__ import annotations

from avro.schema import Schema

from streams.errors import DecodeError

MARKER = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(MARKER) + FINGERPRINT_SIZE


def fingerprint(schema: Schema) -> bytes:
    """The schema's CRC-64-AVRO (Rabin) fingerprint of its canonical form, little-endian."""
    return schema.fingerprint("CRC-64-AVRO")


def header(schema_fingerprint: bytes) -> bytes:
    """The 10-byte header that precedes a body written with the fingerprinted schema."""
    if len(schema_fingerprint) != FINGERPRINT_SIZE:
        raise ValueError(f"a CRC-64-AVRO fingerprint has 8 bytes, got {len(schema_fingerprint)}")
    return MARKER + schema_fingerprint


def read_fingerprint(data: bytes) -> bytes:
    """The writer schema's fingerprint (the body follows at `HEADER_SIZE`); checks the marker."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(
            f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte single-object header",
            kind="bad_header",
        )
    if data[:2] != MARKER:
        raise DecodeError(
            f"bad marker {bytes(data[:2]).hex(' ')} (expected c3 01: not Avro single-object "
            "encoding)",
            kind="bad_header",
        )
    return bytes(data[2:HEADER_SIZE])

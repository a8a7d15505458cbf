"""The wire format of every topic: Avro single-object encoding and the mapping to core models.

`default_codec().dumps(TURN_EVENT, event)` gives the bytes of a Kafka value;
`default_codec().loads(TURN_EVENT, data)` gives back a validated `TurnEvent` or raises a
`DecodeError` whose message is the dead-letter reason. Schemas load on first use.
"""

from streams.codecs.codec import AvroCodec, RecordType, default_codec
from streams.codecs.commands import BudgetCommand
from streams.codecs.dead_letters import DeadLetter
from streams.codecs.messages import message_from_record, message_to_record
from streams.codecs.records import (
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    COMPRESSED_HISTORY,
    DEAD_LETTER,
    RECORD_TYPES,
    TURN_EVENT,
)
from streams.codecs.registry import SchemaRegistry
from streams.codecs.snapshots import BudgetSnapshot
from streams.codecs.summaries import CompressedHistory, SummaryStatus
from streams.codecs.turns import SessionStart, TurnEvent, TurnEventType, Usage

__all__ = [
    "BUDGET_COMMAND",
    "BUDGET_SNAPSHOT",
    "COMPRESSED_HISTORY",
    "DEAD_LETTER",
    "RECORD_TYPES",
    "TURN_EVENT",
    "AvroCodec",
    "BudgetCommand",
    "BudgetSnapshot",
    "CompressedHistory",
    "DeadLetter",
    "RecordType",
    "SchemaRegistry",
    "SessionStart",
    "SummaryStatus",
    "TurnEvent",
    "TurnEventType",
    "Usage",
    "default_codec",
    "message_from_record",
    "message_to_record",
]

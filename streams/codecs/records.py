"""Every record that travels on a topic, paired with its one mapping to a typed value."""

from __future__ import annotations

from streams.codecs.codec import RecordType
from streams.codecs.commands import BudgetCommand, command_from_record, command_to_record
from streams.codecs.dead_letters import DeadLetter, dead_letter_from_record, dead_letter_to_record
from streams.codecs.registry import full_name
from streams.codecs.snapshots import BudgetSnapshot, snapshot_from_record, snapshot_to_record
from streams.codecs.summaries import CompressedHistory, summary_from_record, summary_to_record
from streams.codecs.turns import TurnEvent, turn_event_from_record, turn_event_to_record

TURN_EVENT: RecordType[TurnEvent] = RecordType(
    full_name("TurnEvent"), turn_event_to_record, turn_event_from_record
)
BUDGET_COMMAND: RecordType[BudgetCommand] = RecordType(
    full_name("BudgetCommand"), command_to_record, command_from_record
)
BUDGET_SNAPSHOT: RecordType[BudgetSnapshot] = RecordType(
    full_name("BudgetSnapshot"), snapshot_to_record, snapshot_from_record
)
COMPRESSED_HISTORY: RecordType[CompressedHistory] = RecordType(
    full_name("CompressedHistory"), summary_to_record, summary_from_record
)
DEAD_LETTER: RecordType[DeadLetter] = RecordType(
    full_name("DeadLetter"), dead_letter_to_record, dead_letter_from_record
)
RECORD_TYPES: tuple[RecordType[object], ...] = (
    TURN_EVENT,
    BUDGET_COMMAND,
    BUDGET_SNAPSHOT,
    COMPRESSED_HISTORY,
    DEAD_LETTER,
)

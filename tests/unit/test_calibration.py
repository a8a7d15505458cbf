"""Calibration of estimated counts from billed usage: the factor converges, broken reports are
ignored, and a session replayed after calibration is counted much closer to the bill."""

from __future__ import annotations

from statistics import mean

from streams.budget import Policy
from streams.budget.calibration import Calibration
from streams.codecs import SessionStart, TurnEvent, TurnEventType, Usage
from streams.corpus import generate_conversation
from streams.processors.turns import Outputs, TurnProcessor
from streams.testing import ReferenceBilling
from tests.unit.test_processor import processor

MODEL = "claude-sonnet-4"


def test_the_factor_converges_and_broken_reports_are_ignored() -> None:
    calibration = Calibration()
    assert calibration.factor(MODEL) == 1.0
    for _ in range(20):
        calibration.observe(MODEL, counted=1_000, billed=1_200, factor_used=1.0)
    assert abs(calibration.factor(MODEL) - 1.2) < 0.01
    assert calibration.observe(MODEL, counted=1_000, billed=9_000, factor_used=1.0) is None
    assert calibration.observe(MODEL, counted=10, billed=12, factor_used=1.0) is None
    # counted with a factor already: the raw estimate is counted / factor
    assert calibration.observe("other", counted=1_200, billed=1_200, factor_used=1.2) == 1.2


def replay(proc: TurnProcessor, sid: str, billing: ReferenceBilling) -> list[float]:
    """One session with a usage report after each LLM call; the relative count errors."""
    conversation = generate_conversation(seed=3, turns=40)
    system, *turns = conversation.messages
    start = SessionStart(MODEL, 200_000, Policy(), system.text, task=conversation.task)
    out = Outputs()
    proc.handle(
        TurnEvent(f"{sid}/0", sid, 0, TurnEventType.SESSION_START, 0.0, session_start=start), out
    )
    seq, errors = 0, []
    for message in turns:
        live = proc.store.live[sid]
        if message.role == "assistant":
            counted = live.session.ledger.total
            billed = billing.prompt_tokens(live.session.messages.values())
            errors.append((counted - billed) / billed)
            seq += 1
            usage = Usage(billed, live.seq, counted, 50)
            proc.handle(
                TurnEvent(f"{sid}/{seq}", sid, seq, TurnEventType.USAGE, 0.0, usage=usage), out
            )
        seq += 1
        proc.handle(
            TurnEvent(
                f"{sid}/{seq}", sid, seq, TurnEventType.TURN, 0.0, message=message.uncounted()
            ),
            out,
        )
    assert not out.rejected
    return errors


def test_a_replayed_session_is_counted_closer_to_the_bill_after_calibration() -> None:
    proc = processor()
    billing = ReferenceBilling()
    before = mean(abs(e) for e in replay(proc, "first", billing))
    factor = proc.store.calibration.factor(MODEL)
    after = mean(abs(e) for e in replay(proc, "replayed", billing))
    assert factor != 1.0
    assert proc.store.live["replayed"].count_factor == factor
    assert after < before / 2, (before, after, factor)


def test_the_factor_survives_a_restart() -> None:
    table: dict = {}
    proc = processor(table)
    replay(proc, "first", ReferenceBilling())
    reborn = processor(table)
    reborn.store.rebuild()
    assert reborn.store.calibration.factor(MODEL) == proc.store.calibration.factor(MODEL)
    assert reborn.store.get("first").count_factor == 1.0  # a session keeps its start's factor

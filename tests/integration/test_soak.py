"""The crash-recovery soak (`bench/soak.py`), small: 40 agents × 25 turns on the client SDK while
the worker is SIGKILLed twice and the summarizer once, at seeded random points, and restarted.

Every session ends in step with the worker, nothing missing, every command applied once; the
sessions without summaries end with an exact ledger and exactly the history of a crash-free run
of the same fleet. The checks and their reasons are in `bench/soak.py`.

Known issue, measured and printed, not hidden: a session whose summary answer is redelivered
around a worker crash can end with the worker's ledger different from the agent's (the answer
and the session's turns come from two topics, and the restarted worker may interleave them
differently from the first time, after the first time's commands reached the agent). Those
sessions must fail on nothing but the ledger.
"""

from __future__ import annotations

import asyncio
import time

from bench.soak import SoakConfig, soak

CONFIG = SoakConfig(sessions=40, turns=25, worker_kills=2, summarizer_kills=1, seed=11)


def test_the_fleet_survives_worker_and_summarizer_crashes_exactly(
    broker, tmp_path, unique_name
) -> None:
    started = time.monotonic()
    report = asyncio.run(soak(broker.bootstrap, tmp_path, CONFIG, unique_name("soak") + "."))
    print("\n" + "\n".join(report.lines()) + f"\ntest wall time {time.monotonic() - started:.1f} s")

    result = report.result
    assert result.tally.published == 40 * 25
    assert [f.target for f in result.faults].count("worker") == 2
    assert result.stack.worker.starts == 3 and result.stack.summarizer.starts == 2
    assert result.tally.fallbacks > 0  # the agents went on while the worker was down
    assert sum(p.compared for p in result.plans) == 30
    assert report.baseline_failures == {}  # the crash-free reference passes its own checks
    assert report.failed(summaries=False) == []  # 30 sessions exact, as without crashes
    for sid in report.failed(summaries=True):  # the known issue, and only that
        assert all(f.startswith("ledger") for f in report.failures[sid]), report.failures[sid]

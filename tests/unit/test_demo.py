"""The in-process demo runs end to end and its report is honest about overflows."""

from __future__ import annotations

from streams.cli import main


def test_demo_manages_a_session_that_would_overflow(capsys, embedder) -> None:
    code = main(["demo", "--in-process", "--turns", "40", "--context-limit", "6000"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Budget at the last LLM call:" in out
    assert "Actions taken over the session, by rule:" in out
    line = next(x for x in out.splitlines() if x.startswith("Without budget management"))
    would, with_budget = line.split(" of ")[0].split()[-1], line.rsplit("with it, ", 1)[1]
    assert int(would) > 0
    assert with_budget.startswith("0 did")

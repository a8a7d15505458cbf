"""`make demo`: a small fleet through its own embedded broker and worker, report and clean exit."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.conftest import REPO_ROOT


def test_streaming_demo_runs_and_reports() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams", "demo", "--sessions", "4", "--turns", "25"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "rejected at session start" in out
    assert "REJECTED system_prompt_too_large" in out
    assert "with it, 0 did" in out
    assert "SUMMARIZE summarization (applied)" in out  # the summarizer took part
    for process in ("demo-worker", "demo-summarizer"):
        leftover = subprocess.run(["pgrep", "-f", process], capture_output=True, check=False)
        assert leftover.stdout == b"", process  # what it started is gone

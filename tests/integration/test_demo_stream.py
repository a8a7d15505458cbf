"""`make demo`: a small fleet on the client SDK through its own embedded broker, worker and
summarizer; a report and a clean exit."""

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
    assert "Rejections: 1" in out and "system_prompt share" in out  # refused by the SDK
    assert "with it, 0 did" in out
    assert "SUMMARIZE summarization (applied)" in out  # the summarizer took part
    for process in ("demo-worker", "demo-summarizer"):
        leftover = subprocess.run(["pgrep", "-f", process], capture_output=True, check=False)
        assert leftover.stdout == b"", process  # what it started is gone

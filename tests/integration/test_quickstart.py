"""The README's agent quickstart runs, as written, against the embedded broker and a real
worker (default topic names), and its contexts come from the worker, not the fallback."""

from __future__ import annotations

import os
import subprocess
import sys

from streams.topics import TopicNames
from tests.integration.conftest import REPO_ROOT
from tests.integration.fleet import worker_command
from tests.unit.test_readme import ALL_BLOCKS, QUICKSTART


def test_the_readme_quickstart_runs_against_a_real_worker(broker, faust_worker) -> None:
    (block,) = [b for b in ALL_BLOCKS if b.startswith(QUICKSTART)]
    assert len(block.strip().splitlines()) < 30
    faust_worker(
        "streams",
        name="quickstart-worker",
        command=worker_command(broker.bootstrap, TopicNames(""), "quickstart-worker", 8),
    )
    done = subprocess.run(
        [sys.executable, "-c", block],
        cwd=REPO_ROOT,
        env={**os.environ, "TOKENBUDGET_BOOTSTRAP": broker.bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fallback=False" in done.stdout, done.stdout

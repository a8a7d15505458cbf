"""Every Python block of the README runs, so the README never lies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
ALL_BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
QUICKSTART = "# Agent quickstart"
"""The block that needs a broker and a worker: tests/integration/test_quickstart.py runs it."""
BLOCKS = [b for b in ALL_BLOCKS if not b.startswith(QUICKSTART)]


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(block: str) -> None:
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})

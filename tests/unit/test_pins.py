"""Every upper bound or exact pin in pyproject.toml is explained in the README."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_bounded_dependency_is_explained_in_the_readme() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounded = [d for d in dependencies if re.search(r"<|==", d)]
    pins = (ROOT / "README.md").read_text().split("## Dependency pins", 1)[1].split("\n## ", 1)[0]
    assert bounded
    for requirement in bounded:
        assert f"`{requirement}`" in pins, f"README 'Dependency pins' lacks {requirement}"

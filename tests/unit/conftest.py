"""Unit-test fixtures: a manager that needs no embedding model."""

from __future__ import annotations

import pytest

from streams.budget import BudgetManager, LexicalScorer, Policy


@pytest.fixture
def manager_factory():
    """Build a gpt-4o manager with the lexical scorer (no model load)."""

    def make(context_limit: int = 4000, policy: Policy | None = None, **kw) -> BudgetManager:
        return BudgetManager(
            "gpt-4o", context_limit, policy or Policy(), scorer=LexicalScorer(), **kw
        )

    return make

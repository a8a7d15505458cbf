"""Shared fixtures: the embedding model is loaded at most once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder():
    """The real local embedding model (all-MiniLM-L6-v2), loaded once."""
    from streams.adapters.embedding import default_embedder

    return default_embedder()

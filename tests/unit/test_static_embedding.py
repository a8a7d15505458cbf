"""Static embeddings distilled from the local model (`TOKENBUDGET_EMBEDDING_STATIC`)."""

from __future__ import annotations

import numpy as np
import pytest

from streams.adapters.embedding import MAX_SEQ_LENGTH, StaticEmbedder, static_table_name
from streams.budget import EvidenceScorer, Message

DEPLOY = "the deploy failed because the database migration timed out"
PARAPHRASE = "a database migration timeout broke the deployment"
UNRELATED = "my cat sleeps on the warm blanket all afternoon"


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> StaticEmbedder:
    """Distilled once for this module, into a cache of its own."""
    return StaticEmbedder(cache_dir=tmp_path_factory.mktemp("cache"))


def test_vectors_are_normalised_and_an_empty_text_is_a_zero_row(static: StaticEmbedder) -> None:
    vectors = static.embed([DEPLOY, "", UNRELATED])
    assert vectors.shape == (3, static.dimensions) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1.0, atol=1e-5)
    assert not vectors[1].any()
    assert static.embed([]).shape == (0, static.dimensions)


def test_a_paraphrase_is_closer_than_an_unrelated_text(static: StaticEmbedder) -> None:
    deploy, paraphrase, unrelated = static.embed([DEPLOY, PARAPHRASE, UNRELATED])
    assert float(deploy @ paraphrase) > float(deploy @ unrelated) + 0.2


def test_a_vector_does_not_depend_on_its_batch(static: StaticEmbedder) -> None:
    # What makes decisions reproducible after a crash (int8 batches break this).
    alone = static.embed([DEPLOY])[0]
    beside = static.embed([UNRELATED, "x " * 300, DEPLOY, PARAPHRASE])[2]
    assert np.array_equal(alone, beside)


def test_a_long_text_is_read_up_to_the_model_window(static: StaticEmbedder) -> None:
    # "deploy" and "cat" are one token each: the window holds only the first word.
    assert len(static.tokenizer("deploy cat", add_special_tokens=False)["input_ids"]) == 2
    long = "deploy " * MAX_SEQ_LENGTH + "cat " * MAX_SEQ_LENGTH
    whole, deploy = static.embed([long, "deploy"])
    assert float(whole @ deploy) > 0.9999


def test_the_table_is_cached_and_read_back(static: StaticEmbedder) -> None:
    assert static.cache_path.is_file()
    assert static.cache_path.name == static_table_name(static.path)
    stamp = static.cache_path.stat().st_mtime_ns
    again = StaticEmbedder(cache_dir=static.cache_path.parent)
    assert static.cache_path.stat().st_mtime_ns == stamp  # read, not distilled again
    assert np.array_equal(again.embed([DEPLOY]), static.embed([DEPLOY]))


def test_the_evidence_scorer_ranks_with_it(static: StaticEmbedder) -> None:
    scorer = EvidenceScorer(static)
    messages = [
        Message(id="a", role="assistant", content="disk usage at 41 percent, nothing to report"),
        Message(id="b", role="assistant", content="migration 0042 timed out after 30 s on orders"),
        Message(id="c", role="user", content="please also water the plants later"),
    ]
    scores = scorer.score("why did the database migration fail", messages)
    assert max(range(3), key=scores.__getitem__) == 1

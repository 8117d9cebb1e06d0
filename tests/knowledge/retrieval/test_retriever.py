"""`FaissRetriever`'s ranking of passages with several vectors (`main_weight`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.indexing.index import load_version
from deskbot.knowledge.indexing.ingest import embedding_texts, ingest
from deskbot.knowledge.retrieval.retriever import FaissRetriever

DOC = """# Cards

## Ordering a card

A new card is ordered in the app under Cards > Order. It costs nothing for your first card.
A replacement for a damaged card is free as well. Delivery takes three to five working days.

## Travelling with your card

Your card works in 150 countries. Cash machines abroad are free up to 200 GBP a month.
Tell us nothing before you travel: we do not block cards used abroad.
"""
QUERY = "does a replacement card cost anything"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    folder = tmp_path_factory.mktemp("kb")
    (folder / "cards.md").write_text(DOC, encoding="utf-8")
    out = folder / "idx"
    ingest(
        [folder / "cards.md"], out, embedder, embedding="question+sentences", show_progress=False
    )
    return out


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_the_rank_mixes_the_main_vector_with_the_best_one(
    index: Path, embedder: Embedder, weight: float
) -> None:
    loaded = load_version(index)
    q = embedder.embed([QUERY])[0]
    expected = {}
    for p in loaded.passages:
        cosines = embedder.embed(embedding_texts(p, "question+sentences")) @ q
        assert len(cosines) > 2  # the passage, then its sentences
        expected[p.id] = (
            float(cosines.max()),
            float((1 - weight) * cosines.max() + weight * cosines[0]),
        )
    retriever = FaissRetriever(index, embedder, lexical_weight=0.0, main_weight=weight)
    hits = retriever.retrieve(QUERY, top_k=len(expected))
    assert [h.id for h in hits] == sorted(expected, key=lambda i: -expected[i][1])
    for h in hits:
        best, rank = expected[h.id]
        assert h.score == pytest.approx(best, abs=1e-5)  # min_score still reads a cosine
        assert h.rank_score == pytest.approx(rank, abs=1e-5)


def test_an_approximate_index_mixes_the_same_way(
    index: Path, embedder: Embedder, tmp_path: Path
) -> None:
    source = Path(load_version(index).passages[0].source)
    hnsw = tmp_path / "hnsw"
    ingest(
        [source],
        hnsw,
        embedder,
        embedding="question+sentences",
        index_type="hnsw",
        show_progress=False,
    )
    exact = FaissRetriever(index, embedder, main_weight=0.5).retrieve(QUERY, top_k=2)
    approx = FaissRetriever(hnsw, embedder, main_weight=0.5).retrieve(QUERY, top_k=2)
    assert [h.id for h in approx] == [h.id for h in exact]
    assert np.allclose([h.rank_score for h in approx], [h.rank_score for h in exact], atol=1e-5)


def test_a_main_weight_outside_0_to_1_is_refused(index: Path, embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="main_weight must be within 0..1"):
        FaissRetriever(index, embedder, main_weight=1.5)


LONG = """# Transfers

## Sending money abroad

{body}

## Fees for transfers

Sending money abroad costs 0.5% of the amount, at least 1 GBP.

## Receiving money

Money sent to you arrives within a working day.
"""


@pytest.mark.parametrize("distinct", [True, False])
def test_distinct_sections_return_one_piece_per_section(
    tmp_path: Path, embedder: Embedder, distinct: bool
) -> None:
    body = "\n\n".join(
        f"Money sent abroad to {country} arrives in one to two working days."
        " Transfers abroad go out in the currency you choose."
        for country in ("France", "Spain", "Italy", "Germany", "Poland")
    )
    (tmp_path / "transfers.md").write_text(LONG.format(body=body), encoding="utf-8")
    ingest([tmp_path / "transfers.md"], tmp_path / "idx", embedder, max_chars=250)
    query = "how long does money sent abroad take to arrive"
    every = FaissRetriever(tmp_path / "idx", embedder, distinct_sections=False).retrieve(
        query, top_k=20
    )
    sections = [h.id.split(":")[1] for h in every]
    assert sections[:2] == ["transfers-sending-money-abroad"] * 2  # pieces of one section lead
    retriever = FaissRetriever(tmp_path / "idx", embedder, distinct_sections=distinct)
    hits = retriever.retrieve(query, top_k=3)
    if distinct:
        firsts = [h.id for i, h in enumerate(every) if sections.index(sections[i]) == i]
        assert [h.id for h in hits] == firsts[:3]  # each section at its best piece's place
        assert len({h.id.split(":")[1] for h in hits}) == 3
    else:
        assert [h.id for h in hits] == [h.id for h in every[:3]]

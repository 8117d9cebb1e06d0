from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.indexing.index import list_versions, load_version, read_pointer
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.retrieval.retriever import EmbedTexts, FaissRetriever
from tests.conftest import DEMO_FAQ
from tests.knowledge.indexing.conftest import ENTRIES, write_faq


def test_retrieval_finds_the_demo_answer(faq_index_dir: Path, embedder: Embedder) -> None:
    hits = FaissRetriever(faq_index_dir, embedder).retrieve("my card hasn't arrived yet", top_k=3)
    assert hits[0].id == "card-arrival"
    assert hits[0].score > hits[1].score > 0
    assert Path(hits[0].source) == DEMO_FAQ and hits[0].question


def test_reingest_embeds_only_what_changed_and_drops_deleted(
    tmp_path: Path, embedder: Embedder
) -> None:
    index = tmp_path / "idx"
    first = ingest(
        [write_faq(tmp_path / "faq.yaml", ENTRIES)], index, embedder, show_progress=False
    )
    assert (first.embedded, first.reused) == (3, 0)
    changed = [
        dict(ENTRIES[0], question="Where is my new card?", answer="Cards arrive in 2 days."),
        ENTRIES[1],
    ]  # edit one, delete "pin"
    second = ingest(
        [write_faq(tmp_path / "faq.yaml", changed)], index, embedder, show_progress=False
    )
    assert (second.embedded, second.reused, second.removed) == (1, 1, 1)
    retriever = FaissRetriever(index, embedder)
    ids = [p.id for p in retriever.retrieve("my PIN is blocked", top_k=5)]
    assert "pin" not in ids
    assert retriever.retrieve("card not arrived", top_k=1)[0].text == "Cards arrive in 2 days."
    assert len(list_versions(index)) == 2
    # Only what is embedded (the question) costs an embedding; a new answer is reused.
    third = ingest(
        [write_faq(tmp_path / "faq.yaml", [dict(changed[0], answer="Two days."), ENTRIES[1]])],
        index,
        embedder,
        show_progress=False,
    )
    assert (third.embedded, third.reused, third.removed) == (0, 2, 0)
    assert retriever.retrieve("card not arrived", top_k=1)[0].text == "Two days."


def test_a_running_retriever_picks_up_a_new_version(tmp_path: Path, embedder: Embedder) -> None:
    index = tmp_path / "idx"
    ingest([write_faq(tmp_path / "a.yaml", ENTRIES[:1])], index, embedder, show_progress=False)
    retriever = FaissRetriever(index, embedder)
    assert [p.id for p in retriever.retrieve("PIN blocked", top_k=5)] == ["card-arrival"]
    ingest([write_faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    assert retriever.retrieve("PIN blocked", top_k=1)[0].id == "pin"


def test_a_corrupted_version_is_refused_and_the_previous_keeps_serving(
    tmp_path: Path, embedder: Embedder
) -> None:
    index = tmp_path / "idx"
    ingest([write_faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    retriever = FaissRetriever(index, embedder)
    assert retriever.retrieve("PIN blocked", top_k=1)[0].id == "pin"
    good = retriever.version
    assert good is not None
    ingest([write_faq(tmp_path / "a.yaml", ENTRIES[:2])], index, embedder, show_progress=False)
    bad = read_pointer(index)
    assert bad is not None
    (index / "versions" / bad / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorrupt, match="cannot be read"):
        load_version(index)
    assert retriever.retrieve("PIN blocked", top_k=1)[0].id == "pin"
    assert retriever.version == good


def test_no_half_built_version_is_ever_visible(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "idx"
    ingest([write_faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    live = read_pointer(index)
    assert live is not None

    def crash(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("deskbot.knowledge.indexing.index.np.save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest([write_faq(tmp_path / "a.yaml", ENTRIES[:1])], index, embedder, show_progress=False)
    assert read_pointer(index) == live
    assert list_versions(index) == [live]
    assert not [p for p in (index / "versions").iterdir() if p.name.startswith(".")]
    shutil.rmtree(index / "versions" / live)
    with pytest.raises(IndexCorrupt, match="missing manifest.json"):
        load_version(index)


class _Shared:
    """A shared encoder over a real embedder (the bot passes the intent model's)."""

    def __init__(self, embedder: Embedder, model: str = "shared:v1", broken: bool = False) -> None:
        self.embedder, self.model, self.broken, self.calls = embedder, model, broken, 0

    def snapshot(self) -> tuple[str, EmbedTexts]:
        def embed(texts: Sequence[str]) -> np.ndarray:
            self.calls += 1
            if self.broken:
                raise RuntimeError("the shared model broke")
            return self.embedder.embed(list(texts))

        return self.model, embed


def test_a_query_vector_from_the_shared_encoder_searches_its_own_vectors(
    tmp_path: Path, embedder: Embedder
) -> None:
    index = tmp_path / "idx"
    ingest([write_faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    shared = _Shared(embedder)
    retriever = FaissRetriever(index, embedder, shared_encoder=shared)
    retriever.warm_up()
    assert retriever.shared_model == "shared:v1"
    q = embedder.embed(["my PIN is blocked"])[0]
    ours = retriever.retrieve(
        "my PIN is blocked", top_k=3, query_vector=q, vector_model="shared:v1"
    )
    plain = FaissRetriever(index, embedder).retrieve("my PIN is blocked", top_k=3)
    assert [p.id for p in ours] == [p.id for p in plain] and ours[0].id == "pin"
    assert ours[0].score == pytest.approx(plain[0].score, abs=1e-5)
    # A vector from another model (a newer classifier) is not compared with these: the
    # retriever's embedder answers, and the index is embedded with the new model.
    shared.model = "shared:v2"
    garbage = -q  # would rank "pin" last if it were used
    other = retriever.retrieve(
        "my PIN is blocked", top_k=1, query_vector=garbage, vector_model="shared:v2"
    )
    assert other[0].id == "pin"
    retriever.share(wait=True)
    assert retriever.shared_model == "shared:v2"


def test_a_failing_shared_encoder_leaves_the_embedder_answering(
    tmp_path: Path, embedder: Embedder
) -> None:
    index = tmp_path / "idx"
    ingest([write_faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    shared = _Shared(embedder, broken=True)
    retriever = FaissRetriever(index, embedder, shared_encoder=shared)
    retriever.warm_up()  # logs the failure; serving goes on
    assert retriever.shared_model is None
    q = embedder.embed(["my PIN is blocked"])[0]
    for _ in range(3):
        hits = retriever.retrieve(
            "my PIN is blocked", top_k=1, query_vector=-q, vector_model="shared:v1"
        )
        assert hits[0].id == "pin"
    retriever.share(wait=True)
    assert shared.calls == 1  # not tried again on the same index version

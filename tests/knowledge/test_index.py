from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from deskbot.knowledge.errors import IndexCorrupt
from deskbot.knowledge.index import list_versions, load_version, read_pointer
from deskbot.knowledge.ingest import ingest
from deskbot.knowledge.retriever import FaissRetriever
from tests.conftest import DEMO_FAQ


def faq(path: Path, entries: list[dict[str, str]]) -> Path:
    path.write_text(yaml.safe_dump({"entries": entries}), encoding="utf-8")
    return path


ENTRIES = [
    {
        "id": "card-arrival",
        "question": "My new card has not arrived yet",
        "answer": "Cards arrive in 3 to 5 days.",
        "intent": "card_arrival",
    },
    {
        "id": "exchange",
        "question": "What exchange rate do you use?",
        "answer": "The interbank rate.",
        "intent": "exchange_rate",
    },
    {
        "id": "pin",
        "question": "My PIN is blocked",
        "answer": "Unblock it at an ATM.",
        "intent": "pin_blocked",
    },
]


def test_retrieval_finds_the_demo_answer(faq_index_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    hits = FaissRetriever(faq_index_dir, embedder).retrieve("my card hasn't arrived yet", top_k=3)
    assert hits[0].id == "card-arrival"
    assert hits[0].score > hits[1].score > 0
    assert Path(hits[0].source) == DEMO_FAQ and hits[0].question


def test_reingest_embeds_only_what_changed_and_drops_deleted(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    index = tmp_path / "idx"
    first = ingest([faq(tmp_path / "faq.yaml", ENTRIES)], index, embedder, show_progress=False)
    assert (first.embedded, first.reused) == (3, 0)
    changed = [
        dict(ENTRIES[0], question="Where is my new card?", answer="Cards arrive in 2 days."),
        ENTRIES[1],
    ]  # edit one, delete "pin"
    second = ingest([faq(tmp_path / "faq.yaml", changed)], index, embedder, show_progress=False)
    assert (second.embedded, second.reused, second.removed) == (1, 1, 1)
    retriever = FaissRetriever(index, embedder)
    ids = [p.id for p in retriever.retrieve("my PIN is blocked", top_k=5)]
    assert "pin" not in ids
    assert retriever.retrieve("card not arrived", top_k=1)[0].text == "Cards arrive in 2 days."
    assert len(list_versions(index)) == 2
    # Only what is embedded (the question) costs an embedding; a new answer is reused.
    third = ingest(
        [faq(tmp_path / "faq.yaml", [dict(changed[0], answer="Two days."), ENTRIES[1]])],
        index,
        embedder,
        show_progress=False,
    )
    assert (third.embedded, third.reused, third.removed) == (0, 2, 0)
    assert retriever.retrieve("card not arrived", top_k=1)[0].text == "Two days."


def test_a_running_retriever_picks_up_a_new_version(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    index = tmp_path / "idx"
    ingest([faq(tmp_path / "a.yaml", ENTRIES[:1])], index, embedder, show_progress=False)
    retriever = FaissRetriever(index, embedder)
    assert [p.id for p in retriever.retrieve("PIN blocked", top_k=5)] == ["card-arrival"]
    ingest([faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    assert retriever.retrieve("PIN blocked", top_k=1)[0].id == "pin"


def test_a_corrupted_version_is_refused_and_the_previous_keeps_serving(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    index = tmp_path / "idx"
    ingest([faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    retriever = FaissRetriever(index, embedder)
    assert retriever.retrieve("PIN blocked", top_k=1)[0].id == "pin"
    good = retriever.version
    assert good is not None
    ingest([faq(tmp_path / "a.yaml", ENTRIES[:2])], index, embedder, show_progress=False)
    bad = read_pointer(index)
    (index / "versions" / bad / "index.faiss").write_bytes(b"garbage")  # type: ignore[operator]
    with pytest.raises(IndexCorrupt, match="cannot be read"):
        load_version(index)
    assert retriever.retrieve("PIN blocked", top_k=1)[0].id == "pin"
    assert retriever.version == good


def test_no_half_built_version_is_ever_visible(
    tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    index = tmp_path / "idx"
    ingest([faq(tmp_path / "a.yaml", ENTRIES)], index, embedder, show_progress=False)
    live = read_pointer(index)

    def crash(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("deskbot.knowledge.index.np.save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        ingest([faq(tmp_path / "a.yaml", ENTRIES[:1])], index, embedder, show_progress=False)
    assert read_pointer(index) == live
    assert list_versions(index) == [live]
    assert not [p for p in (index / "versions").iterdir() if p.name.startswith(".")]
    shutil.rmtree(index / "versions" / live)  # type: ignore[operator]
    with pytest.raises(IndexCorrupt, match="missing manifest.json"):
        load_version(index)

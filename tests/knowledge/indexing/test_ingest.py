from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.errors import IndexCorrupt, SourceError
from deskbot.knowledge.indexing.index import load_version, read_pointer, write_version
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.retrieval.retriever import FaissRetriever
from tests.knowledge.indexing.conftest import ENTRIES, write_faq

DOC = """# Travel

## Using your card abroad

Tell us nothing: Northwind cards work in 150 countries. ATM withdrawals abroad are free up to 200 GBP a month.

## Lost luggage insurance

Premium accounts include luggage insurance; claim within 30 days with your airline's report.
"""


@pytest.fixture
def knowledge(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    folder.mkdir()
    write_faq(folder / "faq.yaml", ENTRIES)
    (folder / "travel.md").write_text(DOC, encoding="utf-8")
    (folder / ".hidden.md").write_text("# Secret\n\nnot indexed\n", encoding="utf-8")
    return folder


def test_a_folder_of_faqs_and_documents_is_cited_by_file_and_line(
    knowledge: Path, tmp_path: Path, embedder: Embedder
) -> None:
    report = ingest([knowledge], tmp_path / "idx", embedder, show_progress=False)
    assert report.passages == 5 and report.problems == []
    manifest = report.manifest
    assert manifest.index_type == "flat-ip" and manifest.vector_count == 5
    hit = FaissRetriever(tmp_path / "idx", embedder).retrieve(
        "is there insurance if the airline loses my suitcase", top_k=1
    )[0]
    assert hit.id == "travel:travel-lost-luggage-insurance"
    assert hit.title == "Travel > Lost luggage insurance" and hit.question == ""
    assert Path(hit.source) == knowledge / "travel.md" and hit.line == 9 and hit.position == 1


def test_bad_files_are_skipped_and_reported_unless_strict(
    knowledge: Path, tmp_path: Path, embedder: Embedder
) -> None:
    (knowledge / "scan.md").write_bytes(b"\x00\x01binary")
    (knowledge / "empty.csv").write_text("", encoding="utf-8")
    bad_rows = knowledge / "more.jsonl"
    bad_rows.write_text(
        json.dumps({"id": "pin", "question": "PIN again?", "answer": "Dup."})
        + "\n{not json\n"
        + json.dumps({"question": "Only a question?"})
        + "\n",
        encoding="utf-8",
    )
    report = ingest([knowledge], tmp_path / "idx", embedder, show_progress=False)
    assert report.passages == 5
    messages = sorted(str(p) for p in report.problems)
    assert messages == sorted(
        [
            f"{knowledge / 'empty.csv'}: the file is empty",
            f"{knowledge / 'scan.md'}: a binary file, not a document (expected UTF-8 Markdown, HTML or text)",
            f"{bad_rows}:1: duplicate id 'pin' across files (first in {knowledge / 'faq.yaml'}:10)",
            f"{bad_rows}:2: not valid JSON: Expecting property name enclosed in double quotes",
            f"{bad_rows}:3: missing 'answer'",
        ]
    )
    live = read_pointer(tmp_path / "idx")
    with pytest.raises(SourceError, match="empty.csv: the file is empty"):
        ingest([knowledge], tmp_path / "idx", embedder, strict=True, show_progress=False)
    assert read_pointer(tmp_path / "idx") == live  # a failed ingest changes nothing
    with pytest.raises(SourceError, match="no usable passage"):
        ingest([knowledge / "scan.md"], tmp_path / "idx", embedder, show_progress=False)


def test_alternative_questions_from_examples_are_extra_vectors(
    tmp_path: Path, embedder: Embedder
) -> None:
    faq = write_faq(tmp_path / "faq.yaml", ENTRIES)
    examples = tmp_path / "train.csv"
    examples.write_text(
        "text,category\n"
        "why can't I get cash out of the machine any more,pin_blocked\n"
        "the machine kept my money and says wrong code,pin_blocked\n"
        "where is the plastic I was sent,card_arrival\n"
        "something for an intent without an entry,unrelated\n",
        encoding="utf-8",
    )
    plain = ingest([faq], tmp_path / "plain", embedder, show_progress=False)
    assert plain.vectors == 3
    report = ingest([faq], tmp_path / "idx", embedder, examples=[examples], show_progress=False)
    assert (report.passages, report.vectors) == (3, 6)
    loaded = load_version(tmp_path / "idx")
    assert loaded.owners.tolist() == [0, 0, 1, 2, 2, 2]
    assert loaded.passages[2].alternatives == (
        "why can't I get cash out of the machine any more",
        "the machine kept my money and says wrong code",
    )
    query = "ATM says my code is wrong and keeps my money"
    with_alt = FaissRetriever(tmp_path / "idx", embedder).retrieve(query, top_k=3)
    without = FaissRetriever(tmp_path / "plain", embedder).retrieve(query, top_k=3)
    assert with_alt[0].id == "pin"
    assert with_alt[0].score > next(p.score for p in without if p.id == "pin")
    # Re-ingesting with one example fewer embeds nothing new and drops that vector.
    examples.write_text(
        "text,category\nthe machine kept my money and says wrong code,pin_blocked\n",
        encoding="utf-8",
    )
    again = ingest([faq], tmp_path / "idx", embedder, examples=[examples], show_progress=False)
    assert (again.embedded, again.vectors) == (0, 4)


def test_scores_routing_lexical_and_min_score(tmp_path: Path, embedder: Embedder) -> None:
    faq = write_faq(tmp_path / "faq.yaml", ENTRIES)
    ingest([faq], tmp_path / "idx", embedder, show_progress=False)
    plain = FaissRetriever(tmp_path / "idx", embedder, min_score=0.5, lexical_weight=0.0)
    hits = plain.retrieve("my PIN got blocked", top_k=3)
    assert hits[0].id == "pin" and hits[0].answerable and hits[0].score >= 0.5
    assert [h.rank_score for h in hits] == sorted((h.rank_score for h in hits), reverse=True)
    off = plain.retrieve("recipe for banana bread", top_k=1)[0]
    assert not off.answerable and off.score < 0.5
    # The intent bonus breaks near-ties but does not hide a clearly better match.
    routed = plain.retrieve("my PIN got blocked", top_k=3, intent="exchange_rate")
    assert routed[0].id == "pin"
    assert next(h for h in routed if h.id == "exchange").rank_score == pytest.approx(
        next(h for h in hits if h.id == "exchange").score + plain.intent_bonus, abs=1e-5
    )
    # Score stays the cosine whatever the ranking adds, so one threshold fits all.
    lexical = FaissRetriever(tmp_path / "idx", embedder, lexical_weight=0.3)
    lex_hits = lexical.retrieve("exchange", top_k=3)
    assert lex_hits[0].id == "exchange" and lex_hits[0].lexical_score == 1.0
    assert lex_hits[0].rank_score == pytest.approx(lex_hits[0].score + 0.3, abs=1e-5)
    with pytest.raises(ValueError, match="min_score is a cosine"):
        FaissRetriever(tmp_path / "idx", embedder, min_score=2.0)


def test_hnsw_choice_and_parameters_are_recorded(tmp_path: Path, embedder: Embedder) -> None:
    faq = write_faq(tmp_path / "faq.yaml", ENTRIES)
    report = ingest([faq], tmp_path / "idx", embedder, index_type="hnsw", show_progress=False)
    raw = json.loads(
        (tmp_path / "idx" / "versions" / report.manifest.version / "manifest.json").read_text()
    )
    assert raw["index_type"].startswith("hnsw") and raw["index_params"]["efSearch"] > 0
    assert raw["stats"]["build_s"] >= 0 and raw["vector_count"] == 3
    hits = FaissRetriever(tmp_path / "idx", embedder).retrieve("PIN blocked", top_k=2)
    assert hits[0].id == "pin" and len(hits) == 2


def test_damaged_versions_are_refused_with_what_to_do(tmp_path: Path, embedder: Embedder) -> None:
    faq = write_faq(tmp_path / "faq.yaml", ENTRIES)
    index = tmp_path / "idx"
    ingest([faq], index, embedder, show_progress=False)
    retriever = FaissRetriever(index, embedder)
    retriever.warm_up()
    good = retriever.version
    assert good is not None
    version_dir = index / "versions" / str(read_pointer(index))
    damage: dict[str, Callable[[Path], object]] = {
        "owners.npy": lambda p: p.write_bytes(b"not numpy"),
        "passages.jsonl": lambda p: p.write_text(
            p.read_text().splitlines()[0] + "\n", encoding="utf-8"
        ),
        "manifest.json": lambda p: p.write_text("{", encoding="utf-8"),
    }
    for name, spoil in damage.items():
        original = (version_dir / name).read_bytes()
        spoil(version_dir / name)
        with pytest.raises(IndexCorrupt, match=r"rebuild it with `deskbot ingest`|corrupted"):
            load_version(index)
        (version_dir / name).write_bytes(original)
    # A new live version that is damaged: the running retriever keeps its old one.
    ingest([write_faq(tmp_path / "faq.yaml", ENTRIES[:2])], index, embedder, show_progress=False)
    (index / "versions" / str(read_pointer(index)) / "owners.npy").unlink()
    assert retriever.retrieve("PIN blocked", top_k=1)[0].id == "pin"
    assert retriever.version == good
    with pytest.raises(IndexCorrupt, match="missing owners.npy"):
        FaissRetriever(index, embedder).warm_up()


def test_format_1_indexes_still_load(tmp_path: Path, embedder: Embedder) -> None:
    faq = write_faq(tmp_path / "faq.yaml", ENTRIES)
    ingest([faq], tmp_path / "src", embedder, show_progress=False)
    old = load_version(tmp_path / "src")
    manifest = write_version(
        tmp_path / "idx", vectors=old.vectors, passages=old.passages, embedder=embedder.model_id
    )
    path = tmp_path / "idx" / "versions" / manifest.version
    (path / "owners.npy").unlink()
    raw = json.loads((path / "manifest.json").read_text())
    raw.update(format="deskbot.faiss-index/1")
    for key in ("vector_count", "index_params", "embedding"):
        raw.pop(key)
    (path / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    loaded = load_version(tmp_path / "idx")
    assert np.array_equal(loaded.owners, np.arange(3))
    assert FaissRetriever(tmp_path / "idx", embedder).retrieve("PIN", top_k=1)[0].id == "pin"


HELP = """# Cards

## Everything about your card

Your card is a Visa debit card made from recycled plastic. It is sent to your home
address with a letter that explains how to activate it. Contactless payments are
limited to 100 pounds each in the UK. Lost cards can be frozen in the app at any time.

- Cards expire after five years.
- Ok.
"""


def test_sentence_vectors_find_one_fact_of_a_long_paragraph(
    tmp_path: Path, embedder: Embedder
) -> None:
    doc = tmp_path / "help.md"
    doc.write_text(HELP, encoding="utf-8")
    faq = write_faq(tmp_path / "faq.yaml", ENTRIES)
    plain = ingest([doc, faq], tmp_path / "plain", embedder, show_progress=False)
    report = ingest(
        [doc, faq], tmp_path / "idx", embedder, embedding="question+sentences", show_progress=False
    )
    # The passage, its 4 sentences and 1 list item ("Ok." is too short); FAQ entries
    # keep one vector each, as with "question".
    assert (plain.vectors, report.vectors) == (4, 9)
    loaded = load_version(tmp_path / "idx")
    card = next(i for i, p in enumerate(loaded.passages) if p.id.startswith("help:"))
    assert loaded.owners.tolist().count(card) == 6
    query = "what's the most I can pay by tapping"
    card_id = loaded.passages[card].id
    with_sentences = FaissRetriever(tmp_path / "idx", embedder).retrieve(query, top_k=1)[0]
    without = FaissRetriever(tmp_path / "plain", embedder).retrieve(query, top_k=4)
    # The paragraph's average meaning loses to an FAQ question; its sentence wins.
    assert without[0].id != card_id
    assert with_sentences.id == card_id
    assert with_sentences.score > next(p.score for p in without if p.id == card_id) + 0.05
    # The passage is still returned whole, not the sentence that matched.
    assert with_sentences.text.startswith("Your card is a Visa debit card")

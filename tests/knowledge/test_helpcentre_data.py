"""The help-centre retrieval benchmark's data holds together.

benchmarks/data/retrieval_prose/ (questions, labels) against bot/demo/helpcentre/ (the
articles), read by the document source as `deskbot ingest` reads them: every label
names a passage that exists, the counts the benchmark promises hold, and no question
was copied out of an article.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from deskbot.knowledge.files.safe_yaml import load_yaml
from deskbot.knowledge.sources.documents import Section, read_document

ROOT = Path(__file__).resolve().parents[2]
ARTICLES = ROOT / "bot" / "demo" / "helpcentre"
DATA = ROOT / "benchmarks" / "data" / "retrieval_prose"
# A question sharing this many words in a row with an article is taken as copied from it.
COPIED_WORDS = 6


@pytest.fixture(scope="module")
def passages() -> dict[str, Section]:
    found: dict[str, Section] = {}
    for path in sorted(ARTICLES.glob("*.md")):
        sections, problems = read_document(path)
        assert not problems, problems
        for s in sections:
            assert s.id not in found, f"{s.id} twice"
            found[s.id] = s
    return found


@pytest.fixture(scope="module")
def questions() -> list[dict[str, str]]:
    data = load_yaml((DATA / "questions.yaml").read_text(encoding="utf-8"))
    return list(data["questions"])


@pytest.fixture(scope="module")
def labels() -> dict[str, object]:
    data = load_yaml((DATA / "labels.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9£€$]+", text.lower().replace("’", "'"))


def test_articles_are_prose_of_the_promised_size(passages: dict[str, Section]) -> None:
    files = sorted(ARTICLES.glob("*.md"))
    assert len(files) >= 30
    for path in files:
        text = path.read_text(encoding="utf-8")
        body = text.split("---", 2)[2]  # without the front matter
        assert 250 <= len(words(body)) <= 700, path.name
        assert body.count("\n## ") >= 3, f"{path.name}: fewer than 3 sections"
        assert re.search(r"^# \S", body, re.M), f"{path.name}: no title"
    # With the default chunking each section is one passage: the labels name sections.
    assert not [pid for pid in passages if re.search(r":\d+$", pid)]


def test_every_question_has_an_existing_gold_passage(
    questions: list[dict[str, str]], labels: dict[str, object], passages: dict[str, Section]
) -> None:
    gold = labels["labels"]
    assert isinstance(gold, dict)
    ids = [q["id"] for q in questions]
    assert len(ids) >= 300
    assert len(set(ids)) == len(ids)
    assert set(gold) == set(ids)
    missing = {q: p for q, p in gold.items() if p not in passages}
    assert not missing
    also = labels.get("also") or {}
    assert isinstance(also, dict)
    assert set(also) <= set(ids)
    for qid, extra in also.items():
        assert extra and all(p in passages and p != gold[qid] for p in extra), qid


def test_questions_spread_over_the_articles(
    questions: list[dict[str, str]], labels: dict[str, object]
) -> None:
    gold = labels["labels"]
    assert isinstance(gold, dict)
    per_article = Counter(str(p).split(":", 1)[0] for p in gold.values())
    assert set(per_article) == {p.stem for p in ARTICLES.glob("*.md")}
    # Each article has enough questions to give both halves of the split some.
    assert min(per_article.values()) >= 4
    # The planned article (written before the articles) is the one the label points to.
    for q in questions:
        assert q["planned"].split("/", 1)[0] == str(gold[q["id"]]).split(":", 1)[0], q["id"]


def copied_questions(texts: list[str], passages: dict[str, Section]) -> list[int]:
    """The positions of the texts that share COPIED_WORDS words in a row with a passage."""
    runs: set[tuple[str, ...]] = set()
    for p in passages.values():
        w = words(f"{p.title} {p.text}")
        runs.update(tuple(w[i : i + COPIED_WORDS]) for i in range(len(w) - COPIED_WORDS + 1))
    return [
        n
        for n, text in enumerate(texts)
        if any(
            tuple(w[i : i + COPIED_WORDS]) in runs
            for w in [words(text)]
            for i in range(len(w) - COPIED_WORDS + 1)
        )
    ]


def test_no_question_is_copied_from_an_article(
    questions: list[dict[str, str]], passages: dict[str, Section]
) -> None:
    texts = [q["text"] for q in questions]
    assert [questions[n]["id"] for n in copied_questions(texts, passages)] == []
    assert len({t.lower() for t in texts}) == len(texts), "a question is there twice"


def test_the_copy_check_catches_a_copied_sentence(passages: dict[str, Section]) -> None:
    # Without this the check above could pass by finding nothing at all.
    lifted = "so how much can you withdraw in a day, up to £500?"
    article = passages["atms:using-cash-machines-how-much-you-can-take-out"].text
    assert "withdraw up to £500 in a day" in article
    candidates = ["hi, " + "You can withdraw up to £500 in a day." + " right?", lifted]
    assert copied_questions(candidates, passages) == [0]


def test_the_benchmark_split_is_fixed_disjoint_and_stratified_by_article() -> None:
    from benchmarks.quality.retrieval_prose import load_questions, split

    questions = load_questions(DATA)
    validation, held_out = split(questions, seed=21)
    assert split(questions, seed=21) == (validation, held_out)
    assert split(questions, seed=22) != (validation, held_out)
    v_ids, h_ids = {q.id for q in validation}, {q.id for q in held_out}
    assert not v_ids & h_ids
    assert v_ids | h_ids == {q.id for q in questions}
    assert abs(len(validation) - len(held_out)) <= 1
    per_article = Counter(q.article for q in questions)
    v_count = Counter(q.article for q in validation)
    for article, n in per_article.items():
        assert v_count[article] in (n // 2, n - n // 2), article


def test_a_piece_of_the_gold_section_counts_and_ranks_make_the_figures() -> None:
    from benchmarks.quality.retrieval_prose import metrics, rank_of

    gold = {"atms:using-cash-machines-what-it-costs"}
    assert rank_of(["a:b", "atms:using-cash-machines-what-it-costs:2"], gold) == 2
    assert rank_of(["atms:using-cash-machines-what-it-costs-2"], gold) is None
    m = metrics([1, 3, None, 5])
    assert (m["recall_at_1"], m["recall_at_3"], m["recall_at_5"]) == (0.25, 0.5, 0.75)
    assert m["mrr"] == round((1 + 1 / 3 + 1 / 5) / 4, 4)

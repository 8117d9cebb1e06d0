from __future__ import annotations

import json
from pathlib import Path

import pytest

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.sources.faq import load_faq, read_faq
from tests.conftest import BANKING_TRAIN, DEMO_FAQ


def test_demo_faq_has_one_entry_per_banking77_intent() -> None:
    import csv

    entries = load_faq(DEMO_FAQ)
    with open(BANKING_TRAIN, encoding="utf-8") as fh:
        intents = {row["category"] for row in csv.DictReader(fh)}
    assert len(entries) == 77
    assert {e.intent for e in entries} == intents
    assert len({e.id for e in entries}) == 77
    card = next(e for e in entries if e.intent == "card_arrival")
    assert card.id == "card-arrival" and card.line is not None and card.url


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".yaml"])
def test_every_format_reads_the_same_entries(tmp_path: Path, suffix: str) -> None:
    rows = [
        {
            "id": "fees",
            "question": "What are the fees?",
            "answer": "No monthly fee.",
            "intent": "fees",
            "tags": ["a", "b"],
        },
        {"question": "How do I close my account?", "answer": "Tap Settings > Close account."},
    ]
    path = tmp_path / f"faq{suffix}"
    if suffix == ".csv":
        path.write_text(
            "id,question,answer,intent,tags\nfees,What are the fees?,No monthly fee.,fees,a;b\n"
            ",How do I close my account?,Tap Settings > Close account.,,\n",
            encoding="utf-8",
        )
    elif suffix == ".json":
        path.write_text(json.dumps({"entries": rows}), encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    else:
        import yaml

        path.write_text(yaml.safe_dump(rows), encoding="utf-8")
    entries = load_faq(path)
    assert [e.question for e in entries] == ["What are the fees?", "How do I close my account?"]
    assert entries[0].id == "fees" and entries[0].tags == ("a", "b") and entries[0].intent == "fees"
    assert entries[1].id.startswith("how-do-i-close-my-account-")  # a stable id from the question


BAD_CSV = (
    "id,question,answer\nok,Fine?,Yes.\nnoanswer,Where?,\nok,Twice?,Again.\n"
    ",,Answer without question\n"
)
BAD_JSON_ROWS = [{"question": "Ok?", "answer": "Yes."}, {"question": "No answer?"}, {"answer": "x"}]
BAD_YAML = """\
- {question: Tags?, answer: a, tags: 5}
- {question: Alternatives?, answer: b, alternatives: [1]}
- {question: Id?, answer: c, id: "no spaces"}
- 7
- {question: Fine?, answer: d, tags: x, alternatives: y}
"""


@pytest.mark.parametrize(
    ("name", "text", "expected", "kept"),
    [
        pytest.param(
            "faq.csv",
            BAD_CSV,
            [
                (3, "missing 'answer'"),
                (4, "duplicate id 'ok' (first at line 2)"),
                (5, "missing 'question'"),
            ],
            "Fine?",
            id="csv",
        ),
        pytest.param(
            "faq.json",
            json.dumps({"entries": BAD_JSON_ROWS}, indent=2),
            [(7, "missing 'answer'"), (10, "missing 'question'")],
            "Ok?",
            id="json",
        ),
        pytest.param(
            "faq.yaml",
            BAD_YAML,
            [
                (1, "'tags' must be a list of strings"),
                (2, "'alternatives' must be a list of strings"),
                (3, "id 'no spaces' must be letters, digits, '_', '.', ':' or '-' (at most 128)"),
                (4, "an entry must be a mapping, got int"),
            ],
            "Fine?",
            id="yaml",
        ),
    ],
)
def test_bad_rows_are_reported_with_file_and_line(
    tmp_path: Path, name: str, text: str, expected: list[tuple[int, str]], kept: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    entries, problems = read_faq(path)
    assert [str(p) for p in problems] == [f"{path}:{line}: {message}" for line, message in expected]
    assert [e.question for e in entries] == [kept]


def test_a_strict_load_fails_on_the_first_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    with pytest.raises(SourceError, match=r"faq.csv:3: missing 'answer' \(and 2 more\)"):
        load_faq(path, strict=True)
    yaml_path = tmp_path / "faq.yaml"
    yaml_path.write_text(BAD_YAML, encoding="utf-8")
    fine = load_faq(yaml_path, strict=False)
    assert [(e.id.split("-")[0], e.tags, e.alternatives) for e in fine] == [
        ("fine", ("x",), ("y",))
    ]


def test_huge_answers_are_rejected_per_row(tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text(
        json.dumps({"question": "Big?", "answer": "x" * 10_000_000})
        + "\n"
        + json.dumps({"question": "Small?", "answer": "y"}),
        encoding="utf-8",
    )
    entries, problems = read_faq(path)
    assert [e.question for e in entries] == ["Small?"]
    assert "the limit is 20000" in str(problems[0]) and ":1:" in str(problems[0])


def test_faq_alternatives_from_a_csv_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "faq.csv"
    csv_path.write_text(
        "id,question,answer,alternatives\nfee,Any fees?,None.,is it free| what does it cost \n",
        encoding="utf-8",
    )
    entries, _ = read_faq(csv_path)
    assert entries[0].alternatives == ("is it free", "what does it cost")

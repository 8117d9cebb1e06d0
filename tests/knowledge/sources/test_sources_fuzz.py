"""Fuzzing every knowledge file reader: FAQ files (YAML, CSV, JSON, JSONL), documents
(Markdown, HTML, text) and intent-labelled examples. Any bytes, text or structure give
passages (and row problems) or a `SourceError` naming the file: never another exception,
never a hang."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskbot.knowledge.errors import SourceError
from deskbot.knowledge.sources.documents import DEFAULT_MAX_CHARS
from deskbot.knowledge.sources.faq import _ID_RE, MAX_ANSWER_CHARS, RowProblem
from deskbot.knowledge.sources.loading import read_examples, read_source
from tests import fuzzing

pytestmark = pytest.mark.fuzz

FAQ_FIELDS = ["id", "question", "answer", "intent", "tags", "url", "alternatives"]


def faq_entry() -> st.SearchStrategy[dict[str, Any]]:
    text = st.one_of(fuzzing.hostile_text(5), fuzzing.scalars())
    texts = st.one_of(st.lists(text, max_size=4), text, fuzzing.values())
    return fuzzing.mapping_of(
        {
            "id": st.one_of(st.sampled_from(["a", "a", "b-1", "x y", ""]), text),
            "question": text,
            "answer": st.one_of(text, st.just("x" * (MAX_ANSWER_CHARS + 1))),
            "intent": text,
            "tags": texts,
            "url": text,
            "alternatives": texts,
        }
    )


def faq_value() -> st.SearchStrategy[Any]:
    entries = st.lists(
        st.one_of(faq_entry(), fuzzing.scalars(), fuzzing.values(FAQ_FIELDS)), max_size=6
    )
    return st.one_of(
        entries,
        fuzzing.mapping_of({"entries": st.one_of(entries, fuzzing.values())}),
        fuzzing.values(FAQ_FIELDS),
    )


@st.composite
def faq_yaml(draw: st.DrawFn) -> bytes:
    return draw(fuzzing.yaml_document(draw(faq_value()))).encode("utf-8")


@st.composite
def faq_json(draw: st.DrawFn) -> bytes:
    text = json.dumps(draw(faq_value()), indent=draw(st.sampled_from([None, 2])))
    if draw(st.integers(0, 3)) == 0:
        text = draw(st.sampled_from(["[" * 5000 + "]" * 5000, "[1" + "0" * 5000 + "]"]))
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(fuzzing.hostile_text(4)) + text[at:]
    return text.encode("utf-8")


@st.composite
def faq_jsonl(draw: st.DrawFn) -> bytes:
    lines = draw(
        st.lists(
            st.one_of(
                faq_entry().map(json.dumps),
                st.sampled_from(["[" * 5000, "1" * 5000, "{", "", "null", "[]"]),
                fuzzing.hostile_text(4),
            ),
            max_size=6,
        )
    )
    return "\n".join(lines).encode("utf-8")


@st.composite
def table_csv(draw: st.DrawFn, columns: list[str]) -> bytes:
    header = draw(
        st.one_of(
            st.lists(st.sampled_from(columns), min_size=1, max_size=len(columns)),
            st.lists(fuzzing.hostile_text(3), max_size=3),
        )
    )
    rows = draw(st.lists(st.lists(fuzzing.hostile_text(5), max_size=len(header) + 1), max_size=6))
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        text = out.getvalue()
    else:
        text = "\n".join(",".join(r) for r in [header, *rows])
    return text.encode("utf-8")


@st.composite
def markdown(draw: st.DrawFn) -> bytes:
    front = ""
    if draw(st.booleans()):
        meta = fuzzing.mapping_of(
            {
                k: st.one_of(fuzzing.hostile_text(3), fuzzing.scalars(), fuzzing.values())
                for k in ("id", "title", "intent", "tags", "url")
            }
        )
        front = "---\n" + draw(fuzzing.yaml_document(draw(meta))) + "---\n"
    lines = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.sampled_from(["#", "##", "######", "#######", "   #"]),
                    fuzzing.hostile_text(3),
                ).map(lambda t: f"{t[0]} {t[1]}"),
                st.sampled_from(["", "===", "---", "```", "~~~", "<!-- id: q; tags: a -->"]),
                fuzzing.hostile_text(6),
            ),
            max_size=12,
        )
    )
    return (front + "\n".join(lines)).encode("utf-8")


@st.composite
def html(draw: st.DrawFn) -> bytes:
    tags = ["h1", "h2", "h6", "p", "pre", "div", "li", "br", "script", "style", "title", "svg", "x"]
    parts = draw(
        st.lists(
            st.one_of(
                st.tuples(st.sampled_from(tags), st.booleans()).map(
                    lambda t: f"<{'/' if t[1] else ''}{t[0]}>"
                ),
                fuzzing.hostile_text(4),
            ),
            max_size=16,
        )
    )
    return "".join(parts).encode("utf-8")


def check_source(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        passages, problems = read_source(path)
    except SourceError as exc:
        message = str(exc)
        assert str(path) in message and len(message) < 2000, message[:300]
        return
    for problem in problems:
        assert isinstance(problem, RowProblem) and problem.message and len(str(problem)) < 2000
    ids = [p.id for p in passages]
    assert len(set(ids)) == len(ids)
    for p in passages:
        assert isinstance(p.text, str) and p.text.strip() and len(p.text) <= MAX_ANSWER_CHARS
        assert p.intent is None or isinstance(p.intent, str)
        assert p.url is None or isinstance(p.url, str)
        assert all(isinstance(t, str) for t in p.tags)
        if path.suffix in (".yaml", ".csv", ".json", ".jsonl"):
            assert _ID_RE.match(p.id) and p.question
        elif not p.question:
            assert len(p.text) <= DEFAULT_MAX_CHARS


FAQ = {
    "faq-yaml": ("faq.yaml", st.one_of(faq_yaml(), fuzzing.hostile_bytes())),
    "faq-csv": ("faq.csv", st.one_of(table_csv(FAQ_FIELDS), fuzzing.hostile_bytes())),
    "faq-json": ("faq.json", st.one_of(faq_json(), fuzzing.hostile_bytes())),
    "faq-jsonl": ("faq.jsonl", st.one_of(faq_jsonl(), fuzzing.hostile_bytes())),
    "documents-markdown": ("help.md", st.one_of(markdown(), fuzzing.hostile_bytes())),
    "documents-html": ("help.html", st.one_of(html(), fuzzing.hostile_bytes())),
    "documents-text": ("help.txt", fuzzing.hostile_bytes()),
}


def _target(target: str) -> Any:
    name, strategy = FAQ[target]

    @fuzzing.fuzz_settings("parser")
    @given(data=strategy)
    def run(tmp_path: Path, data: bytes) -> None:
        with fuzzing.guard(target, "parser"):
            check_source(tmp_path / name, data)

    return run


test_faq_yaml_never_crashes = _target("faq-yaml")
test_faq_csv_never_crashes = _target("faq-csv")
test_faq_json_never_crashes = _target("faq-json")
test_faq_jsonl_never_crashes = _target("faq-jsonl")
test_markdown_documents_never_crash = _target("documents-markdown")
test_html_documents_never_crash = _target("documents-html")
test_text_documents_never_crash = _target("documents-text")


@fuzzing.fuzz_settings("parser")
@given(data=st.one_of(table_csv(["text", "category", "intent", "label"]), fuzzing.hostile_bytes()))
def test_intent_examples_csv_never_crashes(tmp_path: Path, data: bytes) -> None:
    with fuzzing.guard("examples-csv", "parser"):
        path = tmp_path / "train.csv"
        path.write_bytes(data)
        try:
            by_intent, problems = read_examples(path, per_intent=3)
        except SourceError as exc:
            assert str(path) in str(exc) and len(str(exc)) < 2000
            return
        for intent, texts in by_intent.items():
            assert intent.strip() == intent and intent and 1 <= len(texts) <= 3
            assert all(t.strip() for t in texts)
        assert all(p.line is not None for p in problems)


# -- what the fuzzing found, kept as plain cases -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        pytest.param("faq.json", b"[" * 5000 + b"]" * 5000, "nested too deeply", id="json-deep"),
        pytest.param("faq.json", b"[1" + b"0" * 5000 + b"]", "digits", id="json-huge-int"),
        pytest.param(
            "faq.csv",
            b'question,answer\n"' + b"x" * 140_000 + b'",a\n',
            ":2: not readable",
            id="csv-cell",
        ),
        pytest.param(
            "faq.yaml", b"- " + fuzzing.alias_bomb(9, 9).encode(), "expand", id="yaml-bomb"
        ),
        pytest.param("faq.yaml", b"- question: 2001-13-45\n  answer: a\n", "month", id="yaml-date"),
        pytest.param(
            "help.md",
            b"---\ntitle: " + fuzzing.alias_bomb(9, 9).encode() + b"\n---\n# T\nx\n",
            "expand",
            id="front-matter-bomb",
        ),
        pytest.param(
            "help.md", b"---\ntitle: [a, b]\n---\n# T\nx\n", "single value", id="front-matter-list"
        ),
        pytest.param("train.csv", b"\x07" * 5000 + b"\n", "found ['", id="long-header"),
    ],
)
def test_hostile_files_are_a_short_source_error(
    tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    read = read_examples if name == "train.csv" else read_source
    fuzzing.assert_short_error(SourceError, read, tmp_path / name, data, says)


def test_jsonl_rows_past_the_limits_are_row_problems(tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    good = json.dumps({"question": "Q?", "answer": "A."})
    path.write_text("\n".join(["[" * 5000, "1" * 5000, good]), encoding="utf-8")
    passages, problems = read_source(path)
    assert [p.question for p in passages] == ["Q?"]
    assert [p.line for p in problems] == [1, 2]
    assert "nested too deeply" in problems[0].message and "digits" in problems[1].message


def test_bare_carriage_returns_end_csv_lines(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes(b'question,answer\rWhat?,This.\r\nWhy?,"Because\rof it."\n')
    passages, problems = read_source(path)
    assert [(p.question, p.text) for p in passages] == [
        ("What?", "This."),
        ("Why?", "Because\rof it."),
    ]
    assert problems == []


def test_faq_entries_through_a_yaml_merge_key(tmp_path: Path) -> None:
    path = tmp_path / "faq.yaml"
    path.write_text("base: &b\n  entries:\n    - {question: Q?, answer: A.}\n<<: *b\n")
    passages, problems = read_source(path)
    assert [p.question for p in passages] == ["Q?"] and not problems


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("help.html", "<a " * 40_000, id="html-unclosed-tags"),
        pytest.param("help.html", "<p>x</p><!--" * 40_000, id="html-unclosed-comments"),
        pytest.param("help.md", "# T\n" + "<!--" * 100_000, id="markdown-unclosed-comments"),
        pytest.param("help.md", "# a" + "\t" * 140_000 + "b\ntext", id="markdown-heading-tabs"),
    ],
)
def test_documents_with_unclosed_markup_are_read_in_linear_time(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    read_source(path)
    assert time.perf_counter() - started < 10.0  # minutes before the fixes

"""Fuzzing the intents data readers (CSV and Rasa nlu.yml): any bytes, text or YAML give a
dataset or a `DataError` naming the file, never another exception and never a hang."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deskbot.bot.core.errors import DataError
from deskbot.training.data.datasets import MAX_TEXT_CHARS, IntentDataset, load_intents
from tests import fuzzing

pytestmark = pytest.mark.fuzz

HEADERS = [
    ["text", "category"],
    ["category", "text"],
    ["Text", " Intent "],
    ["text", "label", "extra"],
    ["text"],
    ["question", "answer"],
    [],
]


@st.composite
def intents_csv(draw: st.DrawFn) -> bytes:
    header = draw(
        st.one_of(st.sampled_from(HEADERS), st.lists(fuzzing.hostile_text(3), max_size=3))
    )
    rows = draw(st.lists(st.lists(fuzzing.hostile_text(6), max_size=len(header) + 1), max_size=8))
    if draw(st.booleans()):
        out = io.StringIO()
        writer = csv.writer(out, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
        writer.writerow(header)
        writer.writerows(rows)
        text = out.getvalue()
    else:  # written by hand: unbalanced quotes, bare CRs and all
        text = "\n".join(",".join(r) for r in [header, *rows])
    return text.encode("utf-8")


def nlu_block() -> st.SearchStrategy[dict[str, Any]]:
    example_lines = st.lists(fuzzing.hostile_text(4), max_size=5).map(
        lambda xs: "".join(f"- {x}\n" for x in xs)
    )
    return fuzzing.mapping_of(
        {
            "intent": st.one_of(fuzzing.hostile_text(3), fuzzing.scalars()),
            "examples": st.one_of(
                example_lines, st.lists(fuzzing.scalars(), max_size=4), fuzzing.values()
            ),
            "synonym": fuzzing.hostile_text(2),
            "regex": fuzzing.hostile_text(2),
        }
    )


@st.composite
def nlu_yaml(draw: st.DrawFn) -> bytes:
    doc = draw(
        st.one_of(
            fuzzing.mapping_of(
                {
                    "version": st.sampled_from(["3.1", 3.1, None]),
                    "nlu": st.one_of(st.lists(nlu_block(), max_size=5), fuzzing.values()),
                }
            ),
            fuzzing.values(["nlu", "intent", "examples"]),
        )
    )
    return draw(fuzzing.yaml_document(doc)).encode("utf-8")


def check(path: Path, data: bytes) -> None:
    result = fuzzing.read_or_short_error(DataError, load_intents, path, data)
    if result is None:
        return
    assert isinstance(result, IntentDataset) and len(result) > 0
    for text, label in zip(result.texts, result.labels, strict=True):
        assert text and len(text) <= MAX_TEXT_CHARS and text == " ".join(text.split())
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)
        assert label and isinstance(label, str)


@fuzzing.fuzz_settings("parser")
@given(data=st.one_of(intents_csv(), fuzzing.hostile_bytes()))
def test_intents_csv_never_crashes(tmp_path: Path, data: bytes) -> None:
    with fuzzing.guard("intents-csv", "parser"):
        check(tmp_path / "intents.csv", data)


@fuzzing.fuzz_settings("parser")
@given(data=st.one_of(nlu_yaml(), fuzzing.hostile_bytes()))
def test_intents_nlu_yaml_never_crashes(tmp_path: Path, data: bytes) -> None:
    with fuzzing.guard("intents-nlu-yaml", "parser"):
        check(tmp_path / "nlu.yml", data)


# -- what the fuzzing found, kept as plain cases -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        pytest.param(
            "i.csv",
            b'text,category\n"' + b"x" * 140_000 + b'",a\n',
            ":2: not readable",
            id="csv-cell",
        ),
        pytest.param("i.csv", b"\x07" * 5000 + b"\n", "expected columns", id="long-header"),
        pytest.param(
            "nlu.yml",
            b"nlu:\n- intent: a\n  examples: " + fuzzing.alias_bomb(9, 9).encode(),
            "expand",
            id="bomb",
        ),
        pytest.param(
            "nlu.yml",
            b"nlu:\n- intent: [a, b]\n  examples: [x]\n",
            "must be a name",
            id="intent-list",
        ),
        pytest.param(
            "nlu.yml", b"nlu:\n- intent: a\n  examples: [[x]]\n", "must be text", id="example-list"
        ),
        pytest.param(
            "nlu.yml", b"nlu:\n- intent: 0b" + b"1" * 20_000 + b"\n", "integer", id="huge-int"
        ),
        pytest.param("nlu.yml", b"nlu:\n- intent: 2001-13-45\n", "month", id="bad-date"),
        pytest.param("nlu.yml", b"nlu: " + b"[" * 3000 + b"]" * 3000, "nested", id="deep"),
    ],
)
def test_hostile_intents_files_are_a_short_data_error(
    tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    fuzzing.assert_short_error(DataError, load_intents, tmp_path / name, data, says)


def test_bare_carriage_returns_end_intents_csv_lines(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_bytes(b"text,category\rmy card,card_arrival\r\nhello there,greet\n")
    data = load_intents(path)
    assert data.texts == ("my card", "hello there") and data.labels == ("card_arrival", "greet")

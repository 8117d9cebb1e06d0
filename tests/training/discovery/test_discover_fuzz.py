"""Fuzzing the discover CSV (`deskbot discover intents --data CSV`): any bytes, or CSV files
of the expected shape with hostile headers and cells, give consistent `Messages` or a
short one-line `DataError` that starts with the file (and `FILE:LINE:` where a line is
at fault), never another exception and never a hang. A refused file, given to the CLI,
exits with that one `error:` line, writes nothing to --out and never reaches the
clustering (no model is loaded here).

Cases: 200 under the `ci` profile (fixed seeds), 10,000 under `ci-full`
(`python -m benchmarks.robustness.fuzz_import --only discover_csv`), or
`DESKBOT_FUZZ_CASES`.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from deskbot.bot.cli import app, load_plugins
from deskbot.bot.core.errors import DataError
from deskbot.training.data.datasets import MAX_TEXT_CHARS, normalize_text
from deskbot.training.discovery.sources import Messages, read_csv
from tests import fuzzing

pytestmark = pytest.mark.fuzz

load_plugins()

CI_CASES = 200  # the suite stays fast; the benchmark runs 10,000
TARGET = "discover_csv"


def discover_settings() -> settings:
    cases = os.environ.get(fuzzing.CASES_ENV)
    if cases is None:
        cases = str(CI_CASES if fuzzing.profile() == "ci" else 10_000)
    return settings(fuzzing.fuzz_settings("parser"), max_examples=int(cases))


@st.composite
def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """`usual` nine times in ten, else `rare`."""
    return draw(usual if draw(st.integers(0, 9)) else rare)


# Headers people write; headers that are wrong or ambiguous.
GOOD_HEADERS = [
    ["text"],
    ["text", "category"],
    ["category", "text"],
    [" Text ", "CATEGORY"],
    ["id", "text", "category", "note"],
]
BAD_HEADERS = [
    ["text", ""],
    ["text", "text"],
    ["Text", " TEXT"],
    ["text", "category", "Category"],
    ["texts", "category"],
    ["message", "label"],
    ["\ufefftext"],
    ["text;category"],
    [""],
    [],
]
# Texts read_csv takes (after collapsing whitespace), and texts it refuses or that break CSV.
GOOD_TEXTS = st.one_of(
    st.sampled_from(
        [
            "my card has not arrived",
            "reset my PIN",
            "  where is   it  ",
            "é ünïcode 😀 \u202e",
            "a,b",
            'say "hi"',
            "line\nbreak",
            "cr\r\nlf",
            "x" * MAX_TEXT_CHARS,
            "a" + " " * 5000 + "b",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=30),
)
BAD_TEXTS = st.one_of(
    st.sampled_from(["", " ", "x" * (MAX_TEXT_CHARS + 1), "bell \x07", "del \x7f", "\x85"]),
    fuzzing.hostile_text(4),
)
GOOD_CATEGORIES = st.sampled_from(["card", "pin", "card_arrival", " spaced ", "a\nb", "é"])
BAD_CATEGORIES = st.one_of(st.sampled_from(["", " ", "\t"]), fuzzing.hostile_text(2))
GOOD_OTHER = st.sampled_from(["", "1", "x", "a,b", '"'])
BAD_OTHER = fuzzing.hostile_text(2)


@dataclass(frozen=True)
class Case:
    """A file's bytes and, when it is exactly the CSV of `rows` (header first), the rows."""

    data: bytes
    rows: list[list[str]] | None


@st.composite
def csv_file(draw: st.DrawFn) -> Case:
    """A CSV of messages: clean (mostly read) or, half the time, with hostile headers,
    cells, rows, line ends and encodings (mostly refused)."""
    clean = draw(st.booleans())
    if clean:
        header = draw(st.sampled_from(GOOD_HEADERS))
        texts, categories, other = GOOD_TEXTS, GOOD_CATEGORIES, GOOD_OTHER
    else:
        header = draw(
            st.one_of(
                st.sampled_from(GOOD_HEADERS + BAD_HEADERS),
                st.lists(fuzzing.hostile_text(2), max_size=4),
            )
        )
        texts, categories, other = (
            mostly(good, bad)
            for good, bad in (
                (GOOD_TEXTS, BAD_TEXTS),
                (GOOD_CATEGORIES, BAD_CATEGORIES),
                (GOOD_OTHER, BAD_OTHER),
            )
        )
    kinds = {"text": texts, "category": categories}
    row = st.tuples(*(kinds.get(h.strip().lower(), other) for h in header)).map(list)
    blank = st.sampled_from([[], [" ", "\t"], [""]])
    ragged = st.lists(fuzzing.hostile_text(3), max_size=5) if not clean else blank
    n = draw(st.sampled_from([0, 1, 2, 3, 3, 5, 8, 8]))  # 0 or 1: too few messages
    rows = draw(st.lists(mostly(row, st.one_of(blank, ragged)), min_size=n, max_size=n))
    how = draw(st.sampled_from(["minimal", "all", "hand"]))
    if how == "hand":  # unbalanced quotes, bare CRs and all
        newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        text = newline.join(",".join(r) for r in [header, *rows])
        if draw(st.booleans()):
            text += newline
    else:
        out = io.StringIO()
        end = draw(st.sampled_from(["\r\n", "\n"]))
        writer = csv.writer(out, lineterminator=end)
        if how == "all":
            writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=end)
        writer.writerows([header, *rows])
        text = out.getvalue()
    if not clean and draw(st.integers(0, 3)):
        text = text.replace("\x00", "")  # NUL refuses the whole file: let most cases go deeper
    bom = draw(st.booleans())
    data = (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")
    encoding = 2 if clean else draw(st.integers(0, 9))
    if encoding == 0:  # another encoding than UTF-8
        data = text.encode(draw(st.sampled_from(["utf-16", "latin-1", "cp1252"])), "replace")
    elif encoding == 1:  # broken UTF-8, or a NUL
        at = draw(st.integers(0, len(data)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
        data = data[:at] + bad + data[at:]
    exact = encoding > 1 and (bom or not text.startswith("\ufeff"))
    return Case(data, [header, *rows] if exact and parses_as(text, [header, *rows]) else None)


def parses_as(text: str, rows: list[list[str]]) -> bool:
    """Whether Python's CSV reader gives back exactly `rows` from `text`."""
    try:
        return list(csv.reader(io.StringIO(text, newline=""))) == rows
    except csv.Error:  # a cell past the field limit
        return False


FILES = mostly(csv_file(), fuzzing.hostile_bytes().map(lambda data: Case(data, None)))


def lines_of(data: bytes) -> int:
    """The lines of `data` as read_csv's CSV reader counts them (\\n, \\r\\n or \\r)."""
    content = data.decode("utf-8-sig", "replace")
    return len(io.StringIO(content, newline="").readlines())


def check_messages(messages: Messages, path: Path, case: Case) -> None:
    n = len(messages)
    assert n >= 2 and len(messages.ids) == n and messages.source == str(path)
    assert messages.categories is None or len(messages.categories) == n
    assert all(c.strip() == c and c for c in messages.categories or ())
    for text in messages.texts:
        assert text and len(text) <= MAX_TEXT_CHARS and normalize_text(text) == text
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)
    lines = [int(i.removeprefix("line:")) for i in messages.ids if re.fullmatch(r"line:\d+", i)]
    assert len(lines) == n and lines == sorted(set(lines)), messages.ids[:5]
    assert lines[0] >= 2 and lines[-1] <= lines_of(case.data)
    if case.rows is None:
        return
    # The file is exactly the CSV of these rows: what was read is what was written.
    header = [h.strip().lower() for h in case.rows[0]]
    assert header.count("text") == 1 and header.count("category") <= 1
    body = [r for r in case.rows[1:] if any(c.strip() for c in r)]
    assert messages.texts == tuple(normalize_text(r[header.index("text")]) for r in body)
    if "category" in header:
        assert messages.categories == tuple(r[header.index("category")].strip() for r in body)
    else:
        assert messages.categories is None


def check_refusal(message: str, path: Path, data: bytes) -> None:
    assert message.startswith(f"{path}:") and len(message) < 2000, message[:300]
    # One printable line: no newline, escape sequence or bidi override from the file.
    assert message.isprintable(), ascii(message[:300])
    where = re.match(r":(\d+): ", message[len(str(path)) :])
    if where:
        assert 1 <= int(where.group(1)) <= max(1, lines_of(data)), message[:300]
    else:
        assert message[len(str(path)) :].startswith(": "), message[:300]


class NoClustering:
    """Stands in for the discoverer: a refused file must never reach the models."""

    def __init__(self, *_: object, **__: object) -> None:
        raise AssertionError("a refused file reached the clustering")


def test_a_discover_csv_is_read_consistently_or_refused_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("deskbot.training.discovery.discover.IntentDiscoverer", NoClustering)
    folder = tmp_path_factory.mktemp("fuzz-discover")
    path, out = folder / "messages.csv", folder / "out"
    runner = CliRunner()

    @discover_settings()
    @given(case=FILES, as_json=st.booleans())
    def run(case: Case, as_json: bool) -> None:
        with fuzzing.guard(TARGET, "parser"):
            path.write_bytes(case.data)
            try:
                messages = read_csv(path)
            except DataError as exc:
                message = str(exc)
                check_refusal(message, path, case.data)
            else:
                check_messages(messages, path, case)
                return
            cmd = ["discover", "intents", "--data", str(path), "--out", str(out)]
            result = runner.invoke(app, [*cmd, *(["--json"] if as_json else [])])
            assert result.exit_code == 2, result.output[-500:]
            assert result.stderr == f"error: {message}\n" and not result.stdout
            assert not out.exists()  # nothing written from a refused file

    run()

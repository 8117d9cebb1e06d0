"""Reading export files: each format recognised, bad rows reported as FILE:LINE (pretty-
printed JSON and multi-line CSV cells included), times and texts checked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from deskbot.training.imports.reading import read_export
from deskbot.training.imports.records import ImportFileError, RowError, clean_text, parse_time
from tests.training.imports.conftest import DATA, FIXTURES, write


@pytest.mark.parametrize(("name", "fmt"), sorted(FIXTURES.items()))
def test_auto_recognises_each_format(name: str, fmt: str) -> None:
    parsed = read_export(DATA / name)
    assert parsed.format == fmt
    assert parsed.conversations and not parsed.problems


def test_a_file_of_no_known_shape_is_one_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "x.json", '{"messages": [{"from": "ann", "body": "hi"}]}\n')
    with pytest.raises(ImportFileError, match=r"x\.json:1: cannot tell the format .*'messages'"):
        read_export(path)
    text = write(tmp_path, "x.txt", "hello there\n")
    with pytest.raises(ImportFileError, match=r"x\.txt:1: cannot tell the format.*--format"):
        read_export(text)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "the file is empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"id": 1,\n "turns": [}\n', ":2: not JSON"),
        (b"\x00\x01binary", "binary file"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path: Path, data: bytes, says: str) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(data)
    with pytest.raises(ImportFileError) as info:
        read_export(path, "jsonl")
    assert str(path) in str(info.value) and says in str(info.value)


def test_a_bad_message_in_pretty_printed_json_is_reported_at_its_line(tmp_path: Path) -> None:
    # The fixture as Chatwoot's API returns it, with one message's type broken (line 28).
    text = (DATA / "chatwoot_messages.json").read_text(encoding="utf-8")
    lines = text.split("\n")
    at = next(i for i, ln in enumerate(lines) if '"message_type": 2' in ln)
    lines[at] = lines[at].replace('"message_type": 2', '"message_type": 9')
    parsed = read_export(write(tmp_path, "cw.json", "\n".join(lines)))
    assert len(parsed.problems) == 1
    problem = parsed.problems[0]
    start = max(i for i in range(at) if lines[i].strip() == "{") + 1  # the message's "{"
    assert problem.line == start and "message_type 9 is not 0 (incoming)" in problem.message
    assert parsed.conversations[0].bad  # its conversation is skipped whole


def test_csv_lines_count_newlines_inside_quoted_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        'conversation_id,role,text\nc1,customer,"two\nlines"\nc1,visitor,hi\nc2,agent,ok\n',
    )
    parsed = read_export(path)
    assert [(p.line, p.message) for p in parsed.problems] == [
        (4, "role 'visitor' is not one of customer, agent, bot")
    ]
    assert [c.external_id for c in parsed.conversations if not c.bad] == ["c2"]


def test_csv_without_the_columns_says_which_it_needs(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,who,message\n1,customer,hi\n")
    with pytest.raises(ImportFileError, match=r"t\.csv:1: expected the columns conversation_id"):
        read_export(path, "csv")


def test_jsonl_reports_each_bad_line_and_keeps_the_good_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.jsonl",
        '{"id": "a", "turns": [{"role": "customer", "text": "hi"}]}\n'
        '{"id": "b", "turns": []}\n'
        "\n"
        '{"id": "c", "turns": [{"role": "agent", "text": "ok", "time": "yesterday"}]}\n'
        '{"id": "a", "turns": [{"role": "agent", "text": "again"}]}\n',
    )
    parsed = read_export(path)
    assert [(p.line, p.message.split(":")[0]) for p in parsed.problems] == [
        (2, "'turns' must be a non-empty list of {role, text, time}"),
        (4, "turns[0].time 'yesterday' is not a time"),
        (5, "conversation 'a' again (first on line 1); write each conversation on one line"),
    ]
    assert [c.external_id for c in parsed.conversations] == ["a"] and parsed.dropped == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01 10:00:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),  # no offset: UTC
        ("2024-03-01T11:00:00+01:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        (1709287200, datetime(2024, 3, 1, 10, tzinfo=UTC)),
        (1709287200.5, datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("1709287200", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        (1709287200000, datetime(2024, 3, 1, 10, tzinfo=UTC)),  # milliseconds
        (None, None),
        ("", None),
    ],
)
def test_times(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["soon", True, float("nan"), 10**30, 2**1100, "0001-01-01", [1]])
def test_bad_times_say_what_to_write(value: object) -> None:
    with pytest.raises(RowError):
        parse_time(value)


def test_texts_lose_control_characters_and_lone_surrogates() -> None:
    assert clean_text(" a\x00b\r\nc\ud800 ") == "a b\nc?"
    with pytest.raises(RowError, match="empty"):
        clean_text(" \x00 ")
    with pytest.raises(RowError, match="must be a string"):
        clean_text(12)

from __future__ import annotations

from pathlib import Path

import pytest

from deskbot.bot.core.errors import DataError
from deskbot.bot.store import SqlConversationStore
from deskbot.training.discovery.sources import read_csv, read_store


def write(tmp_path: Path, body: bytes | str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


def test_text_only_and_scored_csvs(tmp_path: Path) -> None:
    plain = read_csv(write(tmp_path, "text\nmy card\n\n  where is   it \n"))
    assert plain.texts == ("my card", "where is it") and plain.categories is None
    assert plain.ids == ("line:2", "line:4")
    scored = read_csv(write(tmp_path, "category,text\nc1,a\nc2,b\n", "s.csv"))
    assert scored.texts == ("a", "b") and scored.categories == ("c1", "c2")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("words\nhello\n", ":1: no 'text' column"),
        ('text,category\nfine,a\n"",b\n', ":3: empty text"),
        ("text,category\nfine,a\nbad\n", ":3: 1 columns, the header has 2"),
        ("text,category\nfine,a\nok,\n", ":3: empty category"),
        ("text\nfine\nbell \x07 here\n", ":3: control characters"),
        ("text\nonly one\n", "at least 2 are needed"),
        ("", "the file is empty"),
        (b"text\n\xff\xfe\n", "not UTF-8"),
        (b"text\nab\x00c\n", "binary"),
        ("text,Text \na,b\nc,d\n", ":1: 2 'text' columns in the header"),
        ("text,category,CATEGORY\na,b,c\nd,e,f\n", ":1: 2 'category' columns in the header"),
    ],
)
def test_bad_csvs_say_where_and_what(tmp_path: Path, body: str | bytes, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(DataError) as err:
        read_csv(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ('"a\nb\x1b[31m",c\nx,y\n', "(found a\\nb\\x1b[31m,c)"),
        ("\ufeff\ufefftext\nhi\nyo\n", "(found \\ufefftext)"),  # a BOM saved twice
        ("\u202etxet\nhi\nyo\n", "(found \\u202etxet)"),
    ],
)
def test_a_header_without_text_is_shown_on_one_printable_line(
    tmp_path: Path, body: str, shown: str
) -> None:
    """The header is the file's, not ours: a newline, an escape sequence or a bidi override
    in it would split the CLI's one error line or drive the terminal, so it is escaped."""
    path = write(tmp_path, body)
    with pytest.raises(DataError) as err:
        read_csv(path)
    message = str(err.value)
    assert message.startswith(f"{path}:1: no 'text' column") and message.endswith(shown)
    assert message.isprintable()


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_csv(tmp_path / "nope.csv")


def test_store_gives_each_conversations_opening_customer_messages(
    store: SqlConversationStore,
) -> None:
    a, _ = store.create_conversation()
    store.append_turn(a.id, "user", "hello")
    store.append_turn(a.id, "user", "my card has not arrived")
    store.append_turn(a.id, "bot", "Sorry to hear that.")
    store.append_turn(a.id, "user", "thanks")
    b, _ = store.create_conversation()
    store.append_turn(b.id, "bot", "Hi! How can I help?")
    store.append_turn(b.id, "user", "reset my pin")
    c, _ = store.create_conversation()  # no customer message at all
    store.append_turn(c.id, "bot", "Hi!")
    opening = read_store(store.engine)
    got = dict(zip(opening.ids, opening.texts, strict=True))
    assert got == {a.id: "hello my card has not arrived"}
    every = read_store(store.engine, opening_only=False)
    assert sorted(every.texts) == sorted(
        ["hello", "my card has not arrived", "thanks", "reset my pin"]
    )

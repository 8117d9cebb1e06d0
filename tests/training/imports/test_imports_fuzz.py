"""Fuzzing every import format: any bytes, or records of the format's shape with hostile
values, give an import or a short `ImportFileError` naming the file, never another
exception and never a hang; what is stored is exactly what the report counts, and a
refused file stores nothing.

Cases per format: 200 under the `ci` profile (fixed seeds), 10,000 under `ci-full`
(`python -m benchmarks.robustness.fuzz_import`), or `DESKBOT_FUZZ_CASES`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.training.imports.importer import import_file
from deskbot.training.imports.records import FORMATS, ImportFileError
from deskbot.training.imports.writer import ConversationWriter
from tests import fuzzing
from tests.training.imports.conftest import counts

pytestmark = pytest.mark.fuzz

CI_CASES = 200  # a format: the suite stays fast; the benchmark runs 10,000


def import_settings() -> settings:
    cases = os.environ.get(fuzzing.CASES_ENV)
    if cases is None:
        cases = str(CI_CASES if fuzzing.profile() == "ci" else 10_000)
    return settings(fuzzing.fuzz_settings("parser"), max_examples=int(cases))


@pytest.fixture(scope="module")
def store() -> Iterator[SqlConversationStore]:
    """One in-memory store for a format's cases: each case checks what it added."""
    engine = create_store_engine("sqlite://")
    migrate(engine)
    yield SqlConversationStore(engine)
    engine.dispose()


# -- values of each shape ------------------------------------------------------------------
# Mostly what the format holds (so that cases reach the store), sometimes anything.


@st.composite
def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """`usual` nine times in ten, else `rare` (`one_of` would draw each half the time)."""
    return draw(usual if draw(st.integers(0, 9)) else rare)


def often(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return mostly(valid, fuzzing.scalars())


@st.composite
def record(
    draw: st.DrawFn,
    required: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]],
) -> dict[str, Any]:
    """A mapping with every required field and some optional ones; now and then any
    subset of them, or an unknown key."""
    if draw(st.integers(0, 7)) == 0:
        return draw(fuzzing.mapping_of({**required, **optional}))
    out = {name: draw(value) for name, value in required.items()}
    if optional:
        out.update(draw(fuzzing.mapping_of(optional)))
    return out


IDS = often(st.one_of(st.sampled_from(["a", "b", "7", "c-1", "x" * 130]), st.integers(-2, 30)))
ROLES = often(st.sampled_from(["customer", "agent", "bot", "user", "Agent ", "boss"]))
TIMES = often(
    st.one_of(
        st.sampled_from(["2024-03-01T10:00:00Z", "2024-13-45", "1709287200", "", "10:00"]),
        st.integers(1_000_000_000, 2_000_000_000),
        st.integers(0, 2**45),  # milliseconds, or years past what is believed
        st.floats(1e9, 2e9),
    )
)
TEXTS = often(
    st.one_of(
        st.sampled_from(["hi", "my card 4111 1111 1111 1111", " ", "ann@example.com"]),
        fuzzing.hostile_text(4),
    )
)
# JSON strings JSON Lines may carry that no database stores: NUL and lone surrogates.
RAW_LINES = [
    '{"id": "\\ud800", "turns": [{"role": "customer", "text": "\\udfff\\u0000"}]}',
    '{"conversation_id": 1, "message_type": 0, "content": "\\u0000\\ud800", "created_at": 1}',
    '{"sender_id": "\\u0000", "event": "user", "text": "x"}',
    "[" * 5000 + "]" * 5000,
    '{"id": 1e999, "turns": [{"role": "bot", "text": "x", "time": -1e400}]}',
    "NaN",
]


def items(strategy: st.SearchStrategy[Any], size: int) -> st.SearchStrategy[Any]:
    return often(st.lists(strategy, max_size=size))


def jsonl_record() -> st.SearchStrategy[Any]:
    turn = record({"role": ROLES, "text": TEXTS}, {"time": TIMES})
    return record(
        {"id": IDS, "turns": items(turn, 4)},
        {"channel": often(st.sampled_from(["chat", "email", "x" * 40])), "started_at": TIMES},
    )


def chatwoot_record() -> st.SearchStrategy[Any]:
    sender = record({"type": often(st.sampled_from(["contact", "user", "agent_bot"]))}, {"id": IDS})
    message = record(
        {
            "conversation_id": IDS,
            "message_type": often(st.sampled_from([0, 1, 2, 3, "incoming", "outgoing", 4])),
            "content": TEXTS,
            "created_at": TIMES,
        },
        {
            "id": IDS,
            "private": often(st.booleans()),
            "sender": sender,
            "sender_type": often(st.sampled_from(["Contact", "User", "AgentBot"])),
        },
    )
    return st.one_of(message, record({"payload": items(message, 4)}, {"meta": fuzzing.values()}))


def zendesk_record() -> st.SearchStrategy[Any]:
    comment = record(
        {"author_id": IDS, "body": TEXTS, "created_at": TIMES},
        {"id": IDS, "plain_body": TEXTS, "public": often(st.booleans())},
    )
    ticket = record(
        {"id": IDS, "requester_id": IDS},
        {"created_at": TIMES, "via": record({"channel": often(st.just("email"))}, {})},
    )
    user = record({"id": IDS, "role": often(st.sampled_from(["end-user", "agent"]))}, {})
    return record({"ticket": ticket, "comments": items(comment, 4)}, {"users": items(user, 3)})


def rasa_record() -> st.SearchStrategy[Any]:
    names = ["user", "bot", "action", "session_started", "restart", "slot"]
    event = record(
        {
            "event": often(st.sampled_from(names)),
            "text": st.one_of(TEXTS, st.sampled_from(["/affirm", '/inform{"a": 1}'])),
            "timestamp": TIMES,
        },
        {"input_channel": often(st.just("rest"))},
    )
    tracker = record({"sender_id": IDS, "events": items(event, 6)}, {})
    row = record(
        {
            "sender_id": IDS,
            "type_name": often(st.just("user")),
            "data": mostly(event.map(json.dumps), fuzzing.hostile_text(3)),
        },
        {},
    )
    one = st.tuples(IDS, event).map(lambda t: {**t[1], "sender_id": t[0]})
    return st.one_of(one, tracker, row)


JSON_RECORDS = {
    "jsonl": jsonl_record,
    "chatwoot": chatwoot_record,
    "zendesk": zendesk_record,
    "rasa": rasa_record,
}


@st.composite
def json_export(draw: st.DrawFn, fmt: str) -> bytes:
    records = draw(st.lists(JSON_RECORDS[fmt](), max_size=6))
    if draw(st.booleans()):  # JSON Lines, with now and then a hostile line
        lines = [json.dumps(r) for r in records]
        for _ in range(draw(st.integers(0, 2))):
            hostile = draw(st.one_of(st.sampled_from(RAW_LINES), fuzzing.hostile_text(4)))
            lines.insert(draw(st.integers(0, len(lines))), hostile)
        text = "\n".join(lines)
    else:  # one document, pretty-printed or not, maybe an API response around a list
        text = json.dumps(records, indent=draw(st.sampled_from([None, 2])))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def csv_export(draw: st.DrawFn) -> bytes:
    header = draw(
        often(
            st.sampled_from(
                [
                    ["conversation_id", "role", "text", "time"],
                    ["conversation_id", "role", "text"],
                    ["Conversation_ID ", "text", "role", "channel", "time"],
                    ["id", "role", "text"],
                ]
            )
        ).map(lambda h: h if isinstance(h, list) else [str(h)])
    )
    cells = {"conversation_id": IDS, "role": ROLES, "text": TEXTS, "time": TIMES}
    row = st.tuples(*(cells.get(h.strip().lower(), TEXTS) for h in header)).map(
        lambda values: [str(v) if v is not None else "" for v in values]
    )
    hostile_row = st.lists(fuzzing.hostile_text(4), max_size=6)
    rows = draw(st.lists(mostly(row, hostile_row), max_size=8))
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        text = out.getvalue()
    else:  # written by hand: unbalanced quotes, bare CRs and all
        text = "\n".join(",".join(r) for r in [header, *rows])
    return text.encode("utf-8", "replace")


def exports(fmt: str) -> st.SearchStrategy[bytes]:
    shaped = csv_export() if fmt == "csv" else json_export(fmt)
    return mostly(shaped, fuzzing.hostile_bytes())


def check(store: SqlConversationStore, path: Path, fmt: str, data: bytes, strict: bool) -> None:
    path.write_bytes(data)
    before = counts(store)
    try:
        report = import_file(ConversationWriter(store.engine), path, fmt, strict=strict)  # type: ignore[arg-type]
    except ImportFileError as exc:
        message = str(exc)
        assert str(path) in message and len(message) < 2000, message[:300]
        assert counts(store) == before  # a refused file stores nothing
        return
    after = counts(store)
    assert after == (before[0] + report.conversations, before[1] + report.turns)
    assert not (strict and report.bad_rows)
    assert all(p.startswith(f"{path}:") and len(p) < 2000 for p in report.problems)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_imports_or_refuses_with_a_short_error(
    store: SqlConversationStore, tmp_path_factory: pytest.TempPathFactory, fmt: str
) -> None:
    folder = tmp_path_factory.mktemp(f"fuzz-{fmt}")

    @import_settings()
    @given(data=exports(fmt), explicit=st.booleans(), strict=st.booleans())
    def run(data: bytes, explicit: bool, strict: bool) -> None:
        with fuzzing.guard(f"import-{fmt}", "parser"):
            check(store, folder / f"export.{fmt}", fmt if explicit else "auto", data, strict)

    run()

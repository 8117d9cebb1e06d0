"""Importing into the real store, on SQLite and PostgreSQL: each format, redacted, marked
as imported and kept out of every live view, once however often it is run, and a bad file
stores nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from deskbot.bot.store import Conversation, SqlConversationStore
from deskbot.bot.store.conversations import hash_token
from deskbot.training.imports.importer import import_conversations
from deskbot.training.imports.records import ImportFileError
from deskbot.training.imports.writer import IMPORTED_TOKEN_HASH, conversation_key
from tests.training.imports.conftest import DATA, FIXTURES, counts, imported, write


def test_each_format_is_stored_with_its_roles_source_and_external_id(
    store: SqlConversationStore,
) -> None:
    report = import_conversations(store.engine, [DATA / name for name in sorted(FIXTURES)])
    assert report.ok and report.summary()["conversations"] == 9
    assert imported(store, "chatwoot") == {
        "24": [
            ("user", "Hi, my card hasn't arrived yet. I'm <NAME>, <EMAIL>"),
            ("bot", "Thanks for waiting! Our assistant will look this up."),
            ("agent", "Cards arrive within 3-5 working days. Yours was posted on Monday."),
        ]
    }
    zendesk = imported(store, "zendesk")
    assert zendesk["35436"] == [
        ("user", "My card has not arrived.\n\nCall me on <PHONE>."),
        ("agent", "Your card is out for delivery today. Regards, <NAME>"),
    ]
    assert zendesk["35437"][1] == ("agent", "Refunds take 5 working days.")
    rasa = imported(store, "rasa")
    assert rasa["default-8a41"][0] == ("user", "I lost my card, my IBAN is <IBAN>")
    assert [r for r, _ in rasa["default-8a41#2"]] == ["user", "bot", "user"]
    assert imported(store, "jsonl")["c-1"] == [
        ("user", "my card hasn't arrived, card <CARD>"),
        ("bot", "Cards arrive in 3-5 working days."),
        ("agent", "I've checked: it was posted yesterday."),
    ]
    assert imported(store, "csv")["t-1"] == [
        ("user", "my card hasn't arrived"),
        ("agent", "It was posted yesterday.\nIt should arrive tomorrow."),
    ]
    conv = store.get_conversation(conversation_key("zendesk", "35436"))
    assert conv is not None and (conv.status, conv.channel) == ("closed", "email")
    assert conv.created_at == datetime(2024, 3, 1, 9, tzinfo=UTC)
    assert report.summary()["pii_redacted"] == {
        "card": 1,
        "email": 1,
        "iban": 1,
        "name": 2,
        "phone": 1,
    }


def test_importing_again_adds_nothing(store: SqlConversationStore) -> None:
    files = [DATA / name for name in sorted(FIXTURES)]
    import_conversations(store.engine, files)
    before = counts(store)
    again = import_conversations(store.engine, files, strict=True).summary()
    assert counts(store) == before
    assert (again["conversations"], again["turns"], again["duplicates"]) == (0, 0, 9)


def test_bad_rows_are_reported_by_line_and_their_conversations_skipped(
    store: SqlConversationStore, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "chats.csv",
        "conversation_id,role,text,time\n"
        "a,customer,my card is late,2024-03-01T10:00:00Z\n"
        "b,customer,hello,2024-03-01T10:00:00Z\n"
        "a,supervisor,it's on its way,2024-03-01T10:01:00Z\n"
        "b,agent,hi!,not a time\n"
        "c,customer,top up?,\n",
    )
    report = import_conversations(store.engine, [path])
    summary = report.summary()
    assert not report.ok
    assert report.files[0].problems == [
        f"{path}:4: role 'supervisor' is not one of customer, agent, bot",
        f"{path}:5: time 'not a time' is not a time: use ISO 8601 (2024-03-01T10:15:00Z) "
        "or Unix seconds",
    ]
    assert (summary["conversations"], summary["skipped"], summary["bad_rows"]) == (1, 2, 2)
    assert list(imported(store, "csv")) == ["c"]


def test_strict_stops_at_the_first_bad_row_and_stores_nothing_of_the_file(
    store: SqlConversationStore, tmp_path: Path
) -> None:
    good = DATA / "conversations.jsonl"
    bad = write(
        tmp_path,
        "bad.jsonl",
        '{"id": "x", "turns": [{"role": "customer", "text": "fine"}]}\n'
        '{"id": "y", "turns": [{"role": "customer", "text": ""}]}\n',
    )
    with pytest.raises(ImportFileError) as info:
        import_conversations(store.engine, [good, bad], strict=True)
    assert str(info.value) == (
        f"{bad}:2: turns[0].text is empty (--strict: nothing of this file was imported)"
    )
    assert sorted(imported(store, "jsonl")) == ["2", "c-1"]  # the file before it stays


def test_a_write_that_fails_leaves_nothing_of_the_file(
    store: SqlConversationStore, tmp_path: Path
) -> None:
    # Another writer took the id the second conversation gets, after the duplicate check
    # could see it (here: before, under another source): the insert fails midway.
    path = write(
        tmp_path,
        "c.jsonl",
        "".join(
            json.dumps({"id": f"c{i}", "turns": [{"role": "customer", "text": f"hi {i}"}]}) + "\n"
            for i in range(3)
        ),
    )
    with store.engine.begin() as conn:
        conn.execute(
            insert(Conversation).values(
                id=conversation_key("jsonl", "c1"), token_hash="x", source="other"
            )
        )
    before = counts(store)
    report = import_conversations(store.engine, [path])
    assert report.files[0].refused is not None and "nothing of this file" in str(
        report.files[0].refused
    )
    assert counts(store) == before


def test_hostile_text_is_stored_or_refused_never_crashing_the_database(
    store: SqlConversationStore, tmp_path: Path
) -> None:
    # NUL and lone surrogates: PostgreSQL refuses both in text columns.
    path = write(
        tmp_path,
        "h.jsonl",
        '{"id": "n\\u0000", "turns": [{"role": "customer", "text": "a\\u0000b \\ud800"}]}\n'
        '{"id": "s\\udfff", "channel": "\\u0000web", "turns": [{"role": "bot", "text": "ok"}]}\n',
    )
    report = import_conversations(store.engine, [path])
    assert report.files[0].bad_rows == 1  # the NUL in the id
    assert imported(store, "jsonl") == {"s?": [("bot", "ok")]}


def test_imported_conversations_stay_out_of_live_views(
    store: SqlConversationStore, tmp_path: Path
) -> None:
    # One live conversation: a question, the bot's reply, a handoff.
    conv, _token = store.create_conversation()
    store.append_turn(conv.id, "user", "my card hasn't arrived")
    store.record_bot_turn(conv.id, "Cards arrive in 3-5 days.", kind="faq", intent="card_arrival")
    store.open_handoff(conv.id, reason="customer_request")
    live = store.dashboard_counts(days=14)
    queue = [h.id for h in store.handoff_queue()]
    review = [t.id for t in store.least_confident_turns()]
    # Past conversations from today, with bot turns and agents: nothing of them may count.
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"p{i}",
            "turns": [
                {"role": "customer", "text": "refund please", "time": now.isoformat()},
                {"role": "bot", "text": "Let me get someone.", "time": now.isoformat()},
                {
                    "role": "agent",
                    "text": "Done.",
                    "time": (now + timedelta(seconds=9)).isoformat(),
                },
            ],
        }
        for i in range(5)
    ]
    path = write(tmp_path, "p.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert import_conversations(store.engine, [path]).summary()["conversations"] == 5
    assert store.dashboard_counts(days=14) == live
    assert live["conversations"] == 1 and live["handed_off"] == 1
    assert [h.id for h in store.handoff_queue()] == queue
    assert [t.id for t in store.least_confident_turns()] == review
    # No session token opens one: the stored hash is no SHA-256 digest.
    stored = store.get_conversation(conversation_key("jsonl", "p0"))
    assert stored is not None and stored.token_hash == IMPORTED_TOKEN_HASH
    assert store.conversation_by_token(IMPORTED_TOKEN_HASH) is None
    assert hash_token(IMPORTED_TOKEN_HASH) != IMPORTED_TOKEN_HASH

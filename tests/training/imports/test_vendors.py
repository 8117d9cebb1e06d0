"""The vendors' export shapes read as their APIs mean them: who speaks (customer, agent,
bot), what is no message (activity, internal notes, actions, button payloads), how a
conversation is told apart (Chatwoot's conversation_id, a Zendesk ticket, a Rasa
session)."""

from __future__ import annotations

import json
from pathlib import Path

from deskbot.training.imports.reading import read_export
from tests.training.imports.conftest import DATA, write


def turns(parsed_conv: object) -> list[tuple[str, str]]:
    return [(t.role, t.text) for t in parsed_conv.turns]  # type: ignore[attr-defined]


def test_chatwoot_incoming_is_the_customer_outgoing_an_agent_or_the_bot() -> None:
    parsed = read_export(DATA / "chatwoot_messages.json")
    [conv] = parsed.conversations
    assert conv.external_id == "24"
    assert [r for r, _ in turns(conv)] == ["user", "bot", "agent"]
    texts = " ".join(t for _, t in turns(conv))
    # The activity line, the private note and the attachment alone are left out.
    assert "assigned" not in texts and "courier" not in texts
    assert parsed.ignored == 3


def test_chatwoot_lines_of_messages_group_by_conversation_in_time_order(tmp_path: Path) -> None:
    def msg(mid: int, conv: int, kind: int, text: str, at: int) -> str:
        return json.dumps(
            {
                "id": mid,
                "conversation_id": conv,
                "message_type": kind,
                "content": text,
                "created_at": at,
                "private": False,
                "sender": {"type": "contact" if kind == 0 else "user"},
            }
        )

    path = write(
        tmp_path,
        "cw.jsonl",
        "\n".join(
            [
                msg(3, 7, 1, "second page first: the agent's reply", 1709287260),
                msg(1, 7, 0, "my card is late", 1709287200),
                msg(9, 8, 0, "another chat", 1709287300),
                msg(1, 7, 0, "my card is late", 1709287200),  # overlapping pages
            ]
        ),
    )
    parsed = read_export(path)
    assert parsed.format == "chatwoot"
    by_id = {c.external_id: turns(c) for c in parsed.conversations}
    assert by_id == {
        "7": [("user", "my card is late"), ("agent", "second page first: the agent's reply")],
        "8": [("user", "another chat")],
    }


def test_zendesk_requester_is_the_customer_and_private_comments_are_notes() -> None:
    parsed = read_export(DATA / "zendesk_tickets.jsonl")
    first, second = parsed.conversations
    assert (first.external_id, first.channel) == ("35436", "email")
    assert [r for r, _ in turns(first)] == ["user", "agent"]
    assert all("courier" not in t for _, t in turns(first))  # the internal note
    # Without side-loaded users, the requester alone is the customer.
    assert [r for r, _ in turns(second)] == ["user", "agent"] and parsed.ignored == 1


def test_zendesk_ticket_without_a_requester_is_a_bad_row(tmp_path: Path) -> None:
    record = {"ticket": {"id": 5}, "comments": [{"author_id": 1, "body": "hi", "public": True}]}
    parsed = read_export(write(tmp_path, "z.jsonl", json.dumps(record) + "\n"))
    assert [p.line for p in parsed.problems] == [1]
    assert "no requester_id" in parsed.problems[0].message and not parsed.conversations


def test_rasa_sessions_are_conversations_of_user_and_bot_events() -> None:
    parsed = read_export(DATA / "rasa_tracker.json")
    first, second = parsed.conversations
    assert (first.external_id, second.external_id) == ("default-8a41", "default-8a41#2")
    assert turns(first) == [
        ("user", "I lost my card, my IBAN is GB82 WEST 1234 5698 7654 32"),
        ("bot", "I've frozen your card. A new one is on its way."),
    ]  # "/affirm" (a button) and the image-only bot event are left out
    assert [r for r, _ in turns(second)] == ["user", "bot", "user"]
    assert first.channel == "rest"


def test_rasa_event_lines_and_sql_tracker_rows_group_by_sender(tmp_path: Path) -> None:
    lines = [
        {"sender_id": "s1", "event": "user", "text": "hello", "timestamp": 1709373601},
        {
            "sender_id": "s2",
            "type_name": "user",
            "timestamp": 1709373602,
            "data": json.dumps({"event": "user", "text": "from the SQL store", "timestamp": 1.7e9}),
        },
        {"sender_id": "s1", "event": "bot", "text": "hi!", "timestamp": 1709373602},
        {"sender_id": "s1", "event": "user", "text": "x", "timestamp": "noon"},
    ]
    path = write(tmp_path, "events.jsonl", "\n".join(json.dumps(x) for x in lines))
    parsed = read_export(path)
    assert parsed.format == "rasa"
    assert {c.external_id: (turns(c), c.bad) for c in parsed.conversations} == {
        "s1": ([("user", "hello"), ("bot", "hi!")], True),
        "s2": ([("user", "from the SQL store")], False),
    }
    assert [p.line for p in parsed.problems] == [4]

"""The audit log (#22) as the real app writes it: each console and admin action through
its HTTP route or console handler, with a signed-in agent behind a trusted proxy, gives
exactly one row with the right actor, action, object and address and no message text;
a customer's erasure leaves no identifier of theirs; only admins read the log."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from fastapi.testclient import TestClient

from deskbot.bot.core.config import load_config
from deskbot.bot.server.api import close_api, create_api
from deskbot.bot.server.container import Bot, build_bot
from deskbot.bot.store.models import AuditEvent
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner, create_agent
from deskbot.ui.console.audit import EXPORT_KEEP_S, REFUSED, AuditHandlers, write_export
from deskbot.ui.console.find import FindHandlers
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.server import mount_ui

SECRET_KEY = "test-secret-" + "x" * 32
PROXY, AGENT_ADDRESS = "10.1.2.3", "203.0.113.7"  # the agent's, forwarded by the proxy
CUSTOMER_ID = "cust-0042"
CUSTOMER_TEXT = "my IBAN is DE89 3704 0044 0532 0130 00 and my card never came"
REPLY_TEXT = "Hello Ann, I am sending a new card to Baker Street 221b"


@dataclass
class Desk:
    bot: Bot
    http: TestClient
    handlers: ConsoleHandlers
    cookies: dict[str, str]  # username -> console cookie, from a real login

    def request(self, username: str) -> gr.Request:
        """A console request of `username`'s session, from the proxy."""
        return gr.Request(
            cookies={COOKIE_NAME: self.cookies[username]},
            headers={"x-forwarded-for": AGENT_ADDRESS},
            client=SimpleNamespace(host=PROXY),
        )

    def rows(self) -> list[AuditEvent]:
        return self.bot.store.audit_events(limit=None, newest_first=False)


@pytest.fixture
def desk(bot_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.setenv("DESKBOT_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("DESKBOT_TRUSTED_PROXIES", "10.0.0.0/8")
    bot = build_bot(load_config(bot_project))
    signer = SessionSigner(SECRET_KEY.encode(), bot.store)
    create_agent(bot.store, "alice", "alice-password", display_name="Alice")
    create_agent(bot.store, "root", "root-password", role="admin")
    app = mount_ui(create_api(bot), bot, signer=signer)
    # The test client's peer is "testclient", no trusted proxy: its own address counts.
    http = TestClient(app, follow_redirects=False)
    cookies = {}
    for name in ("alice", "root"):
        r = http.post("/agent/login", data={"username": name, "password": f"{name}-password"})
        assert r.status_code == 303 and r.headers["location"] == "./", r.text
        cookies[name] = r.cookies[COOKIE_NAME]
        http.cookies.clear()
    yield Desk(bot, http, ConsoleHandlers(bot, signer), cookies)
    close_api(app)


def _handoff(bot: Bot) -> tuple[str, int, int]:
    """A signed-in customer's conversation waiting for a person: its id, the handoff's,
    and its bot turn's."""
    store = bot.store
    conv, _ = store.create_conversation(customer_id=CUSTOMER_ID, channel="api")
    store.append_turn(conv.id, "user", CUSTOMER_TEXT)
    turn = store.append_turn(conv.id, "bot", "Cards arrive in 3 days.", intent="card_arrival")
    h = store.open_handoff(conv.id, "customer_request")
    return conv.id, int(h.id or 0), int(turn.id or 0)


def test_each_console_and_admin_action_writes_one_row_without_message_text(
    desk: Desk,
) -> None:
    h, bot = desk.handlers, desk.bot
    conv_id, hid, turn_id = _handoff(bot)
    alice = desk.request("alice")
    rows_before = len(desk.rows())  # the two logins

    # Failed logins: a known account is named, a typed unknown name never is.
    for name, password in (("alice", "wrong-password"), ("s3cret-typed-as-name", "x")):
        r = desk.http.post("/agent/login", data={"username": name, "password": password})
        assert r.headers["location"] == "login?failed=1"
    # The queue: pick (the transcript opens), claim, reply, label, hand back.
    unread = h.on_load(alice)[4]
    h.pick_conversation(hid, unread, alice)
    assert "You claimed" in h.claim(hid, alice)[0]
    assert h.send(hid, REPLY_TEXT, alice)[0] == "Sent."
    intent = sorted(bot.classifier.labels)[0]
    assert "Saved the label" in h.label(turn_id, intent, "", False, "", alice)[0]
    assert "back with the bot" in h.closer(back_to_bot=True)(hid, alice)[0]
    # Claimed again and resolved; then read in Find.
    hid2 = int(bot.store.open_handoff(conv_id, "customer_request").id or 0)
    h.claim(hid2, alice)
    assert "resolved and closed" in h.closer(back_to_bot=False)(hid2, alice)[0]
    FindHandlers(h).viewer(conv_id, bot.store.get_agent("alice"), alice)  # type: ignore[arg-type]
    # An admin exports the log.
    note, path = AuditHandlers(h).export("csv")("alice", "any", "", "", desk.request("root"))
    assert "events exported" in note
    exported = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert {r["actor"] for r in exported} == {"alice"}
    # Logout (the page's link, with alice's cookie).
    desk.http.cookies.set(COOKIE_NAME, desk.cookies["alice"], path="/agent")
    assert desk.http.get("/agent/logout").status_code == 303

    rows = desk.rows()[rows_before:]
    seen = [
        (e.actor, e.action, e.object_type, e.object_id, e.conversation_id, e.address) for e in rows
    ]
    assert seen == [
        ("alice", "login_failed", "agent", "alice", None, "testclient"),
        (None, "login_failed", None, None, None, "testclient"),
        ("alice", "transcript_opened", "handoff", str(hid), conv_id, AGENT_ADDRESS),
        ("alice", "handoff_claimed", "handoff", str(hid), conv_id, AGENT_ADDRESS),
        ("alice", "agent_replied", "handoff", str(hid), conv_id, AGENT_ADDRESS),
        ("alice", "turn_labelled", "turn", str(turn_id), conv_id, AGENT_ADDRESS),
        ("alice", "handed_back", "handoff", str(hid), conv_id, AGENT_ADDRESS),
        ("alice", "handoff_claimed", "handoff", str(hid2), conv_id, AGENT_ADDRESS),
        ("alice", "resolved", "handoff", str(hid2), conv_id, AGENT_ADDRESS),
        ("alice", "transcript_opened", "conversation", conv_id, conv_id, AGENT_ADDRESS),
        ("root", "export", "audit_log", None, None, AGENT_ADDRESS),
        ("alice", "logout", "agent", "alice", None, "testclient"),
    ]
    assert rows[1].detail == "unknown account"
    assert rows[5].detail == f"intent={intent} answer_wrong=False"
    assert desk.rows()[0].action == "login" and desk.rows()[0].address == "testclient"
    dump = repr([e.model_dump() for e in desk.rows()])
    for typed in (CUSTOMER_TEXT, REPLY_TEXT, "s3cret-typed-as-name", "password"):
        assert typed not in dump, typed


def test_an_admins_erasure_keeps_the_rows_and_no_identifier_of_the_customer(
    desk: Desk,
) -> None:
    h, bot = desk.handlers, desk.bot
    conv_id, hid, _ = _handoff(bot)
    alice = desk.request("alice")
    h.pick_conversation(hid, h.on_load(alice)[4], alice)
    h.claim(hid, alice)
    h.send(hid, REPLY_TEXT, alice)
    kept = len(desk.rows())

    desk.http.cookies.set(COOKIE_NAME, desk.cookies["root"], path="/agent")
    r = desk.http.delete(f"/agent/admin/customers/{CUSTOMER_ID}")
    assert r.status_code == 200, r.text

    rows = desk.rows()
    assert len(rows) == kept + 1
    erasure = rows[-1]
    assert (erasure.actor, erasure.action, erasure.object_type, erasure.address) == (
        "root",
        "erasure",
        "customer",
        "testclient",
    )
    dump = repr([e.model_dump() for e in rows])
    for identifier in (CUSTOMER_ID, conv_id, CUSTOMER_TEXT, REPLY_TEXT):
        assert identifier not in dump, identifier
    assert [e.object_id for e in rows if e.object_type == "handoff"] == [None] * 3


def test_only_admins_see_and_read_the_audit_tab(desk: Desk) -> None:
    a = AuditHandlers(desk.handlers)
    alice, root = desk.request("alice"), desk.request("root")
    assert a.visibility(alice)["visible"] is False
    assert a.visibility(root)["visible"] is True
    calls = [
        lambda r: a.choices(r),
        lambda r: a.show("any", "any", "", "", r),
        lambda r: a.export("jsonl")("any", "any", "", "", r),
    ]
    for call in calls:
        with pytest.raises(gr.Error, match=REFUSED):
            call(alice)
    assert not [e for e in desk.rows() if e.action == "export"]
    # The admin sees the logins, filtered.
    notice, table = a.show("alice", "login", "", "", root)
    assert notice.startswith("**1 events**")
    assert [row[1:3] for row in table["value"]] == [["alice", "login"]]
    notice, _ = a.show("any", "any", "2026-12-31", "2026-01-01", root)
    assert "must not be after" in notice


def test_an_export_file_is_private_and_deleted_by_a_later_export(tmp_path: Path) -> None:
    first = Path(write_export("a\n", "csv", tmp_path))
    assert first.read_text(encoding="utf-8") == "a\n" and first.stat().st_mode & 0o077 == 0
    second = Path(write_export("b\n", "jsonl", tmp_path, now=time.time() + EXPORT_KEEP_S + 1))
    assert not first.exists() and second.suffix == ".jsonl"

"""Teams through the console's real handlers and session cookies (SQLite and PostgreSQL):
an agent sees, opens and acts on their teams' conversations only; an admin on all."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from deskbot.bot.core.config import BotConfig
from deskbot.bot.store import Agent, SqlConversationStore
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner, create_agent
from deskbot.ui.console.customer import panel_values, short_id
from deskbot.ui.console.desk import DeskHandlers
from deskbot.ui.console.find import FindHandlers
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.console.tools import DeskTools
from deskbot.ui.console.unread import Unread

SECRET = "the stolen card was in Lisbon"


class Desk:
    """The console's handlers over the real store; `request(agent)` is a request with
    that agent's session cookie, as the browser sends it."""

    def __init__(self, store: SqlConversationStore) -> None:
        self.store = store
        self.signer = SessionSigner(b"k" * 32, store)
        bot = SimpleNamespace(
            store=store, classifier=SimpleNamespace(labels=[]), pipeline=None, config=BotConfig()
        )
        self.h = ConsoleHandlers(bot, self.signer)  # type: ignore[arg-type]
        self.desk = DeskHandlers(self.h)
        self.find = FindHandlers(self.h)

    def request(self, agent: Agent) -> gr.Request:
        return gr.Request(cookies={COOKIE_NAME: self.signer.issue(agent)}, headers={})

    def queue_ids(self, agent: Agent) -> list[int]:
        """The handoff ids of the queue table as the page's load draws it."""
        table = self.h.on_load(self.request(agent))[1]
        return [row[0] for row in table["value"]]


@pytest.fixture
def desk(store: SqlConversationStore) -> Desk:
    store.create_team("billing")
    return Desk(store)


def _handoff(store: SqlConversationStore, team: str | None = None) -> tuple[str, int]:
    """A queued handoff; the customer's message in team billing's is `SECRET`."""
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", SECRET if team == "billing" else "a general question")
    return conv.id, int(store.open_handoff(conv.id, "customer_request", team=team).id or 0)


def _text(value: Any) -> str:
    return str(value.get("value") if isinstance(value, dict) else value)


def test_an_agent_sees_and_claims_only_their_teams_conversations(desk: Desk) -> None:
    store = desk.store
    alice = create_agent(store, "alice", "password-1")  # the default team, "general"
    bea = create_agent(store, "bea", "password-2", teams=["billing"])
    _, general = _handoff(store)
    billing_conv, billing = _handoff(store, "billing")
    assert desk.queue_ids(alice) == [general]
    assert desk.queue_ids(bea) == [billing]
    table = desk.h.on_load(desk.request(bea))[1]
    assert table["value"][0][3] == "billing"  # the team column

    # A pick of the other team's conversation (stale, or forged) shows nothing of it.
    request = desk.request(alice)
    picked = desk.h.pick_conversation(billing, Unread(), request)
    assert picked[0] == [] and SECRET not in str(picked)
    assert "waits in team 'billing', which you are not in" in picked[3]
    assert [b["interactive"] for b in picked[-4:]] == [False] * 4
    ticked = desk.h.tick(billing, "", "", Unread(), False, request)
    assert SECRET not in str(ticked)

    claimed = desk.h.claim(billing, request)
    assert claimed[0].startswith("**Not done:**") and "not in" in claimed[0]
    assert store.get_handoff(billing).status == "queued"  # type: ignore[union-attr]
    replied = desk.h.send(billing, "hello", request)
    assert "not in" in replied[0]
    assert all(t.role == "user" for t in store.history(billing_conv))

    # The desk's tools refuse it too: notes, canned replies, notes shown.
    store.add_note(billing_conv, "bea", SECRET)
    notice, notes, _ = desk.desk.add_note(billing, "a note", request)
    assert "not in" in notice and SECRET not in notes
    assert SECRET not in str(desk.desk.panel(billing, request))

    # The review queue's rows and a picked (stale or forged) review row: nothing of it.
    bot_turn = store.append_turn(billing_conv, "bot", "Let me check.", confidence=0.1)
    assert SECRET not in str(desk.h.review_update(request))
    row = [int(bot_turn.id or 0)]
    click = gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row})
    _, context = desk.h.review_pick(click, request)
    assert SECRET not in str(context) and "not in" in str(context)
    assert SECRET in str(desk.h.review_pick(click, desk.request(bea))[1])

    # Her own team's conversation works as before.
    assert "You claimed" in desk.h.claim(general, request)[0]
    assert "You claimed" in desk.h.claim(billing, desk.request(bea))[0]


def test_an_admin_sees_and_acts_on_every_team(desk: Desk) -> None:
    store = desk.store
    root = create_agent(store, "root", "password-3", role="admin", teams=[])
    _, general = _handoff(store)
    _, billing = _handoff(store, "billing")
    assert desk.queue_ids(root) == [general, billing]
    request = desk.request(root)
    assert SECRET in str(desk.h.pick_conversation(billing, Unread(), request)[0])
    assert "You claimed" in desk.h.claim(billing, request)[0]


def test_find_opens_only_the_teams_conversations(desk: Desk) -> None:
    store = desk.store
    alice = create_agent(store, "alice", "password-1")
    root = create_agent(store, "root", "password-3", role="admin")
    billing_conv, _ = _handoff(store, "billing")
    bot_only = store.create_conversation()[0].id  # never handed off: no team
    store.append_turn(bot_only, "user", "what are your fees")

    def opened(conversation_id: str, agent: Agent) -> tuple[Any, ...]:
        # A click on the conversation's row of results, as the browser sends it.
        row = [short_id(conversation_id), "", ""]
        click = gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row})
        return desk.find.open_row([conversation_id], click, desk.request(agent))

    title, messages, *_ = opened(billing_conv, alice)
    assert "Not shown" in title and "team 'billing'" in title and messages == []
    assert "fees" in str(opened(bot_only, alice)[1])
    assert SECRET in str(opened(billing_conv, root)[1])

    # The list of results names only what the agent may open (an admin: all); nothing of
    # the other team's conversation, not even its first message, reaches the page.
    def results(agent: Agent) -> tuple[str, list[str]]:
        listed = desk.find.search("", "any", "", "", "", "", desk.request(agent))
        return str(listed[1]), listed[2]

    text, ids = results(alice)
    assert ids == [bot_only] and SECRET not in text
    assert set(results(root)[1]) == {billing_conv, bot_only}


def test_the_customer_panel_lists_only_the_teams_past_conversations(desk: Desk) -> None:
    store = desk.store
    alice = create_agent(store, "alice", "password-1")
    past, _ = store.create_conversation(customer_id="c-9")
    store.append_turn(past.id, "user", SECRET)
    store.open_handoff(past.id, "customer_request", team="billing")
    now, _ = store.create_conversation(customer_id="c-9")
    store.append_turn(now.id, "user", "hello again")
    handoff = int(store.open_handoff(now.id, "customer_request").id or 0)
    _, _, ids = panel_values(desk.h, now.id, alice)
    assert ids == []  # the billing conversation of the same customer is not listed
    root = create_agent(store, "root", "password-3", role="admin")
    assert panel_values(desk.h, now.id, root)[2] == [past.id]
    assert handoff


def test_a_transfer_goes_only_to_the_conversations_team(desk: Desk) -> None:
    store = desk.store
    bea = create_agent(store, "bea", "password-2", teams=["billing"])
    create_agent(store, "bob", "password-4", teams=["billing"])
    create_agent(store, "alice", "password-1")
    create_agent(store, "root", "password-3", role="admin", teams=[])
    _, billing = _handoff(store, "billing")
    store.claim_handoff(billing, "bea")
    tools = DeskTools(store)
    assert [u for _, u in tools.transfer_choices(bea, billing)] == ["bob", "root"]
    notice, *_ = desk.desk.transfer(billing, "alice", desk.request(bea))
    assert "Agent 'alice' is not in team 'billing'" in notice
    assert store.get_handoff(billing).claimed_by == "bea"  # type: ignore[union-attr]
    assert "now with bob" in tools.transfer(bea, billing, "bob")


def test_leaving_a_team_hides_its_queue_at_the_next_refresh(desk: Desk) -> None:
    store = desk.store
    bea = create_agent(store, "bea", "password-2", teams=["billing", "general"])
    _, billing = _handoff(store, "billing")
    assert desk.queue_ids(bea) == [billing]
    store.leave_team("bea", "billing")
    request = desk.request(bea)
    table, *_ = desk.h.tick(None, "", "", Unread(), False, request)
    assert _text(table) == "[]"

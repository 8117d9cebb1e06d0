"""Which team's queue a handoff waits in, on the real store (SQLite and PostgreSQL):
by its reason, else by the conversation's last intent, else the default team."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deskbot.bot.core.config_teams import TeamRoute, TeamsConfig
from deskbot.bot.dialogue.handoffs import ConversationHandoffs
from deskbot.bot.dialogue.policy import DialoguePolicy, DialogueRules
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate

TEAMS = TeamsConfig(
    routes={
        "billing": TeamRoute(intents=("refund_request",), reasons=("action_unavailable",)),
        "security": TeamRoute(intents=("card_stolen",), reasons=("form_failed",)),
    }
)


@pytest.fixture
def handoffs(database_url: str) -> Iterator[ConversationHandoffs]:
    engine = create_store_engine(database_url)
    migrate(engine)
    store = SqlConversationStore(engine)
    store.ensure_teams(TEAMS.names)
    yield ConversationHandoffs(store, DialoguePolicy(DialogueRules(teams=TEAMS)), None)
    engine.dispose()


def _said(handoffs: ConversationHandoffs, *intents: str | None) -> str:
    conv, _ = handoffs.store.create_conversation()
    for intent in intents:
        handoffs.store.append_turn(conv.id, "user", "a message", intent=intent)
    return conv.id


def _team(handoffs: ConversationHandoffs, conversation_id: str) -> str:
    handoff = handoffs.store.active_handoff(conversation_id)
    assert handoff is not None
    return handoff.team


def test_the_reason_routes_first(handoffs: ConversationHandoffs) -> None:
    conv = _said(handoffs, "refund_request")
    handoffs.open(conv, "form_failed", "refund_request")
    assert _team(handoffs, conv) == "security"  # the reason's team, not the intent's


def test_the_turns_intent_routes_when_no_reason_does(handoffs: ConversationHandoffs) -> None:
    conv = _said(handoffs, "card_stolen")
    handoffs.open(conv, "out_of_scope", "refund_request")
    assert _team(handoffs, conv) == "billing"


def test_the_last_intent_routes_a_handoff_outside_a_turn(handoffs: ConversationHandoffs) -> None:
    # The "talk to a person" button: no turn, so the customer's last classified message.
    conv = _said(handoffs, "refund_request", "card_stolen", None)
    handoff, _reply = handoffs.request(conv)
    assert (handoff.reason, handoff.team) == ("customer_request", "security")


def test_the_default_team_takes_what_no_route_names(handoffs: ConversationHandoffs) -> None:
    conv = _said(handoffs, "exchange_rate")
    handoffs.open(conv, "unclear", None)
    assert _team(handoffs, conv) == "general"
    silent = _said(handoffs)
    handoffs.request(silent)
    assert _team(handoffs, silent) == "general"

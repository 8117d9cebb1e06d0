"""Actions with a side effect: offered only when sure, asked before they run, and never
run for a question about them (no models: predictions are given)."""

from __future__ import annotations

import pytest

from deskbot.bot.core.config import ConfirmConfig
from deskbot.bot.core.types import IntentPrediction
from deskbot.bot.dialogue.confirming import (
    BUTTON_NO,
    BUTTON_YES,
    CANCELLED_TEXT,
    asks_how_to,
    is_no,
    is_yes,
)
from deskbot.bot.dialogue.policy import DialoguePolicy, DialogueRules, DialogueState, Message
from tests.bot.dialogue.how_to_phrasings import HOW_TO, REQUESTS

FREEZE = "action_freeze_card"
POLICY = DialoguePolicy(
    DialogueRules(
        intent_actions={"lost_or_stolen_card": FREEZE, "card_arrival": "action_card_order_status"},
        required_slots={"action_card_order_status": ("order_number",)},
        clarify_below=0.5,
        confirm={
            FREEZE: ConfirmConfig(
                min_confidence=0.8,
                prompt="Freeze your card ending {card_last4}?",
                slots_from="action_customer_cards",
            )
        },
    )
)
TWO_CARDS = [
    {"title": "Debit card ending 1234", "payload": '/choose{"card_last4": "1234"}'},
    {"title": "Credit card ending 5678", "payload": '/choose{"card_last4": "5678"}'},
]


def lost(text: str, conf: float = 0.93, state: DialogueState | None = None, **kw: bool):  # type: ignore[no-untyped-def]
    prediction = IntentPrediction("lost_or_stolen_card", conf, (("lost_or_stolen_card", conf),))
    return POLICY.decide(state or DialogueState(), Message(text, prediction=prediction, **kw))


def reply(state: DialogueState, text: str, intent: str = "top_up_failed", conf: float = 0.9):  # type: ignore[no-untyped-def]
    return POLICY.decide(state, Message(text, prediction=IntentPrediction(intent, conf)))


def offered_one_card():  # type: ignore[no-untyped-def]
    prepare = lost("I lost my card")
    assert (prepare.route, prepare.action) == ("prepare", "action_customer_cards")
    events = [{"event": "slot", "name": "card_last4", "value": "1234"}]
    return POLICY.after_lookup(prepare, events, [], [])


@pytest.mark.parametrize("text", HOW_TO)
def test_questions_about_an_action_are_how_to(text: str) -> None:
    assert asks_how_to(text)


@pytest.mark.parametrize("text", REQUESTS)
def test_requests_for_an_action_are_not_how_to(text: str) -> None:
    assert not asks_how_to(text)


def test_a_question_about_a_side_effect_is_answered_from_the_faq() -> None:
    for text in ("thanks! one more thing - how do I freeze my card?", "can I freeze my card?"):
        d = lost(text, 0.99)
        # Answered, nothing run, nothing offered (a side effect is never offered for a
        # question about it; a form without one is, see test_policy).
        assert (d.route, d.search, d.intent, d.action) == (
            "answer",
            True,
            "lost_or_stolen_card",
            None,
        )
        assert d.buttons == () and d.state.pending is None


def test_under_its_own_threshold_an_action_is_not_offered() -> None:
    # 0.58: over clarify_below, under the action's 0.8 (issue #24's weak guess).
    weak = lost("I lost my card", 0.58)
    assert (weak.route, weak.action, weak.search) == ("answer", None, True)
    # A click on the intent's button is the customer's own choice: it is offered.
    assert lost("/lost_or_stolen_card", 0.58, confirmed=True).route == "prepare"


def test_the_confirmation_names_the_card_and_yes_runs_the_action() -> None:
    ask = offered_one_card()
    assert ask.route == "confirm" and ask.kind == "form"
    assert (ask.text, ask.buttons) == ("Freeze your card ending 1234?", (BUTTON_YES, BUTTON_NO))
    assert ask.state.pending == FREEZE
    stored = DialogueState.from_json(ask.state.to_json())
    assert stored == ask.state  # the offer survives the store
    yes = reply(stored, "Yes")
    assert (yes.route, yes.action, yes.intent) == ("action", FREEZE, "lost_or_stolen_card")
    assert yes.state.pending is None and yes.state.slots["card_last4"] == "1234"


def test_no_cancels_and_anything_else_cancels_and_is_answered_as_new() -> None:
    ask = offered_one_card()
    no = reply(ask.state, "no thanks")  # small talk "thanks" too: the no comes first
    assert (no.route, no.text, no.state.pending) == ("cancel", CANCELLED_TEXT, None)
    other = reply(ask.state, "what is the exchange rate?", "exchange_rate")
    assert (other.route, other.intent, other.state.pending) == ("answer", "exchange_rate", None)
    assert reply(other.state, "Yes").route != "action"  # the offer is gone
    vague = reply(ask.state, "hmm maybe later", "top_up_failed", 0.2)
    assert vague.route == "clarify" and vague.state.pending is None


def test_with_several_cards_the_customer_is_asked_which() -> None:
    prepare = lost("I lost my card")
    which = POLICY.after_lookup(prepare, [], ["Which card do you mean?"], TWO_CARDS)
    assert (which.route, which.text) == ("confirm", "Which card do you mean?")
    assert which.buttons == ("Debit card ending 1234", "Credit card ending 5678")
    assert reply(which.state, "Yes").route != "action"  # no card chosen, nothing runs
    clicked = reply(which.state, "Credit card ending 5678")
    assert clicked.text == "Freeze your card ending 5678?"
    typed = reply(which.state, "the one ending 1234 please")
    assert typed.text == "Freeze your card ending 1234?"
    assert reply(typed.state, "yes").route == "action"
    both = reply(which.state, "1234 or 5678, not sure")
    assert both.route != "confirm" and both.state.pending is None


def test_a_failed_or_empty_lookup_offers_nothing() -> None:
    prepare = lost("I lost my card")
    failed = POLICY.after_lookup(prepare, None, [], [])
    assert (failed.route, failed.handoff_reason) == ("handoff", "action_unavailable")
    assert failed.state.pending is None
    none = POLICY.after_lookup(prepare, [], ["I can't find a card on your account."], [])
    assert (none.route, none.state.pending) == ("cancel", None)


def test_only_short_explicit_answers_are_yes_or_no() -> None:
    assert all(map(is_yes, ("Yes", "yes please", "OK", "go ahead")))
    assert all(map(is_no, ("No", "no thanks", "cancel", "don't")))
    for text in ("yes but how do I unfreeze it later?", "I guess", "no idea what you mean"):
        assert not is_yes(text) and not is_no(text)


def test_actions_without_a_confirmation_run_as_before() -> None:
    d = POLICY.decide(
        DialogueState(slots={"order_number": "NW123456"}),
        Message("where is my card?", prediction=IntentPrediction("card_arrival", 0.9)),
    )
    assert (d.route, d.action) == ("action", "action_card_order_status")


def test_each_offer_looks_the_card_up_afresh() -> None:
    chosen = DialogueState(slots={"card_last4": "5678", "email": "ann@example.com"})
    again = lost("I lost my card", state=chosen)
    assert (again.route, again.action) == ("prepare", "action_customer_cards")
    assert again.state.slots == {"email": "ann@example.com"}

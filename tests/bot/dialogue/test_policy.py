"""The dialogue policy's rules, decision by decision (no models: predictions are given)."""

from __future__ import annotations

from deskbot.bot.core.slots import slot_prompt
from deskbot.bot.core.types import OUT_OF_SCOPE, IntentPrediction, Passage
from deskbot.bot.dialogue.policy import (
    BUTTON_OTHER,
    CLARIFY_TEXT,
    DialoguePolicy,
    DialogueRules,
    DialogueState,
    Message,
    intent_title,
)

POLICY = DialoguePolicy(
    DialogueRules(
        intent_actions={
            "lost_or_stolen_card": "action_freeze_card",
            "card_arrival": "action_card_order_status",
        },
        required_slots={"action_card_order_status": ("order_number",)},
        clarify_below=0.5,
        bot_name="Northwind Bank",
    )
)


def p(intent: str, conf: float = 0.9, *ranking: tuple[str, float]) -> IntentPrediction:
    return IntentPrediction(intent, conf, ranking or ((intent, conf),))


def decide(
    state: DialogueState,
    text: str,
    prediction: IntentPrediction | None,
    smalltalk=None,
    *,
    confirmed=False,
):  # type: ignore[no-untyped-def]
    return POLICY.decide(state, Message(text, smalltalk, prediction, confirmed))


def test_confident_faq_intent_is_answered_and_counters_reset() -> None:
    d = decide(DialogueState(oos_streak=1, clarify_streak=1), "exchange rate?", p("exchange_rate"))
    assert (d.route, d.intent) == ("answer", "exchange_rate")
    assert d.state.oos_streak == d.state.clarify_streak == 0


def test_out_of_scope_twice_in_a_row_hands_off() -> None:
    first = decide(DialogueState(), "weather?", p(OUT_OF_SCOPE, 0.2))
    assert first.route == "out_of_scope" and "Northwind Bank" in first.text
    second = decide(first.state, "football?", p(OUT_OF_SCOPE, 0.1))
    assert (second.route, second.handoff_reason) == ("handoff", "out_of_scope")


def test_out_of_scope_streak_is_broken_by_an_answer() -> None:
    s = decide(DialogueState(), "weather?", p(OUT_OF_SCOPE, 0.2)).state
    s = decide(s, "exchange rate?", p("exchange_rate")).state
    assert decide(s, "football?", p(OUT_OF_SCOPE, 0.1)).route == "out_of_scope"


def test_low_confidence_offers_the_top_two_intents_then_rephrase_then_a_person() -> None:
    pred = p("card_arrival", 0.4, ("card_arrival", 0.4), ("card_delivery_estimate", 0.3))
    first = decide(DialogueState(), "card?", pred)
    assert first.route == "clarify"
    assert first.buttons == ("Card arrival", "Card delivery estimate", BUTTON_OTHER)
    assert first.state.offered == ("card_arrival", "card_delivery_estimate")
    # Clicking a button names the intent.
    picked = POLICY.button_intent(first.state, "Card delivery estimate", set())
    assert picked == "card_delivery_estimate"
    assert POLICY.button_intent(first.state, "/card_arrival", {"card_arrival"}) == "card_arrival"
    assert POLICY.button_intent(first.state, "/unknown", {"card_arrival"}) is None
    # "Something else": the second stage asks to rephrase; the third time, a person.
    second = decide(first.state, BUTTON_OTHER, None)
    assert second.route == "clarify" and "rephrase" in second.text
    third = decide(second.state, "card?", pred)
    assert (third.route, third.handoff_reason) == ("handoff", "unclear")


def test_explicit_request_for_a_person_hands_off_even_inside_a_form() -> None:
    s = DialogueState(form="action_card_order_status", form_intent="card_arrival")
    d = decide(s, "I want to talk to a human", None, smalltalk="human")
    assert (d.route, d.handoff_reason) == ("handoff", "customer_request")
    assert d.state.form is None


def test_repeated_negative_feedback_hands_off() -> None:
    first = decide(DialogueState(), "that didn't help", None, smalltalk="negative")
    assert first.route == "smalltalk" and first.buttons == ("Talk to a person",)
    second = POLICY.on_negative(first.state)
    assert (second.route, second.handoff_reason) == ("handoff", "negative_feedback")


def test_thumbs_down_on_two_answers_in_a_row_hands_off_and_thanks_ends_the_row() -> None:
    down = POLICY.on_negative(DialogueState())  # a thumbs-down on the first answer
    answered = decide(down.state, "what is your exchange rate?", p("exchange_rate", 0.95))
    assert answered.route == "answer" and answered.state.negative_streak == 1
    again = POLICY.on_negative(answered.state)  # and on the next one
    assert (again.route, again.handoff_reason) == ("handoff", "negative_feedback")
    thanked = decide(down.state, "thanks", None, smalltalk="thanks")
    assert POLICY.on_negative(thanked.state).route == "smalltalk"


def test_greeting_thanks_goodbye() -> None:
    assert "How can I help" in decide(DialogueState(), "hi", None, smalltalk="greet").text
    assert "welcome" in decide(DialogueState(), "thanks", None, smalltalk="thanks").text
    bye = decide(DialogueState(slots={"email": "a@b.cd"}), "bye", None, smalltalk="goodbye")
    assert "Goodbye" in bye.text and bye.state == DialogueState()


def test_action_without_slots_runs_at_once() -> None:
    d = decide(DialogueState(), "I lost my card", p("lost_or_stolen_card"))
    assert (d.route, d.action) == ("action", "action_freeze_card")


def test_form_asks_validates_and_then_runs_the_action() -> None:
    ask = decide(DialogueState(), "where is my card?", p("card_arrival"))
    assert ask.route == "ask_slot" and "order number" in ask.text
    assert ask.state.form == "action_card_order_status"
    retry = decide(ask.state, "I don't know", p(OUT_OF_SCOPE, 0.1))
    assert retry.route == "ask_slot" and "doesn't look like" in retry.text
    done = decide(retry.state, "it is nw-123456", p(OUT_OF_SCOPE, 0.1))
    assert (done.route, done.action) == ("action", "action_card_order_status")
    assert done.state.slots == {"order_number": "NW123456"} and done.state.form is None


def test_form_gives_up_after_too_many_attempts() -> None:
    s = decide(DialogueState(), "where is my card?", p("card_arrival")).state
    for _ in range(2):
        s = decide(s, "hmm", p(OUT_OF_SCOPE, 0.1)).state
    d = decide(s, "no idea", p(OUT_OF_SCOPE, 0.1))
    assert (d.route, d.handoff_reason) == ("handoff", "form_failed")


def test_a_slot_given_up_front_skips_the_question() -> None:
    d = decide(DialogueState(), "where is card order NW654321?", p("card_arrival"))
    assert (d.route, d.action) == ("action", "action_card_order_status")


def test_a_question_during_a_form_is_answered_and_the_form_waits() -> None:
    s = decide(DialogueState(), "where is my card?", p("card_arrival")).state
    d = decide(s, "what is your exchange rate?", p("exchange_rate", 0.95))
    assert (d.route, d.intent, d.search) == ("answer", "exchange_rate", True)
    assert d.state.form == "action_card_order_status"  # the form is kept...
    assert d.buttons == ("Card arrival",)  # ...one click away
    # The button goes back to the form's question; a slot value goes on with it.
    back = decide(d.state, "Card arrival", p("card_arrival", 1.0), confirmed=True)
    assert (back.route, back.text) == ("ask_slot", slot_prompt("order_number"))
    done = decide(d.state, "it's NW654321", p(OUT_OF_SCOPE, 0.2))
    assert (done.route, done.action) == ("action", "action_card_order_status")


def test_a_question_about_a_forms_action_is_answered_with_the_form_one_click_away() -> None:
    d = decide(DialogueState(), "how much is express card delivery?", p("card_arrival"))
    assert (d.route, d.search, d.action) == ("answer", True, "action_card_order_status")
    assert d.buttons == ("Card arrival",) and d.state.form is None
    passage = Passage(
        "card-delivery", "Express delivery costs 10.", 0.8, "faq", intent="card_arrival"
    )
    assert POLICY.ground(DialogueState(), d, passage).route == "answer"
    # The FAQ has nothing for it: the action it is about starts (its form asks).
    started = POLICY.ground(DialogueState(), d, None)
    assert (started.route, started.state.form) == ("ask_slot", "action_card_order_status")


def test_a_question_on_the_forms_own_topic_is_answered_too() -> None:
    s = decide(DialogueState(), "where is my card?", p("card_arrival")).state
    d = decide(s, "how much does express delivery cost?", p("card_arrival", 0.8))
    assert (d.route, d.search) == ("answer", True)
    assert d.state.form == "action_card_order_status" and d.state.form_attempts == 0


def test_the_customer_may_leave_a_form_for_another_topic() -> None:
    s = decide(DialogueState(), "where is my card?", p("card_arrival")).state
    d = decide(s, "I want to change my PIN", p("change_pin", 0.95))
    assert (d.route, d.intent) == ("answer", "change_pin")
    assert d.state.form is None


def test_state_round_trips_through_json_and_survives_garbage() -> None:
    s = DialogueState(slots={"email": "a@b.cd"}, form="f", offered=("a", "b"), oos_streak=1)
    assert DialogueState.from_json(s.to_json()) == s
    assert DialogueState.from_json({"oos_streak": "x", "unknown": 1}) == DialogueState()
    assert DialogueState.from_json({"form": 3}) == DialogueState()
    assert DialogueState.from_json({"oos_streak": 1, "unknown": 1}) == DialogueState(oos_streak=1)
    assert DialogueState.from_json(None) == DialogueState()


def test_action_events_update_slots() -> None:
    s = DialogueState(slots={"order_number": "NW1"})
    s = POLICY.after_action(
        s,
        [
            {"event": "slot", "name": "order_number", "value": None},
            {"event": "slot", "name": "card_frozen", "value": True},
            {"event": "slot", "name": "amount", "value": 12.5},
        ],
    )
    assert s.slots == {"amount": "12.5"}


def test_intent_titles() -> None:
    assert intent_title("Refund_not_showing_up") == "Refund not showing up"
    assert intent_title("reverted_card_payment?") == "Reverted card payment"


def passage(score: float, intent: str | None = "exchange_rate") -> Passage:
    return Passage("exchange-rate", "We use the daily rate.", score, "faq", intent=intent)


def test_the_faq_search_settles_answer_against_clarify_in_the_policy() -> None:
    before = DialogueState(clarify_streak=1)
    answer = decide(before, "exchange rate?", p("exchange_rate"))
    assert answer.search and answer.query_intent == "exchange_rate"
    assert POLICY.ground(before, answer, passage(0.9)) == answer
    weak = POLICY.ground(before, answer, passage(0.1))
    assert (weak.route, weak.text, weak.state.clarify_streak) == ("clarify", CLARIFY_TEXT, 2)
    assert POLICY.ground(DialogueState(clarify_streak=2), answer, None).route == "handoff"


def test_a_close_faq_match_answers_an_unsure_or_out_of_scope_message() -> None:
    unsure = decide(
        DialogueState(), "rate?", p("exchange_rate", 0.3, ("exchange_rate", 0.3), ("fees", 0.2))
    )
    assert unsure.route == "clarify" and unsure.query_intent == "exchange_rate"
    assert POLICY.ground(DialogueState(), unsure, passage(0.9)).route == "answer"
    assert POLICY.ground(DialogueState(), unsure, passage(0.9, "card_arrival")) == unsure
    assert POLICY.ground(DialogueState(), unsure, passage(0.6)) == unsure  # under answer_score
    oos = decide(DialogueState(), "rates?", p(OUT_OF_SCOPE, 0.2))
    assert oos.search and POLICY.ground(DialogueState(), oos, passage(0.9)).route == "answer"
    greeting = decide(DialogueState(), "hello", None, smalltalk="greet")
    assert not greeting.search


def test_a_failed_classifier_searches_the_faq_without_an_intent() -> None:
    d = POLICY.decide(DialogueState(), Message("exchange rate?", classified=False))
    assert (d.route, d.search, d.query_intent) == ("answer", True, None)


def test_an_unsure_message_is_not_answered_with_another_intents_entry() -> None:
    # Issue #24: "I need to dispute a payment from a shop that closed down" scored
    # 0.365, under clarify_below, and the Direct Debit entry (0.83) answered it.
    ranking = (("dispute_payment", 0.365), ("refund_not_showing_up", 0.2), ("card_payment", 0.1))
    before = DialogueState(slots={"amount": "25.00"})
    direct_debit = passage(0.83, "direct_debit_payment")
    oos = decide(before, "dispute a payment", p(OUT_OF_SCOPE, 0.365, *ranking))
    assert oos.candidates == ("dispute_payment", "refund_not_showing_up", "card_payment")
    asked = POLICY.ground(before, oos, direct_debit)
    assert asked.route == "clarify" and asked.state.slots == {"amount": "25.00"}
    assert asked.buttons == (
        "Dispute payment",
        "Refund not showing up",
        "Direct debit payment",  # the entry's intent is one of the options
        BUTTON_OTHER,
    )
    assert asked.state.offered == (
        "dispute_payment",
        "refund_not_showing_up",
        "direct_debit_payment",
    )
    known = {"dispute_payment", "direct_debit_payment"}
    assert (
        POLICY.button_intent(asked.state, "Direct debit payment", known) == "direct_debit_payment"
    )
    # An unsure in-scope verdict's own question (its two best intents) stands.
    unsure = decide(before, "dispute a payment", p("dispute_payment", 0.365, *ranking))
    assert unsure.route == "clarify" and POLICY.ground(before, unsure, direct_debit) == unsure
    # An entry of one of the top three intents still answers, as does an untagged one.
    oos = decide(DialogueState(), "dispute", p(OUT_OF_SCOPE, 0.365, *ranking))
    assert POLICY.ground(DialogueState(), oos, passage(0.83, "card_payment")).route == "answer"
    assert POLICY.ground(DialogueState(), oos, passage(0.83, None)).route == "answer"

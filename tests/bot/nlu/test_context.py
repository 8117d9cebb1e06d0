"""Reading a message in its thread: the rules of `read_in_context`, corrections, the thread."""

from __future__ import annotations

import pytest

from deskbot.bot.core.types import OUT_OF_SCOPE, IntentPrediction
from deskbot.bot.nlu.context import (
    THREAD_MESSAGES,
    ContextRules,
    correction_of,
    leans_on_thread,
    next_thread,
    plan_reading,
    read_alone,
    read_in_context,
    thread_text,
)

RULES = ContextRules(keep_alone_above=0.6, thread_weight=1.0, topic_weight=0.0)


def p(intent: str, conf: float, *ranking: tuple[str, float]) -> IntentPrediction:
    return IntentPrediction(intent, conf, ranking or ((intent, conf),))


def read(alone: IntentPrediction, thread: IntentPrediction, rules: ContextRules = RULES, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("topic", "card_arrival")
    return read_in_context(
        "text", alone, thread, context="my card hasn't arrived", rules=rules, **kw
    )


def test_a_follow_up_unsure_alone_is_read_in_its_thread() -> None:
    alone = p("transfer_timing", 0.31, ("transfer_timing", 0.31), ("card_delivery_estimate", 0.2))
    thread = p(
        "card_delivery_estimate", 0.72, ("card_delivery_estimate", 0.72), ("card_arrival", 0.2)
    )
    r = read(alone, thread)
    assert r.used and (r.prediction.intent, r.prediction.confidence) == (
        "card_delivery_estimate",
        0.72,
    )
    assert r.alone == alone and r.thread == thread
    assert not r.switched
    shown = r.explain()
    assert shown is not None
    assert shown["used"] and shown["after"] == "my card hasn't arrived"
    assert (
        shown["alone"] == ["transfer_timing", 0.31]
        and shown["thread"][0] == "card_delivery_estimate"
    )


def test_a_message_clear_on_its_own_keeps_its_meaning() -> None:
    alone = p("exchange_rate", 0.93)
    r = read(alone, p("card_arrival", 0.97))  # the thread pulls back to the old topic
    assert not r.used and r.prediction == alone
    assert r.switched  # another topic, clear on its own


def test_the_thread_is_not_read_when_it_is_less_sure() -> None:
    alone = p("top_up_failed", 0.5)
    assert not read(alone, p("card_arrival", 0.4)).used


def test_a_bare_follow_up_out_of_scope_alone_is_in_scope_in_its_thread() -> None:
    alone = p(OUT_OF_SCOPE, 0.2, ("why_verify_identity", 0.2))
    r = read(alone, p("top_up_failed", 0.66))
    assert r.used and r.prediction.intent == "top_up_failed"
    # Out of scope both ways stays out of scope.
    both = read(alone, p(OUT_OF_SCOPE, 0.4, ("top_up_failed", 0.4)))
    assert both.used and not both.prediction.in_scope


def test_the_topic_weight_and_the_mix_decide_between_close_readings() -> None:
    alone = p("card_arrival", 0.4, ("card_arrival", 0.4), ("card_delivery_estimate", 0.35))
    thread = p(
        "card_delivery_estimate", 0.45, ("card_delivery_estimate", 0.45), ("card_arrival", 0.42)
    )
    plain = read(alone, thread)
    assert plain.prediction.intent == "card_delivery_estimate"
    pulled = read(alone, thread, ContextRules(topic_weight=0.1), topic="card_arrival")
    assert pulled.prediction.intent == "card_arrival"
    mixed = read(alone, thread, ContextRules(thread_weight=0.5))
    assert mixed.prediction.intent == "card_arrival"  # 0.41 against 0.40


def test_a_correction_is_always_read_in_its_thread() -> None:
    alone = p("getting_virtual_card", 0.9)
    thread = p("virtual_card_not_working", 0.8)
    assert read(alone, thread, correction=True).prediction.intent == "virtual_card_not_working"


def test_a_correction_is_never_read_as_what_it_corrects() -> None:
    # "I want to change my PIN" / "no, I mean it's blocked": the thread still says PIN change.
    alone = p("card_not_working", 0.3, ("card_not_working", 0.3), ("pin_blocked", 0.25))
    thread = p("change_pin", 0.87, ("change_pin", 0.87), ("pin_blocked", 0.1))
    r = read(alone, thread, correction=True, topic="change_pin")
    assert r.used and r.prediction.intent == "pin_blocked"  # 0.35 against card_not_working 0.3


def test_without_a_thread_the_message_is_read_alone() -> None:
    alone = p("card_arrival", 0.2)
    r = read_in_context("x", alone, None, context=None, topic=None, rules=RULES)
    assert r == read_alone("x", alone) and r.explain() is None and not r.switched


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("no, I meant my virtual card", "my virtual card"),
        ("Sorry I meant the virtual one", "the virtual one"),
        ("nope, not that, I mean my PIN", "my PIN"),
        ("I meant the US", "the US"),
        ("actually I was asking about fees", "fees"),
    ],
)
def test_corrections_say_what_they_mean_instead(text: str, said: str) -> None:
    assert correction_of(text) == said


@pytest.mark.parametrize("text", ["no", "no thanks", "sorry", "no, I meant", "I lost my card"])
def test_answers_and_new_messages_are_not_corrections(text: str) -> None:
    assert correction_of(text) is None


def test_the_thread_keeps_the_last_messages_read_in_it() -> None:
    first = read_alone("my card hasn't arrived", p("card_arrival", 0.95))
    thread = next_thread((), first)
    assert thread == ("my card hasn't arrived",)
    follow = read(p("card_arrival", 0.9), p("card_arrival", 0.95))  # read alone
    assert next_thread(thread, follow) == ("text",)
    used = read(p("transfer_timing", 0.2), p("card_delivery_estimate", 0.7))
    assert next_thread(thread, used) == ("my card hasn't arrived", "text")
    many = ("a", "b", "c")[:THREAD_MESSAGES]
    assert len(next_thread(many, used)) == THREAD_MESSAGES
    oos = read_alone("the weather?", p(OUT_OF_SCOPE, 0.1))
    # Out of scope: kept, the next message may explain it (a real new topic resets it).
    assert next_thread(thread, oos) == ("my card hasn't arrived", "the weather?")
    assert thread_text("a" * 400, "b").endswith("a b") and len(thread_text("a" * 400, "b")) == 300


@pytest.mark.parametrize(
    ("text", "leans"),
    [
        ("why?", True),
        ("and if I'm living in Spain?", True),
        ("what about Google Pay?", True),
        ("is that normal?", True),
        ("how long till he gets it?", True),
        ("can you book me a table for two tonight?", False),
        ("how long does a SEPA transfer take?", False),
    ],
)
def test_what_points_back_to_its_thread(text: str, leans: bool) -> None:
    assert leans_on_thread(text) is leans


def test_only_a_message_that_points_back_is_read_in_its_thread() -> None:
    rules = ContextRules(keep_alone_above=1.01, only_leaning=True)
    oos = p(OUT_OF_SCOPE, 0.3, ("apple_pay_or_google_pay", 0.3))
    thread = p("apple_pay_or_google_pay", 0.9)
    kw = {"context": "can I use apple pay", "topic": "apple_pay_or_google_pay", "rules": rules}
    table = read_in_context("can you book me a table for two tonight?", oos, thread, **kw)
    assert not table.used and not table.prediction.in_scope
    google = read_in_context("and google pay?", oos, thread, **kw)
    assert google.used and google.prediction.intent == "apple_pay_or_google_pay"


def test_the_plan_reads_after_the_thread_only_what_may_need_it() -> None:
    thread = ("my card hasn't arrived",)
    assert plan_reading("how long does it take?", thread, RULES) == (
        "how long does it take?",
        "my card hasn't arrived",
        False,
    )
    assert plan_reading("no, I meant my virtual card", thread, RULES) == (
        "my virtual card",
        "my card hasn't arrived",
        True,
    )
    # Clear on its own: one reading only (the second costs a forward pass).
    leaning = ContextRules(only_leaning=True)
    assert plan_reading("can you book me a table for two tonight?", thread, leaning)[1] is None
    assert plan_reading("why?", (), RULES) == ("why?", None, False)  # no thread yet
    off = ContextRules(enabled=False)
    assert plan_reading("no, I meant my virtual card", thread, off) == (
        "no, I meant my virtual card",
        None,
        False,
    )

"""Follow-ups read in their thread, through the real pipeline, model, store and actions."""

from __future__ import annotations

import dataclasses

from deskbot.bot.dialogue.pipeline import TurnPipeline
from deskbot.bot.nlu.context import ContextRules
from deskbot.bot.server.container import Bot


def new_conv(bot: Bot) -> str:
    conv, _token = bot.store.create_conversation(channel="test")
    return conv.id


def stored_context(bot: Bot, conv: str) -> dict[str, object]:
    last = [t for t in bot.store.history(conv) if t.role == "bot"][-1]
    return dict((last.reply or {}).get("context") or {})


def test_a_bare_follow_up_is_read_in_its_thread_and_explained(bot: Bot) -> None:
    conv = new_conv(bot)
    first = bot.pipeline.handle(conv, "my top up failed")
    assert first.intent is not None and first.intent.intent == "top_up_failed"
    assert bot.store.dialogue_state(conv)["thread"] == ["my top up failed"]  # type: ignore[index]
    follow = bot.pipeline.handle(conv, "why did that happen?")
    assert follow.intent is not None and follow.intent.intent == "top_up_failed"
    assert follow.kind == "faq"
    shown = stored_context(bot, conv)
    assert shown["used"] is True and shown["after"] == "my top up failed"
    assert shown["read"] == "my top up failed why did that happen?"
    # The customer's turn keeps what the bot read it as (the agent console shows it).
    user = [t for t in bot.store.history(conv) if t.role == "user"][-1]
    assert user.intent == "top_up_failed"


def test_a_clear_new_topic_keeps_its_own_meaning_and_forgets_the_old_slots(bot: Bot) -> None:
    conv = new_conv(bot)
    ask = bot.pipeline.handle(conv, "/card_arrival")  # its button: the order-status form
    acted = bot.pipeline.handle(conv, "NW123456")
    assert (ask.kind, acted.kind) == ("form", "action")
    assert bot.store.dialogue_state(conv)["slots"]["order_number"] == "NW123456"  # type: ignore[index]
    switched = bot.pipeline.handle(conv, "What exchange rates do you use?")
    assert switched.intent is not None and switched.intent.intent == "exchange_rate"
    # It says all it means: read once, alone (no thread reading stored with it).
    assert stored_context(bot, conv) == {}
    state = bot.store.dialogue_state(conv)
    assert state is not None and state["slots"] == {} and state["topic"] == "exchange_rate"


def test_with_context_off_every_message_is_read_alone(bot: Bot) -> None:
    rules = dataclasses.replace(bot.pipeline.rules, context=ContextRules(enabled=False))
    pipeline = TurnPipeline(
        bot.store,
        bot.pipeline.classifier,
        bot.pipeline.retriever,
        rules,
        actions=bot.pipeline.actions,
    )
    try:
        conv = new_conv(bot)
        pipeline.handle(conv, "my top up failed")
        follow = pipeline.handle(conv, "why did that happen?")
        assert stored_context(bot, conv) == {}
        (alone,) = bot.pipeline.classifier.predict(["why did that happen?"])
        assert follow.intent is not None and follow.intent.intent == alone.intent
    finally:
        pipeline.close()

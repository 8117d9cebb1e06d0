"""Export of logged turns as training examples, on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deskbot.bot.store import SqlConversationStore
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import (
    AGENT,
    CONFIRMED,
    ExportSettings,
    export_examples,
    heldout_keys,
    text_key,
)


def exchange(
    store: SqlConversationStore, text: str, intent: str, confidence: float = 0.95
) -> tuple[str, int, int]:
    """One customer message and the bot's reply, logged as the pipeline logs them."""
    conv, _ = store.create_conversation()
    user = store.append_turn(conv.id, "user", text, intent=intent, confidence=confidence)
    bot = store.append_turn(conv.id, "bot", "an answer", intent=intent, confidence=confidence)
    assert user.id is not None and bot.id is not None
    return conv.id, user.id, bot.id


def test_agent_labels_confirmed_turns_and_what_is_left_out(store: SqlConversationStore) -> None:
    # an agent corrects the bot (label on the bot's reply) and labels a customer turn
    _, _, bot1 = exchange(store, "my card still hasn't come", "exchange_rate")
    store.add_label(bot1, "ann", intent="card_arrival")
    _, user2, _ = exchange(store, "what rate do you use for euros", "oos", 0.2)
    store.add_label(user2, "bob", intent="exchange_rate")
    # thumbs-up on a confident prediction: confirmed
    _, _, bot3 = exchange(store, "I forgot my PIN and now it's blocked", "pin_blocked", 0.97)
    store.set_feedback(bot3, 1)
    # thumbs-up but not confident: left out
    _, _, bot4 = exchange(store, "top up didn't work", "top_up_failed", 0.4)
    store.set_feedback(bot4, 1)
    # thumbs-down and nobody labelled it: disputed
    _, _, bot5 = exchange(store, "cancel my transfer now", "cancel_transfer", 0.99)
    store.set_feedback(bot5, -1)
    # thumbs-down, then an agent labelled it: the agent's label is used
    _, _, bot6 = exchange(store, "is there an age limit", "atm_support", 0.9)
    store.set_feedback(bot6, -1)
    store.add_label(bot6, "ann", intent="age_limit")
    # two agents disagree: left out
    _, _, bot7 = exchange(store, "where is an atm", "atm_support")
    store.add_label(bot7, "ann", intent="atm_support")
    store.add_label(bot7, "bob", intent="card_arrival")
    # a resolved conversation without a handoff confirms its confident turns
    conv8, _, _ = exchange(store, "my card was stolen", "lost_or_stolen_card", 0.92)
    store.set_status(conv8, "resolved")
    # ... but one that went through a handoff does not
    conv9, _, _ = exchange(store, "card got eaten by the machine", "atm_support", 0.95)
    store.open_handoff(conv9, "requested")
    store.set_status(conv9, "resolved")
    # an out-of-scope prediction with a thumbs-up is no example
    _, _, bot10 = exchange(store, "tell me a joke", "out_of_scope", 0.1)
    store.set_feedback(bot10, 1)

    result = export_examples(store)
    got = {(e.text, e.intent, e.source) for e in result.examples}
    assert got == {
        ("my card still hasn't come", "card_arrival", AGENT),
        ("what rate do you use for euros", "exchange_rate", AGENT),
        ("is there an age limit", "age_limit", AGENT),
        ("I forgot my PIN and now it's blocked", "pin_blocked", CONFIRMED),
        ("my card was stolen", "lost_or_stolen_card", CONFIRMED),
    }
    assert [e.source for e in result.examples][:3] == [AGENT] * 3  # agents first
    assert result.stats["disputed"] == 1
    assert result.stats["conflicting_labels"] == 1
    assert result.stats["confirmed_low_confidence"] == 1
    assert result.stats["confirmed_out_of_scope"] == 1
    looser = export_examples(store, settings=ExportSettings(min_confidence=0.3))
    assert ("top up didn't work", "top_up_failed") in {(e.text, e.intent) for e in looser.examples}


def test_duplicates_collapse_and_agents_win(store: SqlConversationStore) -> None:
    for text in ("Card not arrived", "card not arrived.", "card  NOT arrived!"):
        _, _, bot = exchange(store, text, "card_arrival", 0.95)
        store.set_feedback(bot, 1)
    _, _, bot = exchange(store, "card not arrived", "card_arrival", 0.95)
    store.add_label(bot, "ann", intent="lost_or_stolen_card")
    # the same text confirmed under two intents, no agent involved: dropped
    for intent in ("exchange_rate", "top_up_failed"):
        _, _, bot = exchange(store, "fees for topping up in euros", intent, 0.95)
        store.set_feedback(bot, 1)

    result = export_examples(store)
    assert [(e.intent, e.source) for e in result.examples] == [("lost_or_stolen_card", AGENT)]
    assert result.stats["duplicates"] == 3
    assert result.stats["conflicting_texts"] == 2


def test_the_heldout_set_is_never_exported(store: SqlConversationStore) -> None:
    test_set = IntentDataset(
        ("How do I top up my card?", "My card PIN is 1234 blocked"),
        ("top_up_failed", "pin_blocked"),
    )
    keys = heldout_keys(test_set)
    _, _, a = exchange(store, "how do i top up my card", "top_up_failed")
    _, _, b = exchange(store, "something else entirely", "age_limit")
    for turn in (a, b):
        store.add_label(turn, "ann", intent="top_up_failed")

    result = export_examples(store, heldout=keys)
    assert [e.text for e in result.examples] == ["something else entirely"]
    assert result.stats["heldout"] == 1
    assert all(e.key not in keys for e in result.examples)
    assert text_key("How do I top up my card?") == text_key("how do i top up my card")


def test_pii_is_redacted_before_it_leaves_the_store(store: SqlConversationStore) -> None:
    card, mail = "4111 1111 1111 1111", "sarah.t@example.com"
    _, _, bot = exchange(store, f"card {card} never arrived, write to {mail}", "card_arrival")
    store.add_label(bot, "ann", intent="card_arrival")

    result = export_examples(store)
    dataset = result.dataset()
    assert dataset.texts == ("card <CARD> never arrived, write to <EMAIL>",)
    assert card not in repr(result) and mail not in repr(result)
    assert result.redacted == {"card": 1, "email": 1}
    assert result.summary()["pii_redacted"] == {"card": 1, "email": 1}


def test_since_limits_labels_and_feedback_to_the_new_ones(store: SqlConversationStore) -> None:
    _, _, bot = exchange(store, "my card still hasn't come", "exchange_rate")
    store.add_label(bot, "ann", intent="card_arrival")
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert export_examples(store, since=later).examples == []
    assert len(export_examples(store, since=later - timedelta(hours=1)).examples) == 1


def test_both_spellings_of_out_of_scope_are_one_label(store: SqlConversationStore) -> None:
    from deskbot.training.data.datasets import OOS_LABEL

    # two agents mark the same message out of scope, one in each spelling: they agree
    _, _, bot1 = exchange(store, "what is the weather like", "card_arrival", 0.3)
    store.add_label(bot1, "ann", intent="out_of_scope")
    store.add_label(bot1, "bob", intent="oos")
    # a confirmed out-of-scope prediction in the old spelling is no example either
    _, _, bot2 = exchange(store, "sing me a song", "oos", 0.99)
    store.set_feedback(bot2, 1)
    result = export_examples(store)
    assert {(e.text, e.intent) for e in result.examples} == {
        ("what is the weather like", OOS_LABEL)
    }
    assert result.examples[0].agents == ("ann", "bob")
    assert result.stats["confirmed_out_of_scope"] == 1 and not result.stats["conflicting_labels"]


def test_a_follow_up_read_in_its_thread_is_learnt_as_the_thread(
    store: SqlConversationStore,
) -> None:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "my card hasn't arrived", intent="card_arrival")
    store.append_turn(conv.id, "bot", "an answer", intent="card_arrival")
    follow = store.append_turn(conv.id, "user", "how long does it take?")
    read = "my card hasn't arrived how long does it take?"
    context = {"after": "my card hasn't arrived", "read": read, "used": True}
    bot = store.append_turn(
        conv.id,
        "bot",
        "delivery times",
        intent="card_delivery_estimate",
        reply={"context": context},
    )
    assert bot.id is not None and follow.id is not None
    store.add_label(bot.id, "ann", intent="card_delivery_estimate")
    # A message read alone (context not used) is learnt as itself.
    alone = {"after": "x", "read": "what is the rate for euros", "used": False}
    user2 = store.append_turn(conv.id, "user", "what is the rate for euros")
    bot2 = store.append_turn(
        conv.id, "bot", "rates", intent="exchange_rate", reply={"context": alone}
    )
    assert bot2.id is not None and user2.id is not None
    store.add_label(bot2.id, "bob", intent="exchange_rate")
    texts = {e.text: e.intent for e in export_examples(store).examples}
    assert texts[read] == "card_delivery_estimate"
    assert "how long does it take?" not in texts
    assert texts["what is the rate for euros"] == "exchange_rate"

"""The turn pipeline end to end: a real fine-tuned model, the real FAQ index, SQLite, and
a real rasa-sdk action server on loopback."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import text as sql

from deskbot.bot.actions.client import ActionClient
from deskbot.bot.core.errors import ConfigError
from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.pipeline import TurnPipeline, UnknownTurn
from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.bot.server.container import Bot, build_bot, dialogue_rules
from tests.bot.actions.action_server import configure, free_port


def new_conv(bot: Bot) -> str:
    conv, _token = bot.store.create_conversation(channel="test")
    return conv.id


def say(bot: Bot, conv: str, *messages: str) -> list[Reply]:
    return [bot.pipeline.handle(conv, m) for m in messages]


def test_faq_answer_is_stored_with_intent_passages_versions_and_latencies(bot: Bot) -> None:
    conv = new_conv(bot)
    (reply,) = say(bot, conv, "What exchange rates do you use?")
    assert reply.kind == "faq" and reply.citations == ("exchange-rate",)
    assert reply.intent is not None and reply.intent.intent == "exchange_rate"
    assert {"store_user", "classify", "retrieve", "total"} <= set(reply.latency_ms)
    user, bot_turn = bot.store.history(conv)
    assert (user.role, user.intent) == ("user", "exchange_rate")
    assert bot_turn.id == reply.turn_id and bot_turn.kind == "faq"
    assert bot_turn.passages[0]["id"] == "exchange-rate"
    assert bot_turn.model_versions["intents"] == "v1" and "faq_index" in bot_turn.model_versions
    assert bot_turn.latency_ms["total"] >= bot_turn.latency_ms["classify"] > 0


def test_small_talk_is_answered_like_a_person_would(bot: Bot) -> None:
    conv = new_conv(bot)
    hello, thanks, bye = say(bot, conv, "Hello!", "thanks a lot", "bye")
    assert (hello.kind, thanks.kind, bye.kind) == ("smalltalk",) * 3
    assert "How can I help" in hello.text and "welcome" in thanks.text and "Goodbye" in bye.text
    assert hello.intent is None and "classify" not in hello.latency_ms
    assert bot.store.history(conv)[0].intent == "smalltalk:greet"


def test_out_of_scope_twice_hands_off_then_the_bot_is_silent_until_handed_back(bot: Bot) -> None:
    conv = new_conv(bot)
    first, second = say(bot, conv, "what's the weather like in paris", "tell me a joke about cats")
    assert first.kind == "fallback"
    assert (second.kind, second.handoff_reason) == ("handoff", "out_of_scope")
    handoff = bot.store.active_handoff(conv)
    assert handoff is not None and handoff.reason == "out_of_scope"
    assert handoff.id in [h.id for h in bot.store.handoff_queue()]
    # A person owns it: the customer's messages are stored, the bot says nothing.
    (silent,) = say(bot, conv, "hello? anyone?")
    assert (silent.kind, silent.text, silent.turn_id) == ("handoff", "", None)
    assert bot.store.history(conv)[-1].text == "hello? anyone?"
    bot.store.append_turn(conv, "agent", "Hi, Sam here. How can I help?", author="sam")
    assert handoff.id is not None
    bot.pipeline.hand_back(handoff.id)
    (back,) = say(bot, conv, "What exchange rates do you use?")
    assert back.kind == "faq"
    # The out-of-scope streak started again after the hand-back.
    (oos,) = say(bot, conv, "what's the weather like in paris")
    assert oos.kind == "fallback"


def test_asking_for_a_person_hands_off_with_the_transcript(bot: Bot) -> None:
    conv = new_conv(bot)
    say(bot, conv, "What exchange rates do you use?")
    (reply,) = say(bot, conv, "I want to talk to a real person")
    assert (reply.kind, reply.handoff_reason) == ("handoff", "customer_request")
    assert "colleague" in reply.text
    handoff = bot.store.active_handoff(conv)
    assert handoff is not None and handoff.reason == "customer_request"
    transcript = [t.text for t in bot.store.history(handoff.conversation_id)]
    assert transcript[0] == "What exchange rates do you use?" and transcript[-1] == reply.text


def test_intent_mapped_to_an_action_runs_it_on_the_action_server(bot: Bot) -> None:
    conv = new_conv(bot)
    (reply,) = say(bot, conv, "/lost_or_stolen_card")
    assert (reply.kind, reply.action) == ("action", "action_freeze_card")
    assert reply.text.startswith("I've frozen your card")
    assert "action" in reply.latency_ms


def test_classified_intent_runs_an_action_that_needs_an_agent(bot: Bot) -> None:
    conv = new_conv(bot)
    (reply,) = say(bot, conv, "my pin is blocked")
    assert reply.intent is not None and reply.intent.intent == "pin_blocked"
    assert (reply.kind, reply.handoff_reason) == ("handoff", "action")
    assert reply.text.startswith("I've frozen your card so that nobody can use it.")
    assert bot.store.active_handoff(conv) is not None


def test_form_asks_for_the_order_number_validates_it_and_calls_the_action(bot: Bot) -> None:
    conv = new_conv(bot)
    ask, retry, done = say(bot, conv, "/card_arrival", "I'm not sure", "it's nw-123456")
    assert ask.kind == "form" and "order number" in ask.text
    assert retry.kind == "form" and "doesn't look like" in retry.text
    assert (done.kind, done.action) == ("action", "action_card_order_status")
    assert done.text == (
        "Card order NW123456 is dispatched on 18 November by Royal Mail, tracking RM482913GB."
    )
    # The action cleared nothing; an unknown order is cleared by the action's SlotSet.
    (unknown,) = say(bot, conv, "/card_arrival")
    assert unknown.kind == "action"  # the order number is remembered
    assert bot.store.dialogue_state(conv)["slots"] == {"order_number": "NW123456"}  # type: ignore[index]


def test_the_customer_can_change_the_topic_in_the_middle_of_a_form(bot: Bot) -> None:
    conv = new_conv(bot)
    ask, other = say(bot, conv, "/card_arrival", "What exchange rates do you use?")
    assert ask.kind == "form"
    # Answered, and the form waits one click away ("can return to the form or leave it").
    assert other.kind == "faq" and other.citations == ("exchange-rate",)
    assert other.buttons == ("Card arrival",)
    assert bot.store.dialogue_state(conv)["form"] == "action_card_order_status"  # type: ignore[index]
    (left,) = say(bot, conv, "My top up failed")  # not a question: the form is left
    assert left.kind == "faq" and left.intent is not None
    assert left.intent.intent == "top_up_failed"
    assert bot.store.dialogue_state(conv)["form"] is None  # type: ignore[index]


def test_failing_actions_fall_back_and_never_lose_the_turn(bot: Bot) -> None:
    conv = new_conv(bot)
    (crash,) = say(bot, conv, "/atm_support")  # HTTP 500 on the server
    assert (crash.kind, crash.handoff_reason) == ("handoff", "action_unavailable")
    conv = new_conv(bot)
    (rejected,) = say(bot, conv, "/cancel_transfer")  # HTTP 400: the bot keeps the chat
    assert rejected.kind == "fallback" and "couldn't do that" in rejected.text
    assert bot.store.active_handoff(conv) is None
    assert [t.role for t in bot.store.history(conv)] == ["user", "bot"]


def test_action_server_down_hands_off(bot: Bot) -> None:
    cfg = configure(bot.config, f"http://127.0.0.1:{free_port()}/webhook")
    other = build_bot(cfg, store=bot.store)
    conv = new_conv(bot)
    (reply,) = [other.pipeline.handle(conv, "/lost_or_stolen_card")]
    assert (reply.kind, reply.handoff_reason) == ("handoff", "action_unavailable")
    assert [t.role for t in bot.store.history(conv)] == ["user", "bot"]
    other.close()


def with_rules(bot: Bot, actions: ActionClient | None = None, **rules: float) -> TurnPipeline:
    """A pipeline over the bot's store, classifier and retriever, its dialogue rules changed
    by `rules`."""
    changed = dataclasses.replace(dialogue_rules(bot.config), **rules)
    return TurnPipeline(bot.store, bot.classifier, bot.retriever, changed, actions=actions)


def test_low_confidence_offers_two_intents_and_a_click_answers(bot: Bot) -> None:
    conv = new_conv(bot)
    strict = with_rules(bot, clarify_below=1.01, answer_score=1.1, actions=bot.actions)
    first = strict.handle(conv, "What exchange rates do you use?")
    assert first.kind == "clarify" and len(first.buttons) == 3
    assert first.buttons[0] == "Exchange rate" and first.buttons[-1] == "Something else"
    clicked = strict.handle(conv, first.buttons[0])
    assert clicked.kind == "faq" and clicked.citations == ("exchange-rate",)
    strict.close()


def test_the_faq_answers_a_close_match_the_classifier_is_unsure_of(bot: Bot) -> None:
    conv = new_conv(bot)
    unsure = with_rules(bot, clarify_below=1.01)
    (reply,) = [unsure.handle(conv, "What exchange rates do you use?")]
    assert reply.kind == "faq" and reply.citations == ("exchange-rate",)
    unsure.close()


def test_classifier_failure_and_timeout_fall_back_to_the_faq(
    bot: Bot, tmp_path: Path, trained_model_dir: Path
) -> None:
    broken_dir = tmp_path / "broken"
    shutil.copytree(trained_model_dir, broken_dir)
    (broken_dir / "model.safetensors").write_bytes(b"not weights")
    broken = TransformerIntentClassifier(broken_dir)
    settings = dialogue_rules(bot.config)
    for classifier, s in (
        (broken, settings),
        (bot.classifier, dataclasses.replace(settings, classify_timeout_s=1e-6)),
    ):
        pipeline = TurnPipeline(bot.store, classifier, bot.retriever, s, metrics=bot.metrics)
        conv = new_conv(bot)
        reply = pipeline.handle(conv, "What exchange rates do you use?")
        assert reply.kind == "faq" and reply.citations == ("exchange-rate",)
        assert reply.intent is None
        pipeline.close()
    assert b'deskbot_fallbacks_total{step="classify"} 2.0' in bot.metrics.render()


def test_negative_feedback_twice_hands_off(bot: Bot) -> None:
    conv = new_conv(bot)
    (answer,) = say(bot, conv, "What exchange rates do you use?")
    assert answer.turn_id is not None
    assert bot.pipeline.feedback(conv, answer.turn_id, -1) is None
    (sorry,) = say(bot, conv, "that didn't help")
    assert sorry.kind == "handoff" and sorry.handoff_reason == "negative_feedback"
    assert bot.store.get_turn(answer.turn_id).feedback == -1  # type: ignore[union-attr]
    with pytest.raises(UnknownTurn):
        bot.pipeline.feedback(new_conv(bot), answer.turn_id, 1)  # another conversation's turn


def test_session_expiry_forgets_slots_and_forms(bot: Bot) -> None:
    conv = new_conv(bot)
    (ask,) = say(bot, conv, "/card_arrival")
    assert ask.kind == "form"
    with bot.store.engine.begin() as c:
        c.execute(
            sql("update conversations set updated_at = '2000-01-01 00:00:00' where id = :id"),
            {"id": conv},
        )
    (after,) = say(bot, conv, "NW123456")
    assert after.kind != "action"  # the form was forgotten with the session
    assert bot.store.dialogue_state(conv)["form"] is None  # type: ignore[index]


def test_streaming_yields_pieces_then_the_stored_reply(bot: Bot) -> None:
    conv = new_conv(bot)
    items = list(bot.pipeline.handle_stream(conv, "What exchange rates do you use?"))
    *pieces, reply = items
    assert isinstance(reply, Reply) and reply.kind == "faq"
    assert "".join(pieces) == reply.text  # type: ignore[arg-type]


def test_concurrent_turns_are_all_stored_and_batched(bot: Bot) -> None:
    convs = [new_conv(bot) for _ in range(12)]
    before = bot.store.count_turns(role="user")
    replies: list[Reply] = []
    lock = threading.Lock()

    def run(conv: str) -> None:
        r = bot.pipeline.handle(conv, "What exchange rates do you use?")
        with lock:
            replies.append(r)

    threads = [threading.Thread(target=run, args=(c,)) for c in convs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies) == 12 and all(r.citations == ("exchange-rate",) for r in replies)
    assert bot.store.count_turns(role="user") - before == 12
    batcher = bot.classifier.batcher  # type: ignore[attr-defined]
    assert batcher.items > batcher.batches  # some forward passes served several turns


def test_the_grounded_responder_plugs_in_for_faq_answers(bot: Bot) -> None:
    from deskbot.bot.core.config import GeneratorConfig
    from deskbot.bot.generation.responder import build_responder

    # Backend "none": the real GroundedResponder, answering from the FAQ without a model.
    responder = build_responder(
        GeneratorConfig(), embedder=bot.retriever.embedder, min_score=0.35, bot_name="Northwind"
    )
    pipeline = TurnPipeline(
        bot.store,
        bot.classifier,
        bot.retriever,
        dialogue_rules(bot.config),
        responder=responder,
        actions=bot.actions,
    )
    conv = new_conv(bot)
    *pieces, reply = list(pipeline.handle_stream(conv, "What exchange rates do you use?"))
    assert isinstance(reply, Reply) and reply.kind == "faq"
    assert reply.citations == ("exchange-rate",) and "respond" in reply.latency_ms
    assert "".join(pieces) == reply.text  # type: ignore[arg-type]
    whole = pipeline.handle(conv, "What exchange rates do you use?")
    assert whole.text == reply.text
    pipeline.close()


def test_int8_serving_answers_what_fp32_answers(bot: Bot) -> None:
    """`limits.inference_precision` and `limits.query_precision: int8` serve the intent
    encoder and the FAQ queries quantised, against the same fp32-built index."""
    cfg = dataclasses.replace(
        bot.config,
        limits=dataclasses.replace(
            bot.config.limits, inference_precision="int8", query_precision="int8"
        ),
    )
    quantised = build_bot(cfg, store=bot.store)
    try:
        quantised.warm_up()  # as the server does: the int8 graphs are made (once) here
        embedder = quantised.retriever.embedder  # type: ignore[attr-defined]
        assert getattr(embedder, "inner", embedder).precision == "int8"
        for question in ("What exchange rates do you use?", "my card hasn't arrived yet"):
            (theirs,) = say(bot, new_conv(bot), question)
            (ours,) = say(quantised, new_conv(quantised), question)
            assert (ours.kind, ours.citations) == (theirs.kind, theirs.citations)
            assert ours.intent is not None and theirs.intent is not None
            assert ours.intent.intent == theirs.intent.intent
    finally:
        quantised.close()


def test_the_intent_model_embeds_the_faq_query_in_the_same_pass(
    bot: Bot, tmp_path: Path, embedder: object
) -> None:
    """`knowledge.query_encoder: intents`: the classifier's embedding of the message is
    its FAQ query, so the FAQ embedder runs for no turn, and the answers are the ones the
    embedder finds. A new index version is embedded with the intent model again; until
    then the embedder answers."""
    from deskbot.knowledge.indexing.ingest import ingest
    from tests.conftest import DEMO_FAQ

    index_dir = tmp_path / "faq"
    shutil.copytree(bot.config.knowledge.index_dir, index_dir)
    cfg = dataclasses.replace(
        bot.config,
        knowledge=dataclasses.replace(
            bot.config.knowledge, index_dir=index_dir, query_encoder="intents"
        ),
    )
    shared = build_bot(cfg, store=bot.store)
    try:
        shared.warm_up()  # embeds the index with the intent model, as the server does
        retriever = shared.retriever
        model = "intents:" + shared.classifier.version
        assert retriever.shared_model == model
        faq_embedder = retriever.embedder.batcher  # type: ignore[attr-defined]
        embedded = faq_embedder.items
        questions = (
            "What exchange rates do you use?",
            "my top up failed, why?",
            "how old do I have to be to open an account?",
        )
        for question in questions:
            (theirs,) = say(bot, new_conv(bot), question)
            (ours,) = say(shared, new_conv(shared), question)
            assert ours.kind == theirs.kind == "faq"
            assert ours.citations == theirs.citations
            assert ours.latency_ms["retrieve"] > 0
        assert faq_embedder.items == embedded  # not one second encoder pass

        encoded = shared.classifier.predict_encoded([questions[0]])[0]  # type: ignore[attr-defined]
        assert encoded.model == model
        assert encoded.prediction == shared.classifier.predict([questions[0]])[0]
        assert abs(float((encoded.vector**2).sum()) - 1.0) < 1e-4

        before = retriever.version
        ingest([DEMO_FAQ], index_dir, embedder, show_progress=False)  # type: ignore[arg-type]
        (reply,) = say(shared, new_conv(shared), questions[0])
        assert reply.citations == ("exchange-rate",)
        assert retriever.version != before
        assert faq_embedder.items == embedded + 1  # the embedder answered this one
        retriever.share(wait=True)
        assert retriever.shared_model == model
        say(shared, new_conv(shared), questions[1])
        assert faq_embedder.items == embedded + 1
    finally:
        shared.close()


def test_the_served_retriever_takes_knowledge_main_weight(bot: Bot) -> None:
    """The ranking mix chosen on validation (`knowledge.main_weight`) is what `deskbot
    serve` ranks with, and an out-of-range weight is refused when the config loads."""
    knowledge = dataclasses.replace(bot.config.knowledge, main_weight=0.5, distinct_sections=False)
    other = build_bot(dataclasses.replace(bot.config, knowledge=knowledge), store=bot.store)
    try:
        assert other.retriever.main_weight == 0.5 and bot.retriever.main_weight == 0.0
        # One piece per document section is the default, and a setting (issue #21).
        assert bot.retriever.distinct_sections and not other.retriever.distinct_sections
    finally:
        other.close()
    with pytest.raises(ConfigError, match="knowledge.main_weight"):
        dataclasses.replace(bot.config.knowledge, main_weight=1.5)

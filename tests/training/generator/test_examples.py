"""The generator's examples, exported from a real store and the demo FAQ's index."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import update

from deskbot.bot.core.types import Turn
from deskbot.bot.generation.prompting import approx_tokens, build_messages
from deskbot.bot.store import Conversation, SqlConversationStore
from deskbot.knowledge.retrieval.retriever import FaissRetriever
from deskbot.training.generator.chat_jsonl import HELDOUT, TRAIN, read_examples, write_examples
from deskbot.training.generator.examples import (
    ExampleSettings,
    GeneratorExport,
    cite,
    export_examples,
)

CARD_QUESTION = "My card still hasn't come, write to john.smith@example.com"
# Supported by the card-arrival entry: its words and its numbers.
CARD_REPLY = (
    "Cards usually arrive 3 to 5 working days later in the UK. You can see the dispatch "
    "date in the Northwind app under Cards > Card delivery."
)
# Not in any passage: an agent's own action, which the model must not learn to claim.
REFUND_REPLY = "I have refunded £25 to your account and added a goodwill credit."
RATE_QUESTION = "what rate do you use when I convert currency?"
RATE_ANSWER = (
    "From Sunday 22:00 to Friday 22:00 UK time we use the live interbank rate from our "
    "foreign-exchange providers, with no markup."
)
SETTINGS = ExampleSettings(bot_name="Northwind Bank", faq_per_entry=2, heldout_fraction=0.3)


def _handed_off(store: SqlConversationStore, question: str, reply: str) -> str:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", question)
    store.append_turn(conv.id, "bot", "Let me pass you to a colleague.", kind="handoff")
    store.open_handoff(conv.id, "customer_request")
    store.append_turn(conv.id, "agent", reply, author="ann")
    return conv.id


def _world(store: SqlConversationStore) -> dict[str, str]:
    """Two handed-off conversations with the same supported reply, one with an
    unsupported reply, an imported one, and a corrected bot answer."""
    ids = {
        "card": _handed_off(store, CARD_QUESTION, CARD_REPLY),
        "card_again": _handed_off(store, CARD_QUESTION, CARD_REPLY),
        "refund": _handed_off(store, "I was charged twice", REFUND_REPLY),
    }
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "hello")
    store.append_turn(conv.id, "agent", "Hi, how can I help?")
    store.append_turn(conv.id, "user", "where is my card? it has not arrived")
    store.append_turn(conv.id, "agent", CARD_REPLY)
    with store.engine.begin() as c:
        c.execute(update(Conversation).where(Conversation.id == conv.id).values(source="jsonl"))
    ids["imported"] = conv.id
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", RATE_QUESTION)
    bot = store.append_turn(conv.id, "bot", "We charge no fees ever.")
    assert bot.id is not None
    store.add_label(bot.id, "ann", answer_wrong=True, correct_answer=RATE_ANSWER)
    ids["label"] = conv.id
    return ids


@pytest.fixture
def exported(
    store: SqlConversationStore, faq_index_dir: Path, embedder: object
) -> tuple[GeneratorExport, dict[str, str], FaissRetriever]:
    ids = _world(store)
    retriever = FaissRetriever(faq_index_dir, embedder)  # type: ignore[arg-type]
    utterances = {"card_arrival": ["What is the exchange rate for euros today?"]}
    export = export_examples(
        store, retriever, settings=SETTINGS, utterances=utterances, progress=False
    )
    return export, ids, retriever


def _of(export: GeneratorExport, conversation: str) -> list:  # type: ignore[type-arg]
    return [e for e in export.examples if e.meta.get("conversation_id") == conversation]


def test_agents_replies_are_redacted_supported_cited_and_served_prompts(
    exported: tuple[GeneratorExport, dict[str, str], FaissRetriever],
) -> None:
    export, ids, retriever = exported
    (card,) = _of(export, ids["card"]) + _of(export, ids["card_again"])  # one kept: a duplicate
    assert export.stats["duplicates"] >= 1
    assert card.meta["source"] == "agent" and card.meta["cited"] == "card-arrival"
    number = card.meta["passage_ids"].index("card-arrival") + 1
    assert card.reply == cite(CARD_REPLY, number) and card.reply.endswith(f"[{number}].")
    user = [m["content"] for m in card.messages if m["role"] == "user"]
    assert user == ["My card still hasn't come, write to <EMAIL>"]
    # The prompt is exactly what the served generator builds for this history.
    passages = retriever.retrieve(user[0], top_k=SETTINGS.top_k)
    assert [p.id for p in passages] == card.meta["passage_ids"]
    served = build_messages(
        [Turn("user", user[0])],  # the bot's handoff message came after it
        passages,
        count_tokens=approx_tokens,
        bot_name="Northwind Bank",
    )
    assert card.prompt == served
    assert "Northwind Bank" in card.prompt[0]["content"]
    # The unsupported reply taught nothing; the imported one kept its history.
    assert not _of(export, ids["refund"]) and export.stats["unsupported_agent"] == 1
    (imported,) = _of(export, ids["imported"])
    assert imported.meta["source"] == "import"
    assert [m["role"] for m in imported.prompt] == ["system", "user", "assistant", "user"]
    assert export.redacted["email"] >= 2  # the customer's address, in both conversations


def test_labels_and_faq_entries_become_examples(
    exported: tuple[GeneratorExport, dict[str, str], FaissRetriever],
) -> None:
    export, ids, _ = exported
    (label,) = _of(export, ids["label"])
    assert label.meta["source"] == "label" and label.meta["cited"] == "exchange-rate"
    assert label.reply == cite(RATE_ANSWER, label.meta["passage_ids"].index("exchange-rate") + 1)
    assert label.prompt[-1] == {"role": "user", "content": RATE_QUESTION}
    faq = [e for e in export.examples if e.meta.get("faq_id") == "card-arrival"]
    question = next(e for e in faq if "still hasn't arrived" in e.prompt[-1]["content"])
    assert question.meta["passage_ids"][0] == "card-arrival"
    assert question.reply.endswith("free replacement [1].")
    # An utterance that retrieves other entries still offers its own, last, and cites it.
    odd = next(e for e in faq if "euros" in e.prompt[-1]["content"])
    assert odd.meta["passage_ids"][-1] == "card-arrival" and odd.reply.endswith("[3].")
    assert export.stats["faq_gold_added"] == 1


def test_split_by_group_is_disjoint_and_survives_jsonl(
    exported: tuple[GeneratorExport, dict[str, str], FaissRetriever], tmp_path: Path
) -> None:
    export, _, _ = exported
    splits: dict[str, set[str]] = defaultdict(set)
    for e in export.examples:
        splits[e.group].add(e.split)
    assert all(len(s) == 1 for s in splits.values())  # no group in both splits
    held = {g for g, s in splits.items() if s == {HELDOUT}}
    assert held and set(splits) - held
    assert {e.group for e in export.train}.isdisjoint(e.group for e in export.heldout)
    assert len({e.key for e in export.examples}) == len(export.examples)
    path = tmp_path / "examples.jsonl"
    assert write_examples(export.examples, path) == len(export.examples)
    again = read_examples(path)
    assert [(e.messages, e.meta) for e in again] == [(e.messages, e.meta) for e in export.examples]
    assert {e.split for e in again} == {TRAIN, HELDOUT}

"""The agent console's actions on the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from deskbot.bot.core.types import OUT_OF_SCOPE
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.bot.store.models import Agent
from deskbot.training.data.datasets import OOS_LABEL
from deskbot.training.data.export import AGENT, export_examples
from deskbot.ui.accounts.auth import create_agent
from deskbot.ui.console.actions import (
    OUT_OF_SCOPE_CHOICE,
    ConsoleError,
    ConsoleService,
    waited,
)
from deskbot.ui.console.dashboard import build_figures, rates
from deskbot.ui.widget.chat import ChatService

LABELS = ("card_arrival", "exchange_rate", "pin_blocked")


def _conversation(store: SqlConversationStore, confidence: float = 0.9) -> tuple[str, int]:
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "where is my card", intent="card_arrival")
    bot = store.append_turn(
        conv.id,
        "bot",
        "Cards arrive in 3 days.",
        intent="card_arrival",
        confidence=confidence,
        kind="faq",
    )
    return conv.id, int(bot.id or 0)


def test_only_one_agent_gets_a_claim_and_only_they_may_answer(
    store: SqlConversationStore,
) -> None:
    alice = create_agent(store, "alice", "password-1", display_name="Alice")
    bob = create_agent(store, "bob", "password-2")
    svc = ConsoleService(store, lambda: LABELS)
    conv_id, _ = _conversation(store)
    handoff = store.open_handoff(conv_id, "customer_request", intent="card_arrival")
    hid = int(handoff.id or 0)
    rows = svc.queue_rows(svc.open_handoffs(alice))
    assert rows[0][:5] == [hid, "", "queued", "general", "Customer asked for a person"]
    assert rows[0][6] == "card_arrival" and rows[0][7] == "where is my card"

    with pytest.raises(ConsoleError, match="Claim conversation"):
        svc.send(alice, hid, "hello")
    assert "claimed" in svc.claim(alice, hid)
    with pytest.raises(ConsoleError, match="already claimed by alice"):
        svc.claim(bob, hid)
    with pytest.raises(ConsoleError, match="Claim conversation"):
        svc.send(bob, hid, "me too")
    svc.send(alice, hid, "Hi, I'm Alice")
    turns = store.history(conv_id)
    assert (turns[-1].role, turns[-1].author, turns[-1].text) == ("agent", "alice", "Hi, I'm Alice")

    chat = ChatService(store, pipeline=None)
    status = chat.status(conv_id)
    assert status.poll and "Alice" in status.text
    assert chat.view(conv_id).messages[-1]["content"].startswith("**Alice** (support agent)")

    svc.close(alice, hid, back_to_bot=False)
    assert store.get_conversation(conv_id).status == "closed"  # type: ignore[union-attr]
    assert svc.open_handoffs(alice) == []
    assert not chat.status(conv_id).poll


def _label(
    svc: ConsoleService,
    agent: Agent,
    turn_id: int | None,
    *,
    intent: str | None = None,
    new_intent: str | None = None,
    answer_wrong: bool = False,
    correct_answer: str | None = None,
) -> str:
    """`svc.label` with the form's empty fields as defaults."""
    return svc.label(
        agent,
        turn_id,
        intent=intent,
        new_intent=new_intent,
        answer_wrong=answer_wrong,
        correct_answer=correct_answer,
    )


@pytest.mark.parametrize(
    ("user_turn", "form", "refusal"),
    [
        (True, {"intent": "pin_blocked"}, "Pick a bot turn"),
        (False, {"intent": "made_up"}, "not one of the model's intents"),
        (False, {"answer_wrong": True, "correct_answer": " "}, "Write the right answer"),
        (False, {"new_intent": "<script>"}, "new intent is"),
    ],
)
def test_bad_labels_are_refused_and_not_stored(
    store: SqlConversationStore, user_turn: bool, form: dict[str, Any], refusal: str
) -> None:
    alice = create_agent(store, "alice", "password-1")
    svc = ConsoleService(store, lambda: LABELS)
    conv_id, bot_turn = _conversation(store)
    turn_id = store.history(conv_id)[0].id if user_turn else bot_turn
    with pytest.raises(ConsoleError, match=refusal):
        _label(svc, alice, turn_id, **form)
    assert store.labels() == []


def test_labels_are_stored_as_training_data(store: SqlConversationStore) -> None:
    alice = create_agent(store, "alice", "password-1")
    svc = ConsoleService(store, lambda: LABELS)
    _, bot_turn = _conversation(store)
    _label(
        svc,
        alice,
        bot_turn,
        intent="pin_blocked",
        answer_wrong=True,
        correct_answer="Unblock it in the app.",
    )
    _label(
        svc,
        alice,
        bot_turn,
        intent="pin_blocked",
        new_intent="Card Delivery Address",
        correct_answer="ignored",
    )
    first, second = store.labels()
    assert (first.turn_id, first.agent, first.intent) == (bot_turn, "alice", "pin_blocked")
    assert first.answer_wrong and first.correct_answer == "Unblock it in the app."
    assert (second.intent, second.note, second.correct_answer) == (
        "card_delivery_address",
        "new intent",
        None,
    )


def test_out_of_scope_is_a_choice_and_becomes_an_oos_training_example(
    store: SqlConversationStore,
) -> None:
    alice = create_agent(store, "alice", "password-1")
    svc = ConsoleService(store, lambda: LABELS)
    choices = svc.intent_choices()
    assert choices[0] == (OUT_OF_SCOPE_CHOICE, OUT_OF_SCOPE)
    assert [value for _, value in choices[1:]] == sorted(LABELS)
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "can you recommend a good stock to buy", intent="x")
    bot = store.append_turn(conv.id, "bot", "Here is how exchange rates work.", intent="x")
    for typed in ("oos", "Out Of Scope"):  # the reserved names are not new intents
        with pytest.raises(ConsoleError, match="pick 'Out of scope"):
            _label(svc, alice, bot.id, new_intent=typed)
    assert store.labels() == []
    _label(svc, alice, bot.id, intent=OUT_OF_SCOPE)
    (label,) = store.labels()
    assert (label.intent, label.note) == (OUT_OF_SCOPE, None)
    examples = {(e.text, e.intent, e.source) for e in export_examples(store).examples}
    assert examples == {("can you recommend a good stock to buy", OOS_LABEL, AGENT)}


def test_review_queue_lists_unlabelled_uncertain_and_disliked_turns(
    store: SqlConversationStore,
) -> None:
    alice = create_agent(store, "alice", "password-1")
    svc = ConsoleService(store, lambda: LABELS)
    _, sure = _conversation(store, confidence=0.95)
    _, unsure = _conversation(store, confidence=0.20)
    _, middling = _conversation(store, confidence=0.50)
    assert [r[0] for r in svc.review("least_confident", alice)] == [unsure, middling, sure]
    assert svc.review("least_confident", alice)[0][3] == "where is my card"
    store.set_feedback(sure, -1)
    assert [r[0] for r in svc.review("thumbs_down", alice)] == [sure]
    _label(svc, alice, unsure, intent="exchange_rate")
    assert unsure not in [r[0] for r in svc.review("least_confident", alice)]


def test_the_review_queue_shows_an_agent_their_teams_conversations(
    store: SqlConversationStore,
) -> None:
    """A bot turn of a conversation handed to another team is not reviewed by this one's
    agents (its customer's message is in the row); an admin reviews every team's."""
    store.create_team("billing")
    alice = create_agent(store, "alice", "password-1")  # the default team only
    root = create_agent(store, "root", "password-2", role="admin")
    svc = ConsoleService(store, lambda: LABELS)
    conv, mine = _conversation(store, confidence=0.20)
    other_conv, other = _conversation(store, confidence=0.10)
    store.open_handoff(other_conv, "customer_request", team="billing")
    store.set_feedback(other, -1)
    assert [r[0] for r in svc.review("least_confident", alice)] == [mine]
    assert svc.review("thumbs_down", alice) == []
    assert [r[0] for r in svc.review("least_confident", root)] == [other, mine]
    assert [r[0] for r in svc.review("thumbs_down", root)] == [other]
    assert conv != other_conv


def test_customer_feedback_only_reaches_their_own_bot_turns(store: SqlConversationStore) -> None:
    chat = ChatService(store, pipeline=None)
    mine, my_bot = _conversation(store)
    theirs, their_bot = _conversation(store)
    assert chat.feedback(mine, 1, liked=False)  # index 1 is my bot reply
    assert store.get_turn(my_bot).feedback == -1  # type: ignore[union-attr]
    assert not chat.feedback(mine, 0, liked=True)  # my own message: not feedback
    assert not chat.feedback(mine, 7, liked=True)
    assert store.get_turn(their_bot).feedback is None  # type: ignore[union-attr]
    assert chat.view(theirs).messages[0]["content"] == "where is my card"


def test_dashboard_counts_and_figures(store: SqlConversationStore) -> None:
    a, _ = _conversation(store)
    _conversation(store)
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "blah")
    store.append_turn(conv.id, "bot", "Could you say more?", intent="out_of_scope", kind="clarify")
    store.open_handoff(a, "customer_request")
    counts = store.dashboard_counts(days=7)
    assert counts["conversations"] == 3 and counts["handed_off"] == 1
    assert sum(counts["turns_per_day"].values()) == 3
    assert counts["handoff_reasons"] == {"customer_request": 1}
    assert counts["top_intents"] == {"card_arrival": 2, "out_of_scope": 1}
    r = rates(counts)
    assert r["automation"] == pytest.approx(2 / 3) and r["fallback"] == pytest.approx(1 / 3)
    figs = build_figures(counts, model_version="v7", index_version="i3", days=7)
    assert "v7" in figs.headline and "67%" in figs.headline and "33%" in figs.headline
    assert len(figs.turns_per_day.axes[0].patches) == 7


def test_wait_times_read_like_people_write_them() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert waited(now - timedelta(seconds=42), now) == "42s"
    assert waited(now - timedelta(minutes=12, seconds=5), now) == "12m 05s"
    assert waited((now - timedelta(hours=3, minutes=10)).replace(tzinfo=None), now) == "3h 10m"


_CLAIM = textwrap.dedent(
    """
    import os, sys, time
    from deskbot.bot.store import SqlConversationStore, create_store_engine
    from deskbot.ui.console.actions import ConsoleError, ConsoleService
    store = SqlConversationStore(create_store_engine(sys.argv[1]))
    agent = store.get_agent(sys.argv[2])
    svc = ConsoleService(store, lambda: ())
    store.get_handoff(int(sys.argv[3]))  # connected and warm
    print("ready", flush=True)
    while not os.path.exists(sys.argv[4]):
        time.sleep(0.0005)
    try:
        svc.claim(agent, int(sys.argv[3]))
        print("won")
    except ConsoleError:
        print("lost")
    """
)


@pytest.mark.postgres
def test_two_server_processes_cannot_both_claim(postgres_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(postgres_url)
    migrate(engine)
    store = SqlConversationStore(engine)
    for name in ("alice", "bob"):
        create_agent(store, name, "password-1")
    conv_id, _ = _conversation(store)
    hid = str(store.open_handoff(conv_id, "customer_request").id)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIM, postgres_url, name, hid, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("alice", "bob")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()  # both claim at the same moment
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["lost", "won"]
    handoff = store.get_handoff(int(hid))
    assert handoff is not None and handoff.status == "claimed"
    assert handoff.claimed_by in ("alice", "bob")
    engine.dispose()

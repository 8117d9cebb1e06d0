"""The console's search of conversations (`SearchRepository`) and the customer's details
on a conversation (`create_conversation`, `identify_customer`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from deskbot.bot.store import Agent, Conversation, SqlConversationStore
from deskbot.bot.store.models import utcnow
from deskbot.bot.store.search import MAX_PAGE_SIZE, ConversationFilter, like_pattern


def conversation(store: SqlConversationStore, *texts: str, **customer: str) -> str:
    """A conversation whose customer wrote `texts` (the bot answering each)."""
    conv, _ = store.create_conversation(**customer)  # type: ignore[arg-type]
    for text in texts:
        store.append_turn(conv.id, "user", text)
        store.append_turn(conv.id, "bot", "Let me check.", intent="card_arrival", confidence=0.4)
    return conv.id


def found(store: SqlConversationStore, **where: object) -> list[str]:
    page = store.search_conversations(ConversationFilter(**where))  # type: ignore[arg-type]
    return [s.conversation.id for s in page.results]


def resolved(store: SqlConversationStore, cid: str, agent: str, *, close: bool) -> None:
    h = store.open_handoff(cid, "customer_request", intent="lost_or_stolen_card")
    assert store.claim_handoff(int(h.id or 0), agent)
    store.append_turn(cid, "agent", "Sorted, your card is blocked.", author=agent)
    store.resolve_handoff(int(h.id or 0), back_to_bot=not close)


def set_times(store: SqlConversationStore, cid: str, days_ago: int) -> None:
    when = utcnow() - timedelta(days=days_ago)
    with store.engine.begin() as conn:
        conn.execute(
            update(Conversation)
            .where(col(Conversation.id) == cid)
            .values(created_at=when, updated_at=when + timedelta(hours=1))
        )


def test_every_conversation_with_messages_is_found_newest_activity_first(
    store: SqlConversationStore,
) -> None:
    old = conversation(store, "my card is late")
    new = conversation(store, "what is the exchange rate")
    empty, _ = store.create_conversation()  # nothing to read in it
    set_times(store, old, days_ago=3)
    assert found(store) == [new, old]
    assert empty.id not in found(store)


def test_text_is_found_in_any_message_whatever_its_case(store: SqlConversationStore) -> None:
    card = conversation(store, "My CARD never arrived")
    other = conversation(store, "what is the exchange rate")
    assert found(store, text="card never") == [card]
    assert found(store, text="  Card NEVER ") == [card]
    assert set(found(store, text="let me CHECK")) == {card, other}  # the bot's words too
    assert found(store, text="refund") == []
    page = store.search_conversations(ConversationFilter(text="never"))
    assert page.results[0].match == "My CARD never arrived"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("50%", ["50% off"]), ("a_b", ["ref a_b"]), ("%", ["50% off"]), ("\\d", ["path c:\\dir"])],
)
def test_like_wildcards_are_matched_as_typed(
    store: SqlConversationStore, typed: str, expected: list[str]
) -> None:
    texts = ["50% off", "500 off", "ref a_b", "ref axb", "path c:\\dir", "path c:dir"]
    ids = {text: conversation(store, text) for text in texts}
    assert sorted(found(store, text=typed)) == sorted(ids[t] for t in expected)


def test_like_pattern_escapes_wildcards_and_the_escape() -> None:
    assert like_pattern("50%_\\") == "%50\\%\\_\\\\%"


def test_status_filter_includes_resolved_and_closed_conversations(
    store: SqlConversationStore,
) -> None:
    with_bot = conversation(store, "hello")
    waiting = conversation(store, "a person please")
    store.open_handoff(waiting, "customer_request")
    claimed = conversation(store, "my card was stolen")
    h = store.open_handoff(claimed, "customer_request")
    assert store.claim_handoff(int(h.id or 0), "alice")
    handed_back = conversation(store, "lost card")
    resolved(store, handed_back, "alice", close=False)
    closed = conversation(store, "stolen card")
    resolved(store, closed, "bob", close=True)

    assert sorted(found(store, status="open")) == sorted([with_bot, handed_back])
    assert found(store, status="queued") == [waiting]
    assert found(store, status="claimed") == [claimed]
    assert sorted(found(store, status="resolved")) == sorted([handed_back, closed])
    assert found(store, status="closed") == [closed]
    assert len(found(store)) == 5
    row = store.search_conversations(ConversationFilter(status="closed")).results[0]
    assert (row.handoff_status, row.agent, row.intent) == ("resolved", "bob", "card_arrival")
    with pytest.raises(ValueError, match="status is one of"):
        ConversationFilter(status="done")  # type: ignore[arg-type]


def test_agent_filter_finds_what_the_agent_claimed_or_wrote_in(
    store: SqlConversationStore,
) -> None:
    alices = conversation(store, "lost card")
    resolved(store, alices, "alice", close=True)
    bobs = conversation(store, "stolen card")
    resolved(store, bobs, "bob", close=True)
    store.append_turn(bobs, "agent", "Alice here, helping Bob.", author="alice")
    conversation(store, "nobody's")
    assert sorted(found(store, agent="alice")) == sorted([alices, bobs])
    assert found(store, agent="bob") == [bobs]
    assert found(store, agent="carol") == []


def test_intent_filter_finds_predicted_and_handoff_intents(store: SqlConversationStore) -> None:
    predicted = conversation(store, "where is my card")  # the bot said card_arrival
    conv, _ = store.create_conversation()
    store.append_turn(conv.id, "user", "someone took my card", intent="lost_or_stolen_card")
    by_handoff = conversation(store)
    store.append_turn(by_handoff, "user", "help")
    store.open_handoff(by_handoff, "unclear", intent="pin_blocked")
    assert found(store, intent="card_arrival") == [predicted]
    assert found(store, intent="lost_or_stolen_card") == [conv.id]
    assert found(store, intent="pin_blocked") == [by_handoff]


def test_date_range_finds_conversations_active_in_it(store: SqlConversationStore) -> None:
    long_ago = conversation(store, "ancient")
    set_times(store, long_ago, days_ago=30)
    last_week = conversation(store, "last week")
    set_times(store, last_week, days_ago=7)
    today = conversation(store, "today")
    now = utcnow()
    assert found(store, since=now - timedelta(days=8)) == [today, last_week]
    assert found(store, until=now - timedelta(days=6)) == [last_week, long_ago]
    window = {"since": now - timedelta(days=8), "until": now - timedelta(days=6)}
    assert found(store, **window) == [last_week]


def test_filters_combine_and_pages_are_limited(store: SqlConversationStore) -> None:
    closed = conversation(store, "card stolen")
    resolved(store, closed, "alice", close=True)
    conversation(store, "card stolen too")
    assert found(store, text="card stolen", status="closed", agent="alice") == [closed]
    for n in range(5):
        conversation(store, f"page filler {n}")
    first = store.search_conversations(ConversationFilter(text="filler"), limit=2)
    second = store.search_conversations(ConversationFilter(text="filler"), limit=2, offset=2)
    assert first.total == second.total == 5 and first.has_more
    assert len(first.results) == len(second.results) == 2
    assert not {s.conversation.id for s in first.results} & {
        s.conversation.id for s in second.results
    }
    assert store.search_conversations(limit=10_000).limit == MAX_PAGE_SIZE


def test_customer_history_lists_the_customers_other_conversations(
    store: SqlConversationStore,
) -> None:
    first = conversation(store, "card late", customer_id="cust-1")
    set_times(store, first, days_ago=2)
    second = conversation(store, "card stolen", customer_id="cust-1")
    current = conversation(store, "card again", customer_id="cust-1")
    conversation(store, "someone else", customer_id="cust-2")
    past = store.customer_history("cust-1", exclude=current)
    assert [s.conversation.id for s in past] == [second, first]
    assert [s.first_message for s in past] == ["card stolen", "card late"]


def site_details(store: SqlConversationStore, conversation_id: str) -> tuple[str | None, ...]:
    """What the site told of the conversation: the customer's id and name, page, language."""
    conv = store.get_conversation(conversation_id)
    assert conv is not None
    return conv.customer_id, conv.customer_name, conv.page, conv.language


def test_the_sites_details_are_stored_and_never_replaced(store: SqlConversationStore) -> None:
    conv, _ = store.create_conversation(
        customer_id="cust-1", customer_name="Ann Lee", page="https://shop.example/a", language="en"
    )
    assert site_details(store, conv.id) == ("cust-1", "Ann Lee", "https://shop.example/a", "en")
    later, _ = store.create_conversation()
    assert store.identify_customer(later.id, page="https://shop.example/b")
    assert store.identify_customer(later.id, customer_id="cust-2", customer_name="Bo")
    # Another customer's id, and their name, never replace the first.
    assert not store.identify_customer(later.id, customer_id="cust-3", customer_name="Cy")
    assert not store.identify_customer(later.id, page="https://shop.example/c")
    assert site_details(store, later.id) == ("cust-2", "Bo", "https://shop.example/b", None)
    assert not store.identify_customer("no-such-conversation", page="https://x.example")


def test_agent_choices_list_every_account(store: SqlConversationStore) -> None:
    for username, name in (("bob", "Bob Stone"), ("alice", "Alice Martin")):
        store.add_agent(Agent(username=username, display_name=name, password_hash="x"))
    assert store.agent_choices() == [("Alice Martin", "alice"), ("Bob Stone", "bob")]


def test_a_team_filter_finds_what_the_teams_agents_may_read(store: SqlConversationStore) -> None:
    store.create_team("billing")
    bot_only = conversation(store, "fees question")  # never handed off: no team
    general = conversation(store, "card question")
    store.open_handoff(general, "customer_request")
    moved = conversation(store, "refund question")
    store.open_handoff(moved, "customer_request")  # first in general ...
    store.resolve_handoff(int(store.active_handoff(moved).id or 0), back_to_bot=True)  # type: ignore[union-attr]
    store.open_handoff(moved, "customer_request", team="billing")  # ... now billing's
    assert set(found(store, teams=("general",))) == {bot_only, general}
    assert set(found(store, teams=("billing",))) == {bot_only, moved}
    assert set(found(store, teams=())) == {bot_only}
    assert set(found(store)) == {bot_only, general, moved}
    history = store.customer_history("nobody", teams=["billing"])
    assert history == []

"""The widget's service, free of Gradio: the status line's own Markdown, and who the
customer is as the widget's URL says (`ChatService.identify`, the API's rules)."""

from __future__ import annotations

from deskbot.bot.privacy.erasure import customer_hash
from deskbot.bot.store import SqlConversationStore
from deskbot.ui.accounts.auth import create_agent
from deskbot.ui.widget.service import ChatService
from tests.ui.test_render import shown


def test_the_agents_name_in_the_status_shows_as_typed(store: SqlConversationStore) -> None:
    svc = ChatService(store, pipeline=None)
    for i, name in enumerate(["1. Ann", "- Bob", "# Cy"]):
        create_agent(store, f"agent{i}", "correct-horse-battery", display_name=name)
        conv, _ = store.create_conversation()
        handoff = store.open_handoff(conv.id, "customer_request")
        store.claim_handoff(int(handoff.id or 0), f"agent{i}")
        status = svc.status(conv.id).text
        assert "\\" not in status, status  # no backslash for a screen reader to read
        said = f"You're talking to {name} from our support team."
        assert shown(status) == (said, {"p", "strong"})


KEY = "site-key-" + "w" * 40
PAGE = "https://shop.example/help"


def test_the_urls_customer_is_stored_once_under_the_apis_rules(
    store: SqlConversationStore,
) -> None:
    svc = ChatService(store, None, customer_key=KEY)
    conv_id, token = svc.start()
    query = {
        "customer_id": "cust-1",
        "customer_hash": customer_hash(KEY, "cust-1"),
        "customer_name": "Ann Lee",
        "customer_page": PAGE,
        "customer_language": "de-de",
        "utm_source": "newsletter",  # not ours: ignored
    }
    assert svc.identify(token, query)
    conv = store.get_conversation(conv_id)
    assert conv is not None
    assert (conv.customer_id, conv.customer_name, conv.page, conv.language) == (
        "cust-1",
        "Ann Lee",
        PAGE,
        "de-DE",
    )
    # Every later event of the page says it again: nothing changes.
    assert not svc.identify(token, query)
    assert not svc.identify(None, query)  # no conversation yet: nothing to store on


def test_a_query_the_api_would_refuse_stores_nothing(store: SqlConversationStore) -> None:
    svc = ChatService(store, None, customer_key=KEY)
    conv_id, token = svc.start()
    refused = [
        {"customer_id": "cust-1", "customer_hash": customer_hash("guess", "cust-1")},
        {"customer_id": "cust-1"},
        {"customer_name": "Ann Lee", "customer_page": PAGE},  # a name needs a signed id
        {"customer_page": "javascript:alert(1)"},
        {"customer_language": "english", "customer_page": PAGE},
    ]
    for query in refused:
        assert not svc.identify(token, query), query
    conv = store.get_conversation(conv_id)
    assert conv is not None
    assert (conv.customer_id, conv.customer_name, conv.page, conv.language) == (None,) * 4
    # Without the site's key no id is taken, however it is signed.
    keyless = ChatService(store, None)
    signed = {"customer_id": "cust-1", "customer_hash": customer_hash(KEY, "cust-1")}
    assert not keyless.identify(token, signed)
    assert keyless.identify(token, {"customer_page": PAGE, "customer_language": "fr"})


def signed(customer_id: str) -> dict[str, str]:
    return {"customer_id": customer_id, "customer_hash": customer_hash(KEY, customer_id)}


def test_another_customer_on_the_same_browser_starts_their_own_conversation(
    store: SqlConversationStore,
) -> None:
    svc = ChatService(store, None, customer_key=KEY)
    conv_id, token = svc.start()
    assert svc.identify(token, signed("cust-1"))
    store.append_turn(conv_id, "user", "my card number ends 4242")

    # The same customer, or a page that says nothing, goes on with the conversation.
    for query in (signed("cust-1"), {}, None, {"customer_id": "cust-2"}):  # last: unsigned
        conv = svc.conversation(token, query)
        assert conv is not None and conv.id == conv_id, query
    # Another signed customer on that browser: the token names no conversation for them,
    # so their first message starts a new one and they never see the first's.
    assert svc.conversation(token, signed("cust-2")) is None
    conv, text = svc.admit(token, "hello", signed("cust-2"))
    assert conv is None and text == "hello"

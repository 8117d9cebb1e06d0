"""The widget's service, free of Gradio: the status line's own Markdown."""

from __future__ import annotations

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

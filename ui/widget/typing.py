"""Typing indicators in the customer's widget: "<agent> is typing…" while the agent who
has the conversation types a reply, and the customer's own typing told to that agent.

The page presses a hidden button at most every `RENEW_S` while the customer types in
the message box, and another when the box is emptied or the message sent; the store
keeps the mark a few seconds (`deskbot.bot.store.presence`, which also says how marks
reach other replicas). Only a conversation waiting for or with a person is marked:
nobody reads the others'. The agent's typing is shown on the widget's poll, which runs
while a person is asked or there (`chat.POLL_SECONDS`).

Example:
    >>> typing = TypingEvents(svc)                     # doctest: +SKIP
    >>> wire_typing(demo, lay_out_typing(), typing, token=w.token, timer=w.timer)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from deskbot.ui.render import md_text, typing_script
from deskbot.ui.widget.service import ChatService

logger = logging.getLogger(__name__)

__all__ = ["TypingEvents", "TypingLine", "lay_out_typing", "wire_typing"]

# Installed once per page: the message box's keys press the hidden typing buttons.
TYPING_JS = typing_script(
    "deskbotTyping",
    "deskbot-input",
    "deskbot-typing",
    live=["deskbot-typing"],
    send_ends_typing=True,
)


def agent_typing(name: str) -> str:
    """The widget's line while agent `name` types."""
    return f"*{md_text(name, line_start=False)} is typing…*"


@dataclass(frozen=True)
class TypingLine:
    """The typing line and the hidden buttons the page presses as the customer types."""

    line: Any  # gr.Markdown
    on: Any  # gr.Button
    off: Any  # gr.Button


def lay_out_typing() -> TypingLine:
    """The components, inside the open `gr.Blocks` (under the chat)."""
    return TypingLine(
        line=gr.Markdown("", elem_id="deskbot-typing"),
        on=gr.Button("typing", visible="hidden", elem_id="deskbot-typing-on"),
        off=gr.Button("stopped typing", visible="hidden", elem_id="deskbot-typing-off"),
    )


class TypingEvents:
    """The handlers: the customer's typing marked, the agent's shown.

    Args:
        svc: the widget's service (its store and session lookup).
    """

    def __init__(self, svc: ChatService) -> None:
        self.svc = svc

    def _with_person(self, token: str | None) -> tuple[str, str | None] | None:
        """(conversation id, who has it) while a person is asked or there; else None."""
        conv = self.svc.conversation(token)
        if conv is None:
            return None
        handoff = self.svc.store.active_handoff(conv.id)
        if handoff is None:
            return None
        return conv.id, handoff.claimed_by if handoff.status == "claimed" else None

    def customer(self, *, typing: bool) -> Callable[[str | None], None]:
        """The handler of a hidden button: the customer types, or stopped."""

        def handler(token: str | None) -> None:
            found = self._with_person(token)
            if found is None:
                return
            board = self.svc.store.typing
            if typing:
                board.start(found[0], "customer")
            else:
                board.stop(found[0], "customer")

        return handler

    def line(self, token: str | None) -> str:
        """The typing line: "<agent> is typing…" while the agent who has the
        conversation types, "" otherwise."""
        found = self._with_person(token)
        if found is None or found[1] is None:
            return ""
        name = self.svc.store.typing.typing(found[0], "agent")
        return agent_typing(name) if name else ""


def wire_typing(
    demo: gr.Blocks, t: TypingLine, events: TypingEvents, *, token: Any, timer: Any
) -> None:
    """Connect the typing line to the widget's poll `timer`, the hidden buttons to the
    customer's `token`, and install the page's script."""
    quiet: dict[str, Any] = {
        "api_visibility": "private",
        "concurrency_limit": None,
        "show_progress": "hidden",
    }
    t.on.click(events.customer(typing=True), [token], None, **quiet)
    t.off.click(events.customer(typing=False), [token], None, **quiet)
    timer.tick(events.line, [token], [t.line], **quiet)
    demo.load(None, None, None, js=TYPING_JS, api_visibility="private", queue=False)

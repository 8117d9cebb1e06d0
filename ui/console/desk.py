"""The help desk's tools in the console's queue tab: canned replies, internal notes,
release to the queue, transfer to another agent, and who is typing.

`typing_line` goes between the transcript and the reply box, `lay_out_desk` under the
conversation's buttons, `wire_desk` connects them (`ui.console.page` calls all three).
The handlers take the agent from the session cookie (`ConsoleHandlers.me`); what they
do is in `ui.console.tools`.

Typing, both ways. The page presses a hidden button at most every `RENEW_MS` while
the agent types in the reply box (and another when the box is emptied or the reply
sent); the store keeps the mark a few seconds (`deskbot.bot.store.presence`), and the
customer's widget shows "<agent> is typing…" on its poll. The agent's "Customer is
typing…" comes from a one-second timer that runs only while a conversation is picked:
a push would have to wake every console for every key any customer presses (the change
feed redraws whole queues), while the timer asks one in-memory question per console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gradio as gr

from deskbot.bot.store.canned import MAX_CANNED_CHARS
from deskbot.bot.store.notes import MAX_NOTE_CHARS
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.console.teams import refusal
from deskbot.ui.console.tools import DeskTools, NoteView, placeholder_help
from deskbot.ui.render import md_text, typing_script

__all__ = ["DESK_CSS", "DeskHandlers", "DeskPanel", "lay_out_desk", "typing_line", "wire_desk"]

Component = Any  # a Gradio component (gradio is not type-checked here)
Update = Any

TYPING_POLL_S = 1.0
CUSTOMER_TYPING = "*Customer is typing…*"
NO_NOTES = "No notes on this conversation yet."
NEW_REPLY = ("New canned reply", 0)

DESK_CSS = (
    "#console-typing { min-height: 1.4em; margin: 0; }\n"
    "#console-typing p { margin: 0; font-size: 0.9em; color: #374151; }\n"
    "#console-notes p { margin: 0 0 0.4em 0; }\n"
)
# Installed once per page: the reply box's keys press the hidden typing buttons.
TYPING_JS = typing_script(
    "deskbotDeskTyping",
    "console-reply",
    "console-typing",
    live=["console-typing", "console-notes", "canned-notice"],
    send_ends_typing=False,
)


@dataclass
class DeskPanel:
    """The help desk's components in the queue tab."""

    typing: Component  # "Customer is typing…", between the transcript and the reply
    timer: Component  # asks who types, while a conversation is picked
    typing_on: Component  # hidden buttons the page presses as the agent types
    typing_off: Component
    canned: Component
    insert: Component
    release: Component
    transfer_to: Component
    transfer: Component
    notes: Component
    note: Component
    add_note: Component
    admin: Component  # the canned replies' editor, shown to admins
    edit_pick: Component
    edit_title: Component
    edit_text: Component
    save: Component
    delete: Component
    admin_notice: Component

    @property
    def panel(self) -> list[Component]:
        """What a pick or a push redraws: notes and the buttons that need a conversation."""
        return [
            self.notes,
            self.insert,
            self.release,
            self.transfer_to,
            self.transfer,
            self.add_note,
        ]


def typing_line() -> tuple[Component, Component, Component, Component]:
    """The typing line, its timer and the hidden typing buttons (in the open column)."""
    line = gr.Markdown("", elem_id="console-typing")
    timer = gr.Timer(TYPING_POLL_S, active=False)
    on = gr.Button("typing", visible="hidden", elem_id="console-typing-on")
    off = gr.Button("stopped typing", visible="hidden", elem_id="console-typing-off")
    return line, timer, on, off


def lay_out_desk(typing: tuple[Component, Component, Component, Component]) -> DeskPanel:
    """The tools under the conversation's buttons (in the open column)."""
    with gr.Row(equal_height=True):
        canned = gr.Dropdown(
            label="Canned reply",
            choices=[],
            value=None,
            filterable=True,
            scale=3,
            elem_id="console-canned",
        )
        insert = gr.Button("Insert in reply", scale=1, interactive=False, size="sm")
    with gr.Row(equal_height=True):
        release = gr.Button("Release to queue", scale=1, interactive=False, size="sm")
        transfer_to = gr.Dropdown(
            label="Transfer to", choices=[], value=None, scale=2, elem_id="console-transfer-to"
        )
        transfer = gr.Button("Transfer", scale=1, interactive=False, size="sm")
    with gr.Accordion("Internal notes (only agents see them)", open=True):
        notes = gr.Markdown(NO_NOTES, elem_id="console-notes")
        with gr.Row(equal_height=True):
            note = gr.Textbox(
                label="Internal note",
                lines=1,
                max_lines=4,
                max_length=MAX_NOTE_CHARS,
                scale=4,
                elem_id="console-note",
            )
            add_note = gr.Button("Add note", scale=1, interactive=False, size="sm")
    with gr.Accordion(
        "Manage canned replies (admins)", open=False, visible=False, elem_id="canned-admin"
    ) as admin:
        edit_pick = gr.Dropdown(
            label="Canned reply to change", choices=[NEW_REPLY], value=0, elem_id="canned-pick"
        )
        edit_title = gr.Textbox(label="Title", max_length=128, elem_id="canned-title")
        edit_text = gr.Textbox(
            label="Text",
            lines=3,
            max_length=MAX_CANNED_CHARS,
            info=placeholder_help(),
            elem_id="canned-text",
        )
        with gr.Row():
            save = gr.Button("Save canned reply", variant="primary")
            delete = gr.Button("Delete canned reply", variant="stop")
        admin_notice = gr.Markdown("", elem_id="canned-notice")
    return DeskPanel(
        *typing,
        canned,
        insert,
        release,
        transfer_to,
        transfer,
        notes,
        note,
        add_note,
        admin,
        edit_pick,
        edit_title,
        edit_text,
        save,
        delete,
        admin_notice,
    )


def notes_markdown(notes: list[NoteView]) -> str:
    if not notes:
        return NO_NOTES
    return "\n\n".join(
        f"**{md_text(n.author)}** · {n.when}: {md_text(n.text, line_start=False)}" for n in notes
    )


class DeskHandlers:
    """The help desk's event handlers, over the console's (`me`, notices).

    Args:
        console: the console's handlers (the agent of a request, `_act`).
    """

    def __init__(self, console: ConsoleHandlers) -> None:
        self.console = console
        self.tools = DeskTools(console.bot.store)

    def _act(self, action: Callable[[], str]) -> tuple[str, bool]:
        return self.console._act(action)

    def _canned(self) -> tuple[Update, Update]:
        """The agents' canned reply list and the admins' editor list."""
        choices = self.tools.canned_choices()
        return (
            gr.update(choices=choices, value=None),
            gr.update(choices=[NEW_REPLY, *choices], value=0),
        )

    def on_load(self, request: gr.Request) -> tuple[Update, ...]:
        """Canned replies for all; their editor for admins."""
        agent = self.console.me(request)
        return (*self._canned(), gr.update(visible=agent.role == "admin"))

    def panel(self, handoff_id: int | None, request: gr.Request) -> tuple[Update, ...]:
        """The picked conversation's notes, and the buttons that need one (a push
        redraws them; the agent a transfer is to go to stays chosen)."""
        return self._panel(handoff_id, request, keep=True)

    def _panel(
        self, handoff_id: int | None, request: gr.Request, *, keep: bool
    ) -> tuple[Update, ...]:
        agent = self.console.me(request)
        h = self.tools.store.get_handoff(int(handoff_id)) if handoff_id else None
        if h is not None and refusal(self.tools.store, agent, h.team, "") is not None:
            h = None  # outside the agent's teams: no tool applies
        owns = self.tools.owns(agent, h)
        picked = h is not None and h.status != "resolved"
        return (
            notes_markdown(self.tools.notes(agent, handoff_id)),
            gr.update(interactive=picked),
            gr.update(interactive=owns),
            gr.update(choices=self.tools.transfer_choices(agent, handoff_id))
            if keep
            else gr.update(choices=self.tools.transfer_choices(agent, handoff_id), value=None),
            gr.update(interactive=owns),
            gr.update(interactive=picked),
        )

    def on_pick(self, handoff_id: int | None, request: gr.Request) -> tuple[Update, ...]:
        """The panel, the typing line (cleared) and its timer (running with a pick)."""
        panel = self._panel(handoff_id, request, keep=False)
        return (*panel, "", gr.Timer(active=bool(handoff_id)))

    def customer_typing(self, handoff_id: int | None, request: gr.Request) -> str:
        self.console.me(request)
        return CUSTOMER_TYPING if self.tools.customer_typing(handoff_id) else ""

    def typer(self, *, typing: bool) -> Callable[[int | None, gr.Request], None]:
        def handler(handoff_id: int | None, request: gr.Request) -> None:
            agent = self.console.me(request)
            self.tools.agent_typing(agent, handoff_id, typing=typing)

        return handler

    def insert(
        self, handoff_id: int | None, reply_id: int | None, box: str, request: gr.Request
    ) -> tuple[Update, Update]:
        """The canned reply, filled, into the reply box; the notice says so."""
        agent = self.console.me(request)
        filled: list[str] = []

        def insert() -> str:
            text, notice = self.tools.insert_canned(agent, handoff_id, reply_id, box or "")
            filled.append(text)
            return notice

        notice, done = self._act(insert)
        return notice, filled[0] if done else gr.skip()

    def add_note(
        self, handoff_id: int | None, text: str, request: gr.Request
    ) -> tuple[Update, Update, Update]:
        """Notice, notes, the note box (emptied once the note is stored)."""
        agent = self.console.me(request)
        notice, done = self._act(lambda: self.tools.add_note(agent, handoff_id, text or ""))
        notes = notes_markdown(self.tools.notes(agent, handoff_id))
        return notice, notes, "" if done else gr.skip()

    def release(self, handoff_id: int | None, request: gr.Request) -> tuple[Update, ...]:
        agent = self.console.me(request)
        notice, _ = self._act(lambda: self.tools.release(agent, handoff_id))
        return (notice, *self._panel(handoff_id, request, keep=False))

    def transfer(
        self, handoff_id: int | None, to: str | None, request: gr.Request
    ) -> tuple[Update, ...]:
        agent = self.console.me(request)
        notice, _ = self._act(lambda: self.tools.transfer(agent, handoff_id, to))
        return (notice, *self._panel(handoff_id, request, keep=False))

    # -- the admins' editor ------------------------------------------------------------

    def edit_pick(self, reply_id: int | None, request: gr.Request) -> tuple[str, str]:
        self.console.me(request)
        return self.tools.canned_text(reply_id)

    def save(
        self, reply_id: int | None, title: str, text: str, request: gr.Request
    ) -> tuple[Update, ...]:
        """Notice, the two canned lists (redrawn once saved)."""
        agent = self.console.me(request)
        notice, done = self._act(lambda: self.tools.save_canned(agent, reply_id, title, text))
        if not done:
            return notice, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (notice, *self._canned(), "", "")

    def delete(self, reply_id: int | None, request: gr.Request) -> tuple[Update, ...]:
        agent = self.console.me(request)
        notice, done = self._act(lambda: self.tools.delete_canned(agent, reply_id))
        if not done:
            return notice, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (notice, *self._canned(), "", "")


def _on(
    trigger: Callable[..., Any], fn: Any, inputs: list[Any], outputs: list[Any], **kw: Any
) -> Any:
    # As the console's own events: short database calls side by side, no public API.
    return trigger(fn, inputs, outputs, api_visibility="private", concurrency_limit=None, **kw)


class QueueParts(Protocol):
    """What of the queue tab (`ui.console.page.QueueTab`) the desk reads and writes."""

    desk: DeskPanel | None
    pick: Component
    reply: Component
    send: Component
    notice: Component


def wire_desk(
    handlers: ConsoleHandlers,
    console: Component,
    q: QueueParts,
    *,
    refreshed: Callable[..., Any],
    picked: Callable[..., Any],
) -> Callable[..., Any]:
    """Connect the desk's components to their handlers: `q` is the queue tab (its picker,
    reply box, send button and notice); `refreshed` and `picked` follow the console's
    pushed refresh and its opening of a picked conversation (their `.then`: a trigger
    takes one `always_last` listener, see `ui.console.page._on`). Returns what follows
    the desk's own opening (`picked` itself without a desk)."""
    d = q.desk
    if d is None:
        return picked
    pick, reply, send, notice = q.pick, q.reply, q.send, q.notice
    h = DeskHandlers(handlers)
    _on(console.load, h.on_load, [], [d.canned, d.edit_pick, d.admin])
    _on(console.load, None, [], [], js=TYPING_JS)
    opened = _on(
        picked, h.on_pick, [pick], [*d.panel, d.typing, d.timer], trigger_mode="always_last"
    )
    # A push (another agent's move, a note) and a notice (this agent's claim, release,
    # close) may each change what the tools apply to.
    _on(refreshed, h.panel, [pick], d.panel, show_progress="hidden", trigger_mode="always_last")
    _on(notice.change, h.panel, [pick], d.panel, show_progress="hidden")
    _on(d.timer.tick, h.customer_typing, [pick], [d.typing], show_progress="hidden")
    _on(d.typing_on.click, h.typer(typing=True), [pick], [], show_progress="hidden")
    for stopped in (d.typing_off.click, send.click, reply.submit):
        _on(stopped, h.typer(typing=False), [pick], [], show_progress="hidden")
    _on(d.insert.click, h.insert, [pick, d.canned, reply], [notice, reply])
    _on(d.add_note.click, h.add_note, [pick, d.note], [notice, d.notes, d.note])
    _on(d.note.submit, h.add_note, [pick, d.note], [notice, d.notes, d.note])
    _on(d.release.click, h.release, [pick], [notice, *d.panel])
    _on(d.transfer.click, h.transfer, [pick, d.transfer_to], [notice, *d.panel])
    _on(d.edit_pick.change, h.edit_pick, [d.edit_pick], [d.edit_title, d.edit_text])
    editor = [d.admin_notice, d.canned, d.edit_pick, d.edit_title, d.edit_text]
    _on(d.save.click, h.save, [d.edit_pick, d.edit_title, d.edit_text], editor)
    _on(d.delete.click, h.delete, [d.edit_pick], editor)
    follows: Callable[..., Any] = opened.then
    return follows

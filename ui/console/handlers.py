"""The console's Gradio event handlers: each takes the agent from the session cookie first.

They turn `ConsoleService` answers into Gradio updates; `ui.console.page` lays out the
components and wires these handlers to them.

Example:
    >>> handlers = ConsoleHandlers(bot, signer)   # doctest: +SKIP
    >>> console.load(handlers.on_load, None, [...])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from functools import cached_property
from typing import Any

import gradio as gr

from deskbot.bot.core.network import Network, parse_networks
from deskbot.bot.server.container import Bot
from deskbot.bot.store.audit import TRANSCRIPT_OPENED, AuditEntry, AuditError
from deskbot.bot.store.models import Agent, TurnRecord
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner
from deskbot.ui.accounts.login import request_address
from deskbot.ui.console.actions import ConsoleError, ConsoleService, reason_words
from deskbot.ui.console.dashboard import build_figures, csat_markdown, csat_plots
from deskbot.ui.console.teams import refusal
from deskbot.ui.console.unread import Unread
from deskbot.ui.render import md_text, turn_choice

DASHBOARD_DAYS = 14
# How often the push stream sends a refresh with nothing changed: the waiting times
# of queued conversations move on, and a page whose browser went away is noticed.
CLOCK_SECONDS = 15.0

# What Gradio takes as a component's new value: a plain value, `gr.update(...)` or `gr.skip()`.
Update = Any


def _inline(text: str) -> str:
    """`md_text` for text that follows ours on its line (no heading or list can start
    there, so a typed `- ` or `1. ` needs no backslash for a screen reader to read)."""
    return md_text(text, line_start=False)


def _err(text: str) -> str:
    return f"**Not done:** {_inline(text)}"


_SPEAKERS = {"user": "Customer", "bot": "Bot", "agent": "Agent"}


def signed_in(agent: Agent) -> str:
    """The header's line: who is signed in, and their role (Markdown)."""
    return f"Signed in as **{_inline(agent.display_name)}** ({_inline(agent.role)})"


def review_context(before: Sequence[TurnRecord], turn: TurnRecord) -> str:
    """A reviewed bot turn after the turns `before` it, a paragraph each (Markdown):
    who spoke, then what they wrote."""
    lines = [f"**{_SPEAKERS.get(t.role, t.role)}:** {_inline(t.text)}" for t in before]
    lines.append(
        f"**Bot** `#{turn.id}` ({_inline(turn.intent or '-')}, "
        f"{turn.confidence or 0:.2f}): {_inline(turn.text)}"
    )
    return "\n\n".join(lines)


def news(unread: Unread) -> tuple[str, int]:
    """The unread marker's text (read by screen readers as it changes) and the count
    the page's title shows."""
    total = unread.total
    return (f"**{total} new**" if total else "Nothing new"), total


def _picked_id(evt: gr.SelectData) -> int | None:
    """The id in the first column of the table row the agent clicked, if any."""
    row = evt.row_value or []
    return int(row[0]) if row and row[0] is not None else None


class ConsoleHandlers:
    """The console's event handlers, bound to one bot and one session signer.

    Args:
        bot: the running bot (its store, classifier, retriever and pipeline).
        signer: checks the agent session cookie of each request.
    """

    def __init__(self, bot: Bot, signer: SessionSigner) -> None:
        self.bot = bot
        self.signer = signer
        self.svc = ConsoleService(bot.store, lambda: bot.classifier.labels, bot.pipeline)

    def me(self, request: gr.Request) -> Agent:
        """The agent of this request's session cookie."""
        agent = self.signer.check(request.cookies.get(COOKIE_NAME))
        if agent is None:
            # auth_dependency already refuses such requests; this is the second lock.
            raise gr.Error("Your session ended; log in again.")
        return agent

    @cached_property
    def proxies(self) -> tuple[Network, ...]:
        return parse_networks(self.bot.config.limits.trusted_proxies)

    def address(self, request: gr.Request) -> str:
        """The agent's address for the audit log, as the login and the rate limiter see
        it: a forwarded one only from `limits.trusted_proxies`."""
        return request_address(request, self.proxies)

    def opened(
        self, agent: Agent, request: gr.Request, conversation_id: str, handoff_id: int | None
    ) -> None:
        """Record that `agent` opened a conversation's transcript, before it is shown
        (an `AuditError` shows nothing)."""
        entry = AuditEntry(
            agent.username,
            TRANSCRIPT_OPENED,
            "handoff" if handoff_id else "conversation",
            str(handoff_id) if handoff_id else conversation_id,
            conversation_id,
            self.address(request),
        )
        try:
            self.bot.store.record_audit(entry)
        except AuditError as exc:
            raise gr.Error(str(exc)) from None

    def refused(self, agent: Agent, handoff_id: int | None) -> str | None:
        """Why `agent` may not see the handoff (outside their teams), or None."""
        h = self.bot.store.get_handoff(int(handoff_id)) if handoff_id else None
        return refusal(self.bot.store, agent, h.team, f"Conversation #{h.id}") if h else None

    def _act(self, action: Callable[[], str]) -> tuple[str, bool]:
        """Run an agent's action: (the notice to show, whether it was done)."""
        try:
            return md_text(action()), True
        except ConsoleError as exc:
            return _err(str(exc)), False

    # -- what the queue tab shows ------------------------------------------------------

    def queue_update(
        self,
        selected: int | None,
        agent: Agent,
        unread: Unread | None = None,
        *,
        in_view: bool = True,
    ) -> tuple[Update, Update, str, Unread]:
        """The queue table, the conversation picker, a signature of what changed, and
        what is new for the agent (`unread` updated, the `selected` conversation read
        if the page is `in_view`; a fresh one on the first call)."""
        entries = self.svc.queue_entries(self.svc.open_handoffs(agent))
        if unread is None:
            unread = Unread.load(entries)
        else:
            reading = selected if in_view else None
            unread = unread.update(entries, agent=agent.username, reading=reading)
        rows = [e.row(unread.marker(e.id)) for e in entries]
        choices = [
            (f"#{e.id} {e.handoff.status} · {reason_words(e.handoff.reason)}", e.id)
            for e in entries
        ]
        value = selected if selected in [c[1] for c in choices] else None
        sig = repr([(r[0], r[2]) for r in rows])
        return gr.update(value=rows), gr.update(choices=choices, value=value), sig, unread

    def transcript_update(self, handoff_id: int | None, agent: Agent) -> tuple[Update, Update, str]:
        """The transcript, the bot turns to label, and a signature of the transcript
        (nothing of a conversation outside `agent`'s teams)."""
        empty: tuple[Update, Update, str] = ([], gr.update(choices=[], value=None), "")
        if not handoff_id:
            return empty
        try:
            messages, bot_turns = self.svc.transcript(agent, int(handoff_id))
        except ConsoleError:
            return empty
        choices = [turn_choice(t) for t in bot_turns]
        return messages, gr.update(choices=choices), repr(messages)

    def buttons(self, handoff_id: int | None, agent: Agent) -> tuple[Update, ...]:
        """Claim, Send, Hand back and Resolve: usable only on a conversation they apply to."""
        h = self.bot.store.get_handoff(int(handoff_id)) if handoff_id else None
        if h is not None and refusal(self.bot.store, agent, h.team, "") is not None:
            h = None  # outside the agent's teams: nothing applies
        can_claim = h is not None and h.status == "queued"
        owns = (
            h is not None
            and h.status == "claimed"
            and (h.claimed_by == agent.username or agent.role == "admin")
        )
        return (
            gr.update(interactive=can_claim),
            *(gr.update(interactive=owns) for _ in range(3)),
        )

    def on_load(self, request: gr.Request) -> tuple[Update, ...]:
        """Header, queue, picker, queue signature, what is new, the live model's intents."""
        agent = self.me(request)
        table, pick, qsig, unread = self.queue_update(None, agent)
        header = signed_in(agent)
        # The live model can change while serving (a promoted version, new intents).
        intents = gr.update(choices=self.svc.intent_choices())
        return header, table, pick, qsig, unread, *news(unread), intents

    async def watch(self, request: gr.Request) -> AsyncIterator[int]:
        """The push stream of one console page: a new number the moment the store's
        turns or handoffs change (and every `CLOCK_SECONDS`, for the waiting times).

        The number lands in a hidden component whose change refreshes the page; it
        holds no thread while it waits (see `deskbot.bot.store.changes`)."""
        self.me(request)
        feed = self.bot.store.changes
        seen, pushes = feed.version, 0
        while True:
            seen = await feed.changed(seen, timeout=CLOCK_SECONDS)
            pushes += 1
            yield pushes

    def pick_conversation(
        self, handoff_id: int | None, unread: Unread, request: gr.Request
    ) -> tuple[Update, ...]:
        """Show the picked conversation (it is read now) with a clean notice; with none
        picked (it was closed) the last notice stays."""
        agent = self.me(request)
        refused = self.refused(agent, handoff_id)
        if refused is not None:  # a stale or forged pick: show nothing of it
            table, _, qsig, _ = self.queue_update(None, agent, unread)
            return (
                *self.transcript_update(None, agent),
                _err(refused),
                table,
                qsig,
                unread,
                *news(unread),
                *self.buttons(None, agent),
            )
        h = self.bot.store.get_handoff(int(handoff_id)) if handoff_id else None
        if h is not None:
            self.opened(agent, request, h.conversation_id, int(handoff_id or 0))
        unread = unread.read(handoff_id)
        table, _, qsig, _ = self.queue_update(handoff_id, agent, unread)
        return (
            *self.transcript_update(handoff_id, agent),
            "" if handoff_id else gr.skip(),
            table,
            qsig,
            unread,
            *news(unread),
            *self.buttons(handoff_id, agent),
        )

    def tick(
        self,
        handoff_id: int | None,
        qseen: str,
        tseen: str,
        unread: Unread,
        page_hidden: bool,
        request: gr.Request,
    ) -> tuple[Update, ...]:
        """A pushed refresh: redraw only what changed since the last one."""
        agent = self.me(request)
        table, pick, qsig, unread = self.queue_update(
            handoff_id, agent, unread, in_view=not page_hidden
        )
        messages, label_pick, tsig = self.transcript_update(handoff_id, agent)
        t_changed = tsig != tseen
        return (
            table,  # waiting times and markers change on every refresh
            pick if qsig != qseen else gr.skip(),
            qsig,
            messages if t_changed else gr.skip(),
            label_pick if t_changed else gr.skip(),
            tsig,
            unread,
            *news(unread),
            *self.buttons(handoff_id, agent),
        )

    def queue_pick(self, evt: gr.SelectData, request: gr.Request) -> Update:
        """A click on a queue row picks its conversation."""
        self.me(request)
        handoff_id = _picked_id(evt)
        return gr.skip() if handoff_id is None else handoff_id

    # -- the agent's actions on a conversation -----------------------------------------

    def claim(self, handoff_id: int | None, request: gr.Request) -> tuple[Update, ...]:
        """Claim the picked conversation; redraw the transcript and the buttons (the
        queue redraws on the store's push)."""
        agent = self.me(request)
        address = self.address(request)
        note, _ = self._act(lambda: self.svc.claim(agent, int(handoff_id or 0), address=address))
        return (note, *self.transcript_update(handoff_id, agent), *self.buttons(handoff_id, agent))

    def send(self, handoff_id: int | None, text: str, request: gr.Request) -> tuple[Update, ...]:
        """Send the agent's reply; empty the reply box once it is sent."""
        agent = self.me(request)
        address = self.address(request)
        note, done = self._act(
            lambda: self.svc.send(agent, int(handoff_id or 0), text or "", address=address)
        )
        return (note, "" if done else text, *self.transcript_update(handoff_id, agent))

    def closer(
        self, *, back_to_bot: bool
    ) -> Callable[[int | None, gr.Request], tuple[Update, ...]]:
        """The handler of "Hand back to the bot" (`back_to_bot`) or "Resolve and close"."""

        def close(handoff_id: int | None, request: gr.Request) -> tuple[Update, ...]:
            agent = self.me(request)
            address = self.address(request)
            note, _ = self._act(
                lambda: self.svc.close(
                    agent, int(handoff_id or 0), back_to_bot=back_to_bot, address=address
                )
            )
            # The queue drops the conversation on the store's push; the notice stays.
            return (note, *self.buttons(handoff_id, agent))

        return close

    def label(
        self,
        turn_id: int | None,
        intent: str | None,
        new_intent: str,
        wrong: bool,
        answer: str,
        request: gr.Request,
    ) -> tuple[Update, ...]:
        """Save a label of a bot turn; empty the form once it is saved."""
        agent = self.me(request)
        note, done = self._act(
            lambda: self.svc.label(
                agent,
                turn_id,
                intent=intent,
                new_intent=new_intent,
                answer_wrong=wrong,
                correct_answer=answer,
                address=self.address(request),
            )
        )
        if not done:
            return (note,) + (gr.skip(),) * 4
        return note, None, "", False, ""

    # -- review and dashboard tabs -----------------------------------------------------

    def review_update(self, request: gr.Request) -> tuple[Update, Update]:
        """The least confident turns and the turns customers disliked."""
        agent = self.me(request)
        return self.svc.review("least_confident", agent), self.svc.review("thumbs_down", agent)

    def review_pick(self, evt: gr.SelectData, request: gr.Request) -> tuple[Update, Update]:
        """A click on a review row puts its turn in the label form, with its context."""
        agent = self.me(request)
        turn_id = _picked_id(evt)
        turn = self.bot.store.get_turn(turn_id) if turn_id is not None else None
        if turn is None:
            return gr.skip(), gr.skip()
        team = self.bot.store.conversation_team(turn.conversation_id)
        refused = refusal(self.bot.store, agent, team, f"Bot turn #{turn_id}")
        if refused is not None:  # a stale or forged row of another team's conversation
            return gr.skip(), _err(refused)
        context = review_context(self.svc.turns_before(turn), turn)
        return gr.update(choices=[turn_choice(turn)], value=int(turn.id or 0)), context

    def dashboard(self, request: gr.Request) -> tuple[Update, ...]:
        """The dashboard's headline, four figures and the customers' satisfaction (CSAT
        plotted by intent and by agent, then its tables) over the last `DASHBOARD_DAYS`."""
        self.me(request)
        counts = self.bot.store.dashboard_counts(days=DASHBOARD_DAYS)
        figs = build_figures(
            counts,
            model_version=self.bot.classifier.version,
            index_version=str(self.bot.retriever.version or "") or None,
            days=DASHBOARD_DAYS,
        )
        by_intent = self.bot.store.csat_by_intent(days=DASHBOARD_DAYS)
        by_agent = self.bot.store.csat_by_agent(days=DASHBOARD_DAYS)
        return (
            figs.headline,
            figs.turns_per_day,
            figs.automation,
            figs.handoff_reasons,
            figs.top_intents,
            *csat_plots(by_intent, by_agent, DASHBOARD_DAYS),
            csat_markdown(by_intent, by_agent, DASHBOARD_DAYS),
        )

"""The agent console (Gradio): handoff queue, live conversation, labels, review, dashboard.

It is mounted behind `ui.login`: Gradio's `auth_dependency` rejects every request of
this app (page, config, API, queue) without a valid agent session cookie, and each
handler takes the agent's name from that cookie, never from what the browser sends.

Example:
    >>> console = build_console(bot, signer)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from deskbot.bot.server.container import Bot
from deskbot.bot.store.models import Agent
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner
from deskbot.ui.console.actions import MAX_REPLY_CHARS, ConsoleError, ConsoleService
from deskbot.ui.console.dashboard import build_figures
from deskbot.ui.render import md_text, turn_choice

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 3.0
# The chat component's "Clear" only empties the browser's copy of a transcript; hide it.
CONSOLE_CSS = (
    '#console-transcript button[aria-label="Clear"] { display: none !important; }\n'
    "#console-logout-box { text-align: right; }\n"
)
DASHBOARD_DAYS = 14
QUEUE_HEADERS = ["#", "status", "reason", "waiting", "predicted intent", "agent", "last message"]
REVIEW_HEADERS = ["turn", "confidence", "intent", "customer wrote", "bot answered"]


def build_console(bot: Bot, signer: SessionSigner) -> gr.Blocks:
    """The agent console's Gradio app (mount it with `auth_dependency`, see `ui.server`)."""
    svc = ConsoleService(bot.store, lambda: bot.classifier.labels, bot.pipeline)

    def me(request: gr.Request) -> Agent:
        agent = signer.check(request.cookies.get(COOKIE_NAME))
        if agent is None:
            # auth_dependency already refuses such requests; this is the second lock.
            raise gr.Error("Your session ended; log in again.")
        return agent

    def ok(text: str) -> str:
        return md_text(text)

    def err(text: str) -> str:
        return f"**Not done:** {md_text(text)}"

    def queue_update(selected: int | None) -> tuple[Any, Any, str]:
        handoffs = svc.open_handoffs()
        rows = svc.queue_rows(handoffs)
        choices = [(f"#{h.id} {h.status} · {h.reason}", int(h.id or 0)) for h in handoffs]
        ids = [c[1] for c in choices]
        value = selected if selected in ids else None
        sig = repr(
            [(r[0], r[1], r[5]) for r in rows]
        )  # waiting times change every second; do not redraw for them alone
        return gr.update(value=rows), gr.update(choices=choices, value=value), sig

    def transcript_update(handoff_id: int | None) -> tuple[Any, Any, str]:
        if not handoff_id:
            return [], gr.update(choices=[], value=None), ""
        try:
            messages, bot_turns = svc.transcript(int(handoff_id))
        except ConsoleError:
            return [], gr.update(choices=[], value=None), ""
        choices = [turn_choice(t) for t in bot_turns]
        return messages, gr.update(choices=choices), repr(messages)

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        agent = me(request)
        table, pick, qsig = queue_update(None)
        who = md_text(agent.display_name)
        header = f"Signed in as **{who}** ({md_text(agent.role)})"
        # The live model can change while serving (a promoted version, new intents).
        intents = gr.update(choices=svc.intent_choices())
        return header, table, pick, qsig, intents

    def pick_conversation(handoff_id: int | None, request: gr.Request) -> tuple[Any, ...]:
        me(request)
        messages, label_pick, tsig = transcript_update(handoff_id)
        return messages, label_pick, tsig, ""

    def tick(
        handoff_id: int | None, qseen: str, tseen: str, request: gr.Request
    ) -> tuple[Any, ...]:
        me(request)
        table, pick, qsig = queue_update(handoff_id)
        messages, label_pick, tsig = transcript_update(handoff_id)
        q_changed = qsig != qseen
        t_changed = tsig != tseen
        return (
            table,  # waiting times tick on every refresh
            pick if q_changed else gr.skip(),
            qsig,
            messages if t_changed else gr.skip(),
            label_pick if t_changed else gr.skip(),
            tsig,
        )

    def act_claim(handoff_id: int | None, request: gr.Request) -> tuple[Any, ...]:
        agent = me(request)
        try:
            note = ok(svc.claim(agent, int(handoff_id or 0)))
        except ConsoleError as exc:
            note = err(str(exc))
        table, pick, qsig = queue_update(handoff_id)
        messages, label_pick, tsig = transcript_update(handoff_id)
        return note, table, pick, qsig, messages, label_pick, tsig

    def act_send(handoff_id: int | None, text: str, request: gr.Request) -> tuple[Any, ...]:
        agent = me(request)
        try:
            note = ok(svc.send(agent, int(handoff_id or 0), text or ""))
            text = ""
        except ConsoleError as exc:
            note = err(str(exc))
        messages, label_pick, tsig = transcript_update(handoff_id)
        return note, text, messages, label_pick, tsig

    def act_close(back_to_bot: bool) -> Any:
        def close(handoff_id: int | None, request: gr.Request) -> tuple[Any, ...]:
            agent = me(request)
            try:
                note = ok(svc.close(agent, int(handoff_id or 0), back_to_bot=back_to_bot))
            except ConsoleError as exc:
                note = err(str(exc))
            table, pick, qsig = queue_update(handoff_id)
            return note, table, pick, qsig

        return close

    def act_label(
        turn_id: int | None,
        intent: str | None,
        new_intent: str,
        wrong: bool,
        answer: str,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        agent = me(request)
        try:
            note = ok(
                svc.label(
                    agent,
                    turn_id,
                    intent=intent,
                    new_intent=new_intent,
                    answer_wrong=wrong,
                    correct_answer=answer,
                )
            )
        except ConsoleError as exc:
            return (err(str(exc)),) + (gr.skip(),) * 4
        return note, None, "", False, ""

    def queue_pick(evt: gr.SelectData, request: gr.Request) -> Any:
        me(request)
        row = evt.row_value or []
        return int(row[0]) if row and row[0] is not None else gr.skip()

    def review_update(request: gr.Request) -> tuple[Any, Any]:
        me(request)
        return svc.review("least_confident"), svc.review("thumbs_down")

    def review_pick(evt: gr.SelectData, request: gr.Request) -> tuple[Any, Any]:
        me(request)
        row = evt.row_value or []
        turn = bot.store.get_turn(int(row[0])) if row and row[0] is not None else None
        if turn is None:
            return gr.skip(), gr.skip()
        context = (
            f"**Customer:** {md_text(svc.customer_text(turn))}\n\n"
            f"**Bot** `#{turn.id}` ({md_text(turn.intent or '-')}, "
            f"{turn.confidence or 0:.2f}): {md_text(turn.text)}"
        )
        return gr.update(choices=[turn_choice(turn)], value=int(turn.id or 0)), context

    def dashboard(request: gr.Request) -> tuple[Any, ...]:
        me(request)
        counts = bot.store.dashboard_counts(days=DASHBOARD_DAYS)
        figs = build_figures(
            counts,
            model_version=bot.classifier.version,
            index_version=str(bot.retriever.version or "") or None,
            days=DASHBOARD_DAYS,
        )
        return (
            figs.headline,
            figs.turns_per_day,
            figs.automation,
            figs.handoff_reasons,
            figs.top_intents,
        )

    # Agents' actions are short database calls; let them run side by side.
    private: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
    with gr.Blocks(title=f"{bot.config.name}: agent console") as console:
        with gr.Row(equal_height=True):
            header = gr.Markdown("", elem_id="console-header")
            # A fixed link (nothing dynamic in it); Markdown links would open a new tab.
            gr.HTML(
                '<a href="logout" target="_self" id="console-logout">Log out</a>',
                elem_id="console-logout-box",
            )
        qseen, tseen = gr.State(""), gr.State("")
        with gr.Tabs():
            with gr.Tab("Queue", id="queue"):
                queue = gr.Dataframe(
                    headers=QUEUE_HEADERS,
                    datatype=["number", "str", "str", "str", "str", "str", "str"],
                    interactive=False,
                    column_widths=["6%", "10%", "15%", "9%", "15%", "9%", "36%"],
                    label="Handoff queue",
                    elem_id="console-queue",
                    wrap=True,
                )
                with gr.Row(equal_height=True):
                    pick = gr.Dropdown(
                        label="Conversation", choices=[], scale=3, elem_id="console-pick"
                    )
                    claim = gr.Button("Claim", variant="primary", scale=1)
                notice = gr.Markdown("", elem_id="console-notice")
                transcript = gr.Chatbot(
                    label="Transcript (intents, confidences, retrieved passages)",
                    height=420,
                    group_consecutive_messages=False,
                    sanitize_html=True,
                    allow_tags=False,
                    latex_delimiters=[],
                    feedback_options=None,
                    elem_id="console-transcript",
                )
                reply = gr.Textbox(
                    label="Reply to the customer",
                    lines=2,
                    max_length=MAX_REPLY_CHARS,
                    elem_id="console-reply",
                )
                with gr.Row():
                    send = gr.Button("Send reply", variant="primary")
                    hand_back = gr.Button("Hand back to the bot")
                    resolve = gr.Button("Resolve and close", variant="stop")
            with gr.Tab("Review", id="review"):
                gr.Markdown(
                    "Turns the bot was least sure about, and turns customers gave a "
                    "thumbs-down; pick a row to label it below."
                )
                refresh_review = gr.Button("Refresh", size="sm")
                least = gr.Dataframe(
                    headers=REVIEW_HEADERS,
                    interactive=False,
                    label="Least confident",
                    elem_id="review-least",
                    wrap=True,
                )
                down = gr.Dataframe(
                    headers=REVIEW_HEADERS,
                    interactive=False,
                    label="Thumbs down",
                    elem_id="review-down",
                    wrap=True,
                )
                review_context = gr.Markdown("")
            with gr.Tab("Dashboard", id="dashboard") as dash_tab:
                refresh_dash = gr.Button("Refresh", size="sm")
                headline = gr.Markdown("", elem_id="dashboard-headline")
                with gr.Row():
                    plot_days = gr.Plot(label="Messages per day", format="png", show_label=False)
                    plot_rates = gr.Plot(
                        label="Automation and fallback", format="png", show_label=False
                    )
                with gr.Row():
                    plot_reasons = gr.Plot(label="Handoff reasons", format="png", show_label=False)
                    plot_intents = gr.Plot(label="Top intents", format="png", show_label=False)
        with gr.Accordion("Label a bot turn", open=True, elem_id="console-label"):
            with gr.Row():
                label_turn = gr.Dropdown(
                    label="Bot turn", choices=[], scale=2, filterable=True, elem_id="label-turn"
                )
                label_intent = gr.Dropdown(
                    label="Correct intent (type to search)",
                    choices=svc.intent_choices(),
                    value=None,
                    filterable=True,
                    scale=2,
                    elem_id="label-intent",
                )
                new_intent = gr.Textbox(
                    label="…or a new intent", placeholder="new intent name", scale=2
                )
            with gr.Row():
                wrong = gr.Checkbox(label="The answer was wrong", scale=1)
                right = gr.Textbox(
                    label="The right answer", lines=2, scale=4, elem_id="label-answer"
                )
            save_label = gr.Button("Save label", variant="primary")
            label_notice = gr.Markdown("", elem_id="label-notice")
        timer = gr.Timer(REFRESH_SECONDS)

        console.load(on_load, None, [header, queue, pick, qseen, label_intent], **private)
        queue.select(queue_pick, None, [pick], **private)
        pick.change(pick_conversation, [pick], [transcript, label_turn, tseen, notice], **private)
        timer.tick(
            tick,
            [pick, qseen, tseen],
            [queue, pick, qseen, transcript, label_turn, tseen],
            show_progress="hidden",
            **private,
        )
        claim.click(
            act_claim,
            [pick],
            [notice, queue, pick, qseen, transcript, label_turn, tseen],
            **private,
        )
        for trigger in (send.click, reply.submit):
            trigger(
                act_send, [pick, reply], [notice, reply, transcript, label_turn, tseen], **private
            )
        hand_back.click(act_close(True), [pick], [notice, queue, pick, qseen], **private)
        resolve.click(act_close(False), [pick], [notice, queue, pick, qseen], **private)
        save_label.click(
            act_label,
            [label_turn, label_intent, new_intent, wrong, right],
            [label_notice, label_intent, new_intent, wrong, right],
            **private,
        )
        refresh_review.click(review_update, None, [least, down], **private)
        least.select(review_pick, None, [label_turn, review_context], **private)
        down.select(review_pick, None, [label_turn, review_context], **private)
        dash_outputs = [headline, plot_days, plot_rates, plot_reasons, plot_intents]
        dash_tab.select(dashboard, None, dash_outputs, **private)
        refresh_dash.click(dashboard, None, dash_outputs, **private)
        console.load(review_update, None, [least, down], **private)
    return console

"""The customer chat widget (Gradio), served by the same process as the API."""

from __future__ import annotations

from typing import Any

import gradio as gr

from deskbot.bot.app import Bot
from deskbot.bot.types import Reply


def format_reply(reply: Reply) -> str:
    """The reply's text with its cited sources under it (as Markdown links, text escaped)."""
    text = reply.text
    sources = [p for p in reply.passages if p.id in reply.citations]
    if sources:
        cites = "; ".join(
            f"[{_md_escape(p.question)}]({p.url})" if p.url else _md_escape(p.question)
            for p in sources
        )
        text += f"\n\n*Source: {cites}*"
    return text


def _md_escape(text: str) -> str:
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|" else c for c in text)


def build_chat(bot: Bot) -> gr.Blocks:
    """One conversation per browser session; its id lives in the session's state."""

    def respond(
        message: str, history: list[dict[str, Any]], conv_id: str | None
    ) -> tuple[Any, Any, Any]:
        message = " ".join((message or "").split())[:2000]
        if not message:
            return history, conv_id, ""
        if conv_id is None:
            conv, _token = bot.store.create_conversation(channel="web")
            conv_id = conv.id
        reply = bot.pipeline.handle(conv_id, message)
        history = [*history, {"role": "user", "content": message}]
        if reply.text:
            history.append({"role": "assistant", "content": format_reply(reply)})
        return history, conv_id, ""

    with gr.Blocks(title=bot.config.name) as demo:
        gr.Markdown(f"### {bot.config.name}: customer help")
        conv_state = gr.State(None)
        chatbot = gr.Chatbot(label="Chat", height=460, sanitize_html=True, render_markdown=True)
        box = gr.Textbox(placeholder="Type your question…", show_label=False, max_length=2000)
        send = gr.Button("Send", variant="primary")
        for trigger in (box.submit, send.click):
            trigger(respond, [box, chatbot, conv_state], [chatbot, conv_state, box])
    return demo

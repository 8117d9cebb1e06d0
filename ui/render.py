"""Turning stored turns into chat messages: everything people typed is shown as text.

Gradio renders chat messages as Markdown and lets some HTML through its sanitiser, so
text that a customer or an agent typed (and FAQ text, which an operator typed) is
escaped here before any of our own Markdown is put around it. `<`, `>` and `&` become
HTML entities, which Markdown shows as the characters themselves; Markdown's
punctuation gets a backslash. Nothing else in the UI may put such text into a
Markdown or HTML component without passing it through `md_text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from deskbot.bot.store.models import TurnRecord

_MD_SPECIAL = frozenset("\\`*_{}[]()#+-.!|~$")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def md_text(text: str) -> str:
    """`text` as Markdown that renders to exactly the characters of `text`.

    Example:
        >>> md_text("<b>hi</b> *x*")
        '&lt;b&gt;hi&lt;/b&gt; \\\\*x\\\\*'
    """
    out: list[str] = []
    for c in text:
        if c in _HTML:
            out.append(_HTML[c])
        elif c in _MD_SPECIAL:
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def safe_url(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL usable inside a Markdown link, else None."""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return None
    if any(c in url for c in " <>()[]\"'`\\\n\r\t"):
        return None
    return url


def sources_line(passages: Sequence[dict[str, Any]]) -> str:
    """'Source: ...' for a reply's cited passages (FAQ questions, linked when they have a URL)."""
    names = []
    for p in passages:
        label = md_text(str(p.get("question") or p.get("id") or "FAQ"))
        url = safe_url(p.get("url"))
        names.append(f"[{label}]({url})" if url else label)
    if not names:
        return ""
    return ("Source: " if len(names) == 1 else "Sources: ") + "; ".join(names)


def cited(turn: TurnRecord) -> list[dict[str, Any]]:
    """The passages a bot turn answered from (FAQ answers cite the passages they quote)."""
    if turn.kind not in ("faq", "generated"):
        return []
    return [p for p in turn.passages if isinstance(p, dict)]


@dataclass(frozen=True)
class ChatView:
    """What the customer widget shows: the messages, which stored turn each one is, and
    the thumbs already given (one entry per assistant message)."""

    messages: list[dict[str, Any]]
    turn_ids: list[int]
    feedback: list[str | None]


def customer_view(turns: Sequence[TurnRecord], agent_name: Callable[[str], str]) -> ChatView:
    """The customer's side of a conversation; agent messages say who wrote them.

    Empty and system turns are not shown. Bot replies carry their cited sources on a
    line under the text.
    """
    messages: list[dict[str, Any]] = []
    turn_ids: list[int] = []
    feedback: list[str | None] = []
    for t in turns:
        if not t.text or t.role not in ("user", "bot", "agent"):
            continue
        if t.role == "user":
            content = md_text(t.text)
        elif t.role == "agent":
            who = md_text(agent_name(t.author or "agent"))
            content = f"**{who}** (support agent):\n\n{md_text(t.text)}"
        else:
            content = md_text(t.text)
            line = sources_line(cited(t))
            if line:
                content += f"\n\n*{line}*"
        messages.append({"role": "user" if t.role == "user" else "assistant", "content": content})
        turn_ids.append(int(t.id or 0))
        if t.role != "user":  # Gradio's feedback_value has one entry per assistant message
            feedback.append({1: "Like", -1: "Dislike"}.get(t.feedback or 0))
    return ChatView(messages, turn_ids, feedback)


def agent_transcript(
    turns: Sequence[TurnRecord], agent_name: Callable[[str], str], labelled: set[int]
) -> list[dict[str, Any]]:
    """The full conversation for an agent: every bot turn with its intent, confidence,
    kind and the passages it retrieved (scores), and whether it has been labelled."""
    messages: list[dict[str, Any]] = []
    for t in turns:
        if t.role == "user":
            info = ""
            if t.intent:
                info = f"\n\n`#{t.id}` · predicted {md_text(t.intent)} ({t.confidence or 0:.2f})"
            messages.append({"role": "user", "content": f"**Customer:** {md_text(t.text)}{info}"})
        elif t.role == "agent":
            who = md_text(agent_name(t.author or "agent"))
            messages.append({"role": "assistant", "content": f"**{who}:** {md_text(t.text)}"})
        elif t.role == "bot":
            lines = [f"**Bot** `#{t.id}`: {md_text(t.text) or '*(silent)*'}"]
            meta = f"intent **{md_text(t.intent or '-')}**"
            if t.confidence is not None:
                meta += f" · confidence {t.confidence:.2f}"
            meta += f" · {md_text(t.kind or '-')}"
            if t.feedback == -1:
                meta += " · customer: thumbs down"
            elif t.feedback == 1:
                meta += " · customer: thumbs up"
            if t.id in labelled:
                meta += " · labelled"
            lines.append(meta)
            for p in t.passages:
                if isinstance(p, dict):
                    lines.append(
                        f"- passage {md_text(str(p.get('id', '?')))} "
                        f"({float(p.get('score') or 0):.2f}): {md_text(str(p.get('question', '')))}"
                    )
            messages.append(
                {
                    "role": "assistant",
                    "content": "\n\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]),
                }
            )
    return messages


def turn_choice(t: TurnRecord) -> tuple[str, int]:
    """A dropdown entry for a bot turn: its id, intent and the start of its text (plain text)."""
    text = " ".join(t.text.split())
    short = text[:60] + ("…" if len(text) > 60 else "")
    return (f"#{t.id} [{t.intent or '-'} {t.confidence or 0:.2f}] {short}", int(t.id or 0))

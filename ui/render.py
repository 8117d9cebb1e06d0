"""Turning stored turns into chat messages: everything people typed is shown as text.

Gradio renders chat messages as Markdown and lets some HTML through its sanitiser, so
text that a customer or an agent typed (and FAQ text, which an operator typed) passes
through `md_text` before any of our own Markdown is put around it. Nothing else in the
UI may put such text into a Markdown or HTML component.

`md_text` escapes only what Markdown or HTML would act on, where it would act: `<b>`,
`*x*`, `[a](b)`, a `# ` heading or a `1. ` list at a line start. Everything else stays
as typed, because Gradio's Chatbot also puts the message's source into its aria-label
(what a screen reader reads) and because Markdown's autolinks take a URL's characters
from the source: `shop\\.example` would be read out with its backslash and linked to
`shop%5C.example`. The escape is a backslash (`\\<b>`), never an HTML entity.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from deskbot.bot.store.models import TurnRecord
from deskbot.bot.store.presence import RENEW_S

_PUNCTUATION = frozenset(string.punctuation)  # what a backslash escapes in CommonMark
_ENTITY = re.compile(r"&#?[A-Za-z0-9]+;")
_LINK_AFTER = re.compile(r"\](?:[(\[:]|\Z)")  # `](`, `][`, `]:`: a link, an image, a reference
_URL_START = re.compile(r"(?:https?|ftp)://|www\.", re.IGNORECASE)
_URL_END = re.compile(r"[\s<]")
# Block syntax at a line start: heading, bullet, ordered item, and lines of rule
# characters (thematic breaks, setext underlines, table delimiter rows).
_HEADING = re.compile(r"#{1,6}(?:[ \t]|$)")
_BULLET = re.compile(r"[-+*](?:[ \t]|$)")
_ORDERED = re.compile(r"[0-9]{1,9}[.)](?:[ \t]|$)")
_RULE = re.compile(r"[-*_=+:| \t]*[-*_=][-*_=+:| \t]*")


def md_text(text: str, *, link_text: bool = False, line_start: bool = True) -> str:
    """`text` as Markdown that renders to exactly the characters of `text`, as inert text.

    The result may go anywhere in a line of our own Markdown (`**Customer:** {text}`),
    or into a link's text `[{text}](url)` with `link_text=True` (on one line). Leading
    spaces of a line (which would make a code block) are dropped; they are not shown anyway.
    `line_start=False` where our own text comes first on its line (`**Bot:** {text}`):
    its first line cannot start a heading or a list there, so `- ` or `1. ` stay as typed.

    Example:
        >>> md_text("<b>hi</b> *x* 10 > 8. See https://bank.example/a-b")
        '\\\\<b>hi\\\\</b> \\\\*x\\\\* 10 > 8. See https://bank.example/a-b'
    """
    if link_text:  # one line: a blank line would end the link
        text = " ".join(text.split())
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    text = "\n".join(line.lstrip(" \t") for line in lines)
    escaped = _inline_escapes(text, link_text) | _line_start_escapes(
        text, line_start and not link_text
    )
    if not link_text:  # Markdown does not autolink inside a link's text
        escaped |= _unlinked(text, escaped)
    return "".join("\\" + c if i in escaped else c for i, c in enumerate(text))


def _inline_escapes(text: str, link_text: bool) -> set[int]:
    """Where a character of `text` would start or end Markdown or HTML inside a line.

    The start and the end of `text` count as "anything": the caller's Markdown is there."""
    brackets = link_text or _LINK_AFTER.search(text) is not None
    out: set[int] = set()
    for i, c in enumerate(text):
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if c == "\\":  # escapes the next punctuation; a hard line break at a line's end
            hit = after in ("", "\n") or after in _PUNCTUATION
        elif c in "*~":  # emphasis, strikethrough: not when spaces surround it
            hit = not (before.isspace() and after.isspace())
        elif c == "_":  # as `*`, but never inside a word (snake_case stays)
            hit = not (before.isspace() and after.isspace()) and not (
                before.isalnum() and after.isalnum()
            )
        elif c == "<":  # a tag, a comment, an autolink; `5 < 6` and `<3` stay
            hit = after == "" or after in "/!?" or (after.isascii() and after.isalpha())
        else:
            hit = (
                c == "`"
                or (c == "[" and brackets)
                or (c == "]" and link_text)
                or (c == "&" and _ENTITY.match(text, i) is not None)
                or (c == "$" and "$" in (before, after))  # gr.Markdown's LaTeX is $$...$$
            )
        if hit:
            out.add(i)
    return out


def _line_start_escapes(text: str, first: bool) -> set[int]:
    """Where a line of `text` (the first one too if `first`) starts a block: heading,
    quote, list, rule or table row."""
    out: set[int] = set()
    start = 0
    for n, line in enumerate(text.split("\n")):
        if n == 0 and not first:
            start += len(line) + 1
            continue
        block = _HEADING.match(line) or _BULLET.match(line) or _RULE.fullmatch(line)
        if line.startswith(">") or block:
            out.add(start)
        elif ordered := _ORDERED.match(line):
            out.add(start + len(ordered.group().rstrip(" \t")) - 1)  # `1\. `
        start += len(line) + 1
    return out


def _unlinked(text: str, escaped: set[int]) -> set[int]:
    """Escapes that keep Markdown from autolinking a URL that holds, or touches, an
    escape: a linked URL takes the backslash into its target (and `>` of `\\<https://x>`).

    A URL without one (the usual case) stays as typed and is linked to itself."""
    out: set[int] = set()
    for m in _URL_START.finditer(text):
        end = _URL_END.search(text, m.end())
        stop = end.start() if end else len(text)
        if any(i in escaped for i in range(m.start() - 1, stop + 1)):
            out.add(m.start() + m.group().index(":" if ":" in m.group() else "."))
    return out


def _inline(text: str) -> str:
    """`md_text` for text that follows our own on its line."""
    return md_text(text, line_start=False)


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
        label = md_text(str(p.get("question") or p.get("id") or "FAQ"), link_text=True)
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
            who = _inline(agent_name(t.author or "agent"))
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
                intent = _inline(t.intent)
                info = f"\n\n`#{t.id}` · predicted {intent} ({t.confidence or 0:.2f})"
            customer = f"**Customer:** {_inline(t.text)}{info}"
            messages.append({"role": "user", "content": customer})
        elif t.role == "agent":
            who = _inline(agent_name(t.author or "agent"))
            messages.append({"role": "assistant", "content": f"**{who}:** {_inline(t.text)}"})
        elif t.role == "bot":
            messages.append({"role": "assistant", "content": _bot_turn(t, labelled)})
    return messages


def _bot_turn(t: TurnRecord, labelled: set[int]) -> str:
    """A bot turn for the agent: its text, intent, confidence, kind, feedback, how its
    message was read in the thread, and the passages it retrieved."""
    lines = [f"**Bot** `#{t.id}`: {_inline(t.text) or '*(silent)*'}"]
    meta = f"intent **{_inline(t.intent or '-')}**"
    if t.confidence is not None:
        meta += f" · confidence {t.confidence:.2f}"
    meta += f" · {_inline(t.kind or '-')}"
    if t.feedback == -1:
        meta += " · customer: thumbs down"
    elif t.feedback == 1:
        meta += " · customer: thumbs up"
    if t.id in labelled:
        meta += " · labelled"
    lines.append(meta)
    read = context_note((t.reply or {}).get("context"))
    if read:
        lines.append(read)
    for p in t.passages:
        if isinstance(p, dict):
            lines.append(
                f"- passage {_inline(str(p.get('id', '?')))} "
                f"({float(p.get('score') or 0):.2f}): {_inline(str(p.get('question', '')))}"
            )
    return "\n\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:])


def context_note(context: object) -> str:
    """How a message was read in its thread (`Reading.explain`, stored with the bot's
    turn), as one line for the agent: after what, and what the thread changed."""
    if not isinstance(context, dict) or not context.get("after"):
        return ""

    def named(reading: object) -> str:
        if isinstance(reading, list) and len(reading) == 2:
            return f"{_inline(str(reading[0]))} ({float(reading[1] or 0):.2f})"
        return "-"

    after = _inline(str(context["after"]))
    if not context.get("used"):
        return f"- read alone as {named(context.get('alone'))}; the thread (“{after}”) not needed"
    how = "a correction, read" if context.get("correction") else "read"
    return (
        f"- {how} in its thread: after “{after}” → {named(context.get('thread'))}; "
        f"alone it was {named(context.get('alone'))}"
    )


def turn_choice(t: TurnRecord) -> tuple[str, int]:
    """A dropdown entry for a bot turn: its id, intent and the start of its text (plain text)."""
    text = " ".join(t.text.split())
    short = text[:60] + ("…" if len(text) > 60 else "")
    return (f"#{t.id} [{t.intent or '-'} {t.confidence or 0:.2f}] {short}", int(t.id or 0))


def typing_script(
    flag: str, box: str, buttons: str, *, live: Sequence[str], send_ends_typing: bool
) -> str:
    """A page's typing script (Gradio `js=`, installed once: `window.FLAG` marks it).

    While someone types in the element `#BOX`, it presses the hidden button
    `BUTTONS-on` at most every `RENEW_S`, and `BUTTONS-off` when the box is emptied
    (and, with `send_ends_typing`, when Enter sends the message); the elements with
    the ids `live` become polite live regions (read out as they change).
    """
    on_send = 't.last = 0; press("' + buttons + '-off");' if send_ends_typing else "t.last = 0;"
    return f"""() => {{
  if (window.{flag}) return [];
  const t = (window.{flag} = {{last: 0}});
  const press = (id) => {{ const b = document.getElementById(id); if (b) b.click(); }};
  const inBox = (el) => el && el.closest && el.closest("#{box}");
  document.addEventListener("input", (e) => {{
    if (!inBox(e.target)) return;
    if (!e.target.value.trim()) {{ t.last = 0; press("{buttons}-off"); return; }}
    const now = Date.now();
    if (now - t.last < {int(RENEW_S * 1000)}) return;
    t.last = now;
    press("{buttons}-on");
  }}, true);
  document.addEventListener("keydown", (e) => {{
    if (e.key === "Enter" && !e.shiftKey && inBox(e.target)) {{ {on_send} }}
  }}, true);
  for (const id of {json.dumps(list(live))}) {{
    const el = document.getElementById(id);
    if (el) {{ el.setAttribute("role", "status"); el.setAttribute("aria-live", "polite"); }}
  }}
  return [];
}}"""

"""What the widget runs in the browser: its stylesheet and its scripts.

The customer's messages go through a queue in the page. Pressing Enter (or Send) takes
the text out of the box at once, in the browser, so whatever is typed afterwards stays
there (a server answer never writes the box). One message is sent at a time: the next
leaves when the reply to the previous one is complete, with the session token that
reply may have just created, so messages written while a reply streams are stored in
the order they were written, each in the same conversation, and none is dropped.

The scripts also keep the thumbs to the bot's own replies (the chat marks agents'
messages and notices with `NO_FEEDBACK`; Gradio offers thumbs on every assistant
message), give the thumbs their pressed state, and make the status line a polite live
region. Each snippet installs the shared code on first use (`with_widget`), so a message
sent before the page's load event ran is queued all the same.
"""

from __future__ import annotations

# The metadata id prefix of chat messages that get no thumbs (agents' messages, notices).
NO_FEEDBACK = "deskbot-no-feedback"

CHAT_CSS = """
.gradio-container { max-width: 720px !important; margin: 0 auto !important; }
/* White on the theme's orange-500 is 2.8:1; orange-700 is 5.2:1 (WCAG AA: 4.5). */
.gradio-container {
  --button-primary-background-fill: #c2410c; --button-primary-background-fill-hover: #9a3412;
  --button-primary-text-color: #ffffff; --button-primary-text-color-hover: #ffffff;
}
#deskbot-chat { min-height: 280px; }
/* "Clear" would only empty this page's copy of the conversation: hide it. */
#deskbot-chat button[aria-label="Clear"] { display: none !important; }
/* One long word (a URL, a reference, code) wraps inside its bubble at any width. */
#deskbot-chat .message-row, #deskbot-chat .message, #deskbot-chat .message-content,
#deskbot-chat .prose, #deskbot-status, #deskbot-waiting, #deskbot-survey {
  min-width: 0; max-width: 100%; overflow-wrap: anywhere; word-break: break-word;
}
#deskbot-chat pre, #deskbot-chat code {
  white-space: pre-wrap !important; overflow-wrap: anywhere; word-break: break-all;
}
#deskbot-chat a { overflow-wrap: anywhere; word-break: break-all; }
#deskbot-input-row > * { min-width: 0; }
/* The button the page queue presses to send the next message. */
#deskbot-dispatch { display: none !important; }
#deskbot-waiting:has(p:empty) { display: none; }
#deskbot-waiting p { margin: 0; font-size: 0.9em; }
/* A visible focus for keyboard users, on every control. */
.gradio-container button:focus-visible, .gradio-container textarea:focus-visible,
.gradio-container input:focus-visible, .gradio-container a:focus-visible {
  outline: 3px solid #9a3412 !important; outline-offset: 2px !important;
}
@media (max-width: 480px) {
  .gradio-container { padding: 4px !important; }
  #deskbot-input-row { flex-wrap: nowrap !important; }
}
"""

# Installed once per page as window.deskbot; every snippet below starts with it.
_WIDGET = """
if (!window.deskbot) {
  const d = (window.deskbot = { items: [], busy: false, flags: [] });
  d.showWaiting = () => {
    const p = document.getElementById("deskbot-waiting-text");
    if (!p) return;
    const n = d.items.length;
    p.textContent = n ? (n === 1 ? "1 message" : n + " messages") +
      " waiting to be sent: " + d.items.join(" · ") : "";
  };
  d.pump = () => {
    if (d.busy || !d.items.length) return;
    const button = document.getElementById("deskbot-dispatch");
    if (!button) { setTimeout(d.pump, 100); return; }
    d.busy = true;
    button.click();
  };
  d.enqueue = (text) => {
    if (!text || !text.trim()) return text;
    d.items.push(text);
    d.showWaiting();
    setTimeout(d.pump, 0);
    return "";
  };
  d.take = () => {
    const text = d.items.shift();
    d.showWaiting();
    return text === undefined ? "" : text;
  };
  d.done = () => { d.busy = false; setTimeout(d.pump, 0); };
  const THUMBS = /^(Like|Dislike|Liked|Disliked)$/;
  d.thumbs = (row) => {
    const found = [...row.querySelectorAll("button")];
    for (let el = row.nextElementSibling; el && !el.classList.contains("message-row");
         el = el.nextElementSibling) {
      found.push(...el.querySelectorAll("button"));
    }
    return found.filter((b) => THUMBS.test(b.getAttribute("aria-label") || ""));
  };
  d.mark = () => {
    const status = document.getElementById("deskbot-status");
    if (status && status.getAttribute("aria-live") !== "polite") {
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
    }
    const chat = document.getElementById("deskbot-chat");
    if (!chat) return;
    // Gradio's suggestions are buttons in a role=list without list items.
    chat.querySelectorAll(".examples[role=list]").forEach((el) => {
      el.setAttribute("role", "group");
      el.setAttribute("aria-label", "Suggested questions");
    });
    chat.querySelectorAll(".message-row.bot-row").forEach((row, i) => {
      const shown = d.flags[i] !== false;
      for (const b of d.thumbs(row)) {
        const want = shown ? "" : "none";
        if (b.style.display !== want) b.style.display = want;
        const pressed = /ed$/.test(b.getAttribute("aria-label")) ? "true" : "false";
        if (b.getAttribute("aria-pressed") !== pressed) b.setAttribute("aria-pressed", pressed);
      }
    });
  };
  d.watch = () => {
    if (!document.body) { setTimeout(d.watch, 50); return; }
    new MutationObserver(d.mark).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ["aria-label"],
    });
    d.mark();
  };
  d.watch();
}
"""


def with_widget(body: str, args: str = "") -> str:
    """A js event function of `args` that installs the page code, then runs `body`."""
    return f"({args}) => {{ {_WIDGET}\n const d = window.deskbot; {body} }}"


# Enter or Send: the box's text joins the queue and the box is emptied, in the browser.
ENQUEUE_JS = with_widget("return d.enqueue(text);", "text")
# The hidden button's event: its message is the next one in the queue, sent with the
# token as it is now (the previous reply may have just set it).
TAKE_JS = with_widget("return [d.take(), token];", "outbox, token")
# After each reply: a message the front door refused goes back into the box (before
# anything typed since), then the next message leaves.
AFTER_JS = with_widget(
    "d.done(); if (!returned) return [box, ''];"
    " return [box && box.trim() ? returned + '\\n' + box : returned, ''];",
    "returned, box",
)
# The chat changed: which assistant messages may have thumbs.
FLAGS_JS = with_widget(
    "d.flags = (chat || []).filter((m) => m.role !== 'user').map((m) =>"
    f" !String((m.metadata && m.metadata.id) || '').startsWith('{NO_FEEDBACK}'));"
    " requestAnimationFrame(d.mark); return [];",
    "chat",
)
INSTALL_JS = with_widget("d.showWaiting(); d.mark(); return [];")

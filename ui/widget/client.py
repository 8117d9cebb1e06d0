"""What the widget runs in the browser: its stylesheet and its scripts.

The customer's messages go through a queue in the page. Its code is in the page's head
(`HEAD`), so its listeners are there before the message box: Enter (or Send) takes the
text out of the box itself, as the customer sees it, and empties the box at once, in
the browser. Nothing reads Gradio's copy of the box (which can lag the box when keys
come fast) and no server answer writes the box, so whatever is typed afterwards stays.

Each message gets an id in the page. One message is sent at a time, with its id and
the session token the previous reply may have just created, so messages written while
a reply streams are stored in the order they were written, in the same conversation.
A message stays at the head of the queue until its reply is complete: when a send
fails (the network, a restart), the same message is sent again later with the same
id, and the server's idempotent turns (`Pipeline.handle_stream(message_id=)`) store
and answer it once.

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
  const d = (window.deskbot = { items: [], busy: false, sending: null, tries: 0, flags: [] });
  d.newId = () => (window.crypto && crypto.randomUUID ? crypto.randomUUID()
    : Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12));
  d.showWaiting = () => {
    const p = document.getElementById("deskbot-waiting-text");
    if (!p) return;
    const waiting = d.items.filter((m) => m !== d.sending).map((m) => m.text);
    const n = waiting.length;
    p.textContent = n ? (n === 1 ? "1 message" : n + " messages") +
      " waiting to be sent: " + waiting.join(" · ") : "";
  };
  // The message at the head of the queue leaves; it stays there until its reply is
  // complete, so a send that fails is sent again, with the same id.
  d.pump = () => {
    if (d.busy || !d.items.length) return;
    const button = document.getElementById("deskbot-dispatch");
    if (!button) { setTimeout(d.pump, 100); return; }
    d.busy = true;
    d.sending = d.items[0];
    d.showWaiting();
    button.click();
  };
  d.enqueue = (text) => {
    if (!text || !text.trim()) return false;
    d.items.push({ text: text, id: d.newId() });
    d.showWaiting();
    setTimeout(d.pump, 0);
    return true;
  };
  // Enter or Send: the text in the box, as the customer sees it, joins the queue and
  // the box is emptied here, in the page (never from the server, never from a copy).
  d.send = () => {
    const box = document.querySelector("#deskbot-input textarea");
    if (!box || !d.enqueue(box.value)) return;
    box.value = "";
    box.dispatchEvent(new Event("input", { bubbles: true }));
  };
  d.take = () => (d.sending ? [d.sending.text, d.sending.id] : ["", ""]);
  d.done = () => {
    if (d.sending && d.items[0] === d.sending) d.items.shift();
    d.sending = null; d.busy = false; d.tries = 0;
    d.showWaiting();
    setTimeout(d.pump, 0);
  };
  d.failed = () => {
    d.sending = null; d.busy = false; d.tries += 1;
    d.showWaiting();
    setTimeout(d.pump, Math.min(30000, 1000 * 2 ** Math.min(d.tries, 5)));
  };
  // Back into the box: a message the server refused, before anything typed since.
  d.giveBack = (text) => {
    const box = document.querySelector("#deskbot-input textarea");
    if (!box || !text) return;
    box.value = box.value.trim() ? text + "\\n" + box.value : text;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  };
  const inBox = (el) => el && el.closest && el.closest("#deskbot-input");
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    if (!inBox(e.target)) return;
    e.preventDefault();
    e.stopPropagation();  // Gradio's own submit would read a copy of the box
    d.send();
  }, true);
  document.addEventListener("click", (e) => {
    if (!(e.target && e.target.closest && e.target.closest("#deskbot-send"))) return;
    e.preventDefault();
    e.stopPropagation();
    d.send();
  }, true);
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


# Enter or Send, where the page's own listeners (installed in the page head, `HEAD`) did
# not take the key first: the same `send`, reading the box itself.
ENQUEUE_JS = with_widget("d.send(); return [];", "text")
# The hidden button's event: the message at the head of the queue with its id, and the
# token as it is now (the previous reply may have just set it).
TAKE_JS = with_widget(
    "const [text, id] = d.take(); return [text, token, id];", "outbox, token, message_id"
)
# After each reply: a message the front door refused goes back into the box (before
# anything typed since), then the next message leaves.
AFTER_JS = with_widget("d.done(); d.giveBack(returned); return [];", "returned")
# The send failed (the server or the network): the same message is sent again later.
FAILED_JS = with_widget("d.failed(); return [];")
# The chat changed: which assistant messages may have thumbs.
FLAGS_JS = with_widget(
    "d.flags = (chat || []).filter((m) => m.role !== 'user').map((m) =>"
    f" !String((m.metadata && m.metadata.id) || '').startsWith('{NO_FEEDBACK}'));"
    " requestAnimationFrame(d.mark); return [];",
    "chat",
)
INSTALL_JS = with_widget("d.showWaiting(); d.mark(); return [];")
# In the page's head: the queue and its key and click listeners are there before the
# box is, so no Enter reaches the box before them.
HEAD = f"<script>(() => {{ {_WIDGET} }})();</script>"

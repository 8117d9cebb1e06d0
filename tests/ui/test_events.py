"""How the pages' events are wired: no trigger with two `always_last` listeners.

Gradio's page, when one listener of a trigger finishes while the trigger waited for it,
fires the whole trigger again; a second `always_last` listener of it, still running, is
deferred in turn, and the two set each other off for as long as their runs overlap. The
console's push refresh did that: ten refreshes a second for most of a minute after two
pushes close together, and a refresh started before the page was hidden read a message
that came after (its unread count never rose). Followers hang on `.then` instead.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gradio as gr
import pytest

from deskbot.bot.core.config import load_config
from deskbot.bot.server.container import build_bot
from deskbot.ui.accounts.auth import SessionSigner
from deskbot.ui.console.page import build_console
from deskbot.ui.widget.chat import build_chat


def _always_last_per_trigger(blocks: gr.Blocks) -> Counter[tuple[int | None, str]]:
    counts: Counter[tuple[int | None, str]] = Counter()
    for fn in blocks.fns.values():
        if fn.trigger_mode != "always_last":
            continue
        for target in fn.targets:
            # `.then` listeners share the target (None, "then"), but each follows its own
            # listener: count them per listener followed.
            key = (fn.trigger_after, "then") if target == (None, "then") else target
            counts[key] += 1
    return counts


def test_no_trigger_has_two_always_last_listeners(
    bot_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESKBOT_SECRET_KEY", "test-secret-" + "x" * 32)
    bot = build_bot(load_config(bot_project))
    signer = SessionSigner("test-secret-" + "x" * 32, bot.store)
    console = build_console(bot, signer)
    for blocks in (console, build_chat(bot)):
        counts = _always_last_per_trigger(blocks)
        assert counts, "no always_last listener found: the check reads the wrong field"
        doubled = {t: n for t, n in counts.items() if n > 1}
        assert not doubled, doubled
    # The console's push refresh and its picker each drive one listener and its followers.
    followers = [fn.name for fn in console.fns.values() if fn.trigger_after is not None]
    assert {"panel", "on_pick", "show"} <= set(followers), followers

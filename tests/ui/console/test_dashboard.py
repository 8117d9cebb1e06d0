"""The dashboard's customer satisfaction: CSAT plotted by intent and by agent (with each
group's answers and a 95% Wilson interval) and as tables, from the real store's answers;
and the plots on the console's Dashboard tab in Debian's Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from matplotlib.container import ErrorbarContainer

from deskbot.bot.store import SqlConversationStore
from deskbot.ui.console.dashboard import (
    CSAT_MAX_BARS,
    CsatBar,
    csat_bars,
    csat_figure,
    csat_html,
    csat_markdown,
    csat_plots,
    csat_title,
    wilson_interval,
)
from tests.ui.conftest import LiveApp, axe_violations
from tests.ui.test_browser import log_in

# (intent, agent or None for the bot alone, score): what the customers answered.
ANSWERS = [
    ("card_arrival", "ann", 5),
    ("card_arrival", "b|ob", 2),
    ("card_arrival", "ann", 4),
    ("card_arrival", "ann", 3),
    ("pin_blocked", "b|ob", 5),
    ("exchange_rate", None, 1),
]


def answer(store: SqlConversationStore, answers: list[tuple[str, str | None, int]]) -> None:
    """Store each survey answer in a conversation of its own, handed to its agent."""
    for intent, agent, score in answers:
        conv, _ = store.create_conversation()
        store.append_turn(conv.id, "user", "help", intent=intent)
        if agent is not None:
            handoff = store.open_handoff(conv.id, "customer_request", intent=intent)
            store.claim_handoff(int(handoff.id or 0), agent)
        store.record_satisfaction(conv.id, score)


def bar(name: str, satisfied: int, answers: int) -> CsatBar:
    return CsatBar(name, answers, satisfied / answers, *wilson_interval(satisfied, answers))


def test_the_wilson_interval_is_wide_for_few_answers() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(1, 1) == pytest.approx((0.2065, 1.0), abs=1e-4)
    assert wilson_interval(0, 5) == pytest.approx((0.0, 0.4345), abs=1e-4)
    low, high = wilson_interval(160, 200)
    assert 0.73 < low < 0.8 < high < 0.86
    with pytest.raises(ValueError, match="at least one answer"):
        wilson_interval(0, 0)
    # None of them or all of them: the bound is the share itself, whatever the rounding
    # (matplotlib refuses an error bar below 0 by a hair, seen with 0 of 3).
    for n in range(1, 200):
        low, high = wilson_interval(0, n)
        assert low == 0.0 and high > 0
        low, high = wilson_interval(n, n)
        assert high == 1.0 and low < 1
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0 <= low <= k / n <= high <= 1
    csat_figure("all bounds", [bar(f"g{k}", k, 3) for k in range(4)])


def test_csat_is_plotted_by_intent_and_by_agent_from_stored_answers(
    store: SqlConversationStore,
) -> None:
    answer(store, ANSWERS)
    by_intent, by_agent = store.csat_by_intent(), store.csat_by_agent()
    # Most answers first; CSAT is the share of 4 and 5.
    assert csat_bars(by_intent) == [
        bar("card_arrival", 2, 4),
        bar("exchange_rate", 0, 1),
        bar("pin_blocked", 1, 1),
    ]
    assert csat_bars(by_agent) == [bar("ann", 2, 3), bar("b|ob", 1, 2), bar("(bot only)", 0, 1)]

    # The figure draws exactly those bars: the most answers on top, each with its
    # interval and its number of answers beside it.
    bars = csat_bars(by_agent)
    ax = csat_figure("CSAT by agent", bars).axes[0]
    bottom_up = bars[::-1]
    assert [t.get_text() for t in ax.get_yticklabels()] == [b.name for b in bottom_up]
    assert [p.get_width() for p in ax.patches] == pytest.approx([b.csat * 100 for b in bottom_up])
    (errorbar,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (lines,) = errorbar.lines[2]
    drawn = [x for seg in lines.get_segments() for x in (seg[0][0], seg[1][0])]
    assert drawn == pytest.approx([x * 100 for b in bottom_up for x in (b.low, b.high)])
    assert [t.get_text() for t in ax.texts] == ["0%  n=1", "50%  n=2", "67%  n=3"]
    empty = csat_figure("CSAT by agent", []).axes[0]
    assert [t.get_text() for t in empty.texts] == ["no survey answers yet"]

    # The images say the same in words.
    intent_html, agent_html = csat_plots(by_intent, by_agent, 14)
    assert intent_html.startswith('<img src="data:image/png;base64,')
    assert (
        'alt="CSAT by intent, last 14 days: card_arrival 50% of 4 answers '
        "(95% interval 15% to 85%); exchange_rate 0% of 1 answer" in intent_html
    )
    assert "b|ob 50% of 2 answers (95% interval 9% to 91%); (bot only) 0%" in agent_html


def test_a_csat_plot_shows_the_groups_with_most_answers_and_escapes_names() -> None:
    rows = {
        f"intent_{i:02d}": {"answers": 20 - i, "satisfied": 1, "csat": 0.0, "mean_score": 3.0}
        for i in range(CSAT_MAX_BARS + 2)
    }
    bars = csat_bars(rows)  # type: ignore[arg-type]
    assert [b.name for b in bars] == [f"intent_{i:02d}" for i in range(CSAT_MAX_BARS)]
    title = csat_title("intent", rows, 14)  # type: ignore[arg-type]
    assert title == f"CSAT by intent, last 14 days ({CSAT_MAX_BARS} of 12 with most answers)"
    shown = csat_html("t", [bar('<b>"x"</b> $5', 1, 2)])
    assert 'alt="t: &lt;b&gt;&quot;x&quot;&lt;/b&gt; $5 50% of 2 answers' in shown
    assert "<b>" not in shown


def test_csat_is_shown_by_intent_and_by_agent(store: SqlConversationStore) -> None:
    assert "no survey answers" in csat_markdown({}, {}, 14)
    answer(store, [("card_arrival", "ann", 5), ("card_arrival", "b|ob", 2)])
    shown = csat_markdown(store.csat_by_intent(), store.csat_by_agent(), 14)
    assert "**50%** (2 answers)" in shown
    assert "| card_arrival | 2 | 50% | 9% to 91% | 3.5 |" in shown
    assert "| ann | 1 | 100% | 21% to 100% | 5.0 |" in shown
    assert "| b\\|ob | 1 | 0% | 0% to 79% | 2.0 |" in shown


@pytest.mark.browser
def test_the_dashboard_tab_plots_csat_with_accessible_names(
    axe_source: str, live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    answer(live_app.bot.store, ANSWERS)
    page = log_in(new_page, live_app.url)
    page.get_by_role("tab", name="Dashboard").click()
    for by, said in (
        ("intent", "card_arrival 50% of 4 answers (95% interval 15% to 85%)"),
        ("agent", "ann 67% of 3 answers (95% interval 21% to 94%)"),
    ):
        plot = page.get_by_role("img", name=re.compile(f"^CSAT by {by}, last 14 days: "))
        plot.wait_for()
        assert said in (plot.get_attribute("alt") or "")
        # Drawn: the PNG decoded, at a readable size.
        assert plot.evaluate("img => img.complete && img.naturalWidth > 300")
        box = plot.bounding_box()
        assert box is not None and box["width"] > 250 and box["height"] > 100
    page.locator("#dashboard-csat").get_by_text("Customer satisfaction, last 14 days").wait_for()
    assert axe_violations(page, source=axe_source) == []

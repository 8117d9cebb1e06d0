"""The agent dashboard's figures: what the store's counts look like, plotted.

Figures are built with the object-oriented matplotlib API (no pyplot state), so
concurrent console sessions cannot draw into each other's plots.

CSAT (customer satisfaction: the share of survey answers of 4 or 5) is plotted by
intent and by agent with each group's number of answers on its bar and a 95% Wilson
interval: a group of 2 answers at 100% must not look like one of 200. Those two plots
are images with a text alternative that says every bar's figures (`csat_html`); the
tables under them (`csat_markdown`) hold the same numbers.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deskbot.bot.store.satisfaction import CsatRow
from deskbot.ui.render import md_text

FALLBACK_KINDS = ("fallback", "clarify")
# The most groups a CSAT plot shows (those with the most answers): more bars than this
# are unreadable at the dashboard's size; the table under the plot lists them all.
CSAT_MAX_BARS = 10
_Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


@dataclass(frozen=True)
class DashboardFigures:
    """The dashboard: a headline line and four plots."""

    headline: str
    turns_per_day: Figure
    automation: Figure
    handoff_reasons: Figure
    top_intents: Figure


def rates(counts: dict[str, Any]) -> dict[str, float | None]:
    """Automation rate (conversations with no handoff) and fallback rate (bot turns that
    clarified or fell back) from `SqlConversationStore.dashboard_counts`; None when no data."""
    conversations = counts["conversations"]
    bot_turns = sum(counts["bot_kinds"].values())
    fallbacks = sum(counts["bot_kinds"].get(k, 0) for k in FALLBACK_KINDS)
    return {
        "automation": (conversations - counts["handed_off"]) / conversations
        if conversations
        else None,
        "fallback": fallbacks / bot_turns if bot_turns else None,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(5.2, 2.8), layout="constrained")
    return fig, fig.add_subplot()


def _barh(title: str, data: dict[str, int], color: str) -> Figure:
    fig, ax = _figure()
    items = sorted(data.items(), key=lambda kv: kv[1])
    if items:
        # "$" would start matplotlib's mathtext; names are shown as they are.
        ax.barh([k.replace("$", r"\$") for k, _ in items], [v for _, v in items], color=color)
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def build_figures(
    counts: dict[str, Any], *, model_version: str, index_version: str | None, days: int
) -> DashboardFigures:
    """The dashboard for `counts` (from `SqlConversationStore.dashboard_counts(days=days)`)."""
    r = rates(counts)
    headline = (
        f"Live intent model **{model_version}**"
        + (f" · FAQ index **{index_version}**" if index_version else "")
        + f" · last {days} days: {counts['conversations']} conversations, "
        f"automation rate **{_pct(r['automation'])}**, fallback rate **{_pct(r['fallback'])}**"
    )

    fig, ax = _figure()
    today = datetime.now(UTC).date()
    span = [today - timedelta(days=i) for i in range(days - 1, -1, -1)]
    per_day = counts["turns_per_day"]
    ax.bar(
        [d.strftime("%m-%d") for d in span],
        [per_day.get(date.isoformat(d), 0) for d in span],
        color="#4c78a8",
    )
    ax.set_title("Customer messages per day", fontsize=10)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.tick_params(axis="y", labelsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    turns_fig = fig

    fig, ax = _figure()
    labels = ["automation", "fallback"]
    values = [(r["automation"] or 0.0) * 100, (r["fallback"] or 0.0) * 100]
    ax.bar(labels, values, color=["#54a24b", "#e45756"])
    ax.set_ylim(0, 110)
    ax.set_ylabel("%", fontsize=8)
    ax.set_title("Automation rate (no human) and fallback rate", fontsize=10)
    for i, v in enumerate(values):
        ax.text(i, v + 2, f"{v:.0f}%", ha="center", fontsize=8)
    rates_fig = fig

    return DashboardFigures(
        headline=headline,
        turns_per_day=turns_fig,
        automation=rates_fig,
        handoff_reasons=_barh("Handoff reasons", counts["handoff_reasons"], "#f58518"),
        top_intents=_barh("Top intents (bot turns)", counts["top_intents"], "#72b7b2"),
    )


def _cell(text: str) -> str:
    """`text` in a Markdown table cell, as the text it is ("|" would end the cell)."""
    return md_text(" ".join(text.split())).replace("|", "\\|")


def csat_markdown(by_intent: dict[str, CsatRow], by_agent: dict[str, CsatRow], days: int) -> str:
    """The customers' satisfaction (CSAT: answers of 4 or 5 of 5) by intent and by agent,
    as two Markdown tables (from `csat_by_intent` and `csat_by_agent`)."""
    if not by_agent:
        return f"Customer satisfaction: no survey answers in the last {days} days."
    answers = sum(row["answers"] for row in by_agent.values())
    satisfied = sum(row["satisfied"] for row in by_agent.values())
    parts = [
        f"Customer satisfaction, last {days} days: **{satisfied / answers:.0%}** "
        f"({answers} answers)"
    ]
    for title, rows in (("intent", by_intent), ("agent", by_agent)):
        lines = [
            f"| {title} | answers | CSAT | 95% interval | mean (1-5) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in rows.items():
            low, high = wilson_interval(row["satisfied"], row["answers"])
            lines.append(
                f"| {_cell(name)} | {row['answers']} | {row['csat']:.0%} "
                f"| {low:.0%} to {high:.0%} | {row['mean_score']:.1f} |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def wilson_interval(satisfied: int, answers: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a share `satisfied / answers` (95% by default).

    Unlike the share plus or minus its standard error, it stays inside 0..1 and is
    wide for a few answers: 1 of 1 satisfied gives (0.21, 1.0), not (1.0, 1.0).

    Example:
        >>> [round(x, 2) for x in wilson_interval(8, 10)]
        [0.49, 0.94]
    """
    if answers <= 0:
        raise ValueError(f"a share needs at least one answer, not {answers}")
    p = satisfied / answers
    z2n = z * z / answers
    center = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / answers + z2n / (4 * answers)) / (1 + z2n)
    # At 0 or all satisfied the bound is the share itself; rounding must not cross it.
    low = 0.0 if satisfied == 0 else max(0.0, min(p, center - half))
    high = 1.0 if satisfied == answers else min(1.0, max(p, center + half))
    return low, high


@dataclass(frozen=True)
class CsatBar:
    """One group's bar of a CSAT plot: its name, answers, CSAT and 95% Wilson interval."""

    name: str
    answers: int
    csat: float
    low: float
    high: float

    def words(self) -> str:
        """The bar in words, for the plot's text alternative."""
        return (
            f"{self.name} {self.csat:.0%} of {self.answers} "
            f"{'answer' if self.answers == 1 else 'answers'} "
            f"(95% interval {self.low:.0%} to {self.high:.0%})"
        )


def csat_bars(rows: dict[str, CsatRow], limit: int = CSAT_MAX_BARS) -> list[CsatBar]:
    """The bars of a CSAT plot from `csat_by_intent` or `csat_by_agent`: the `limit`
    groups with the most answers, most first."""
    ranked = sorted(rows.items(), key=lambda kv: (-kv[1]["answers"], kv[0]))[:limit]
    return [
        CsatBar(name, row["answers"], row["satisfied"] / row["answers"], low, high)
        for name, row in ranked
        for low, high in [wilson_interval(row["satisfied"], row["answers"])]
    ]


def _short(name: str, width: int = 28) -> str:
    # "$" would start matplotlib's mathtext; names are shown as they are.
    shown = name if len(name) <= width else name[: width - 1] + "…"
    return shown.replace("$", r"\$")


def csat_title(by: str, rows: dict[str, CsatRow], days: int) -> str:
    """The title of the CSAT plot `by` intent or agent (it says when groups are left out)."""
    title = f"CSAT by {by}, last {days} days"
    if len(rows) > CSAT_MAX_BARS:
        title += f" ({CSAT_MAX_BARS} of {len(rows)} with most answers)"
    return title


def csat_figure(title: str, bars: list[CsatBar]) -> Figure:
    """Horizontal bars of CSAT (%) with their 95% interval and `n` (answers) beside each."""
    fig = Figure(figsize=(5.2, 0.6 + 0.32 * max(len(bars), 3)), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, 135)  # room right of 100% for the labels
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("% of answers 4 or 5 (of 5); line: 95% interval", fontsize=8)
    ax.tick_params(labelsize=8)
    if not bars:
        ax.text(0.5, 0.5, "no survey answers yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return fig
    shown = bars[::-1]  # barh draws from the bottom: most answers on top
    y = list(range(len(shown)))
    values = [b.csat * 100 for b in shown]
    errors = [
        [max(0.0, b.csat - b.low) * 100 for b in shown],
        [max(0.0, b.high - b.csat) * 100 for b in shown],
    ]
    ax.barh(y, values, color="#4c78a8", xerr=errors, error_kw={"ecolor": "#333", "capsize": 2})
    ax.set_yticks(y, [_short(b.name) for b in shown])
    for i, b in enumerate(shown):
        ax.text(102, i, f"{b.csat:.0%}  n={b.answers}", va="center", fontsize=8)
    return fig


def csat_html(title: str, bars: list[CsatBar]) -> str:
    """The CSAT plot as an HTML image whose text alternative says every bar's figures
    (the title, then each group's CSAT, answers and interval)."""
    buf = io.BytesIO()
    csat_figure(title, bars).savefig(buf, format="png", dpi=100)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    said = "; ".join(b.words() for b in bars) or "no survey answers yet"
    alt = html.escape(f"{title}: {said}.", quote=True)
    return (
        f'<img src="data:image/png;base64,{data}" alt="{alt}" '
        'style="display:block;max-width:100%;height:auto">'
    )


def csat_plots(
    by_intent: dict[str, CsatRow], by_agent: dict[str, CsatRow], days: int
) -> tuple[str, str]:
    """The CSAT plots by intent and by agent (`csat_html`), from `csat_by_intent` and
    `csat_by_agent` over the last `days` days."""
    intent, agent = (
        csat_html(csat_title(by, rows, days), csat_bars(rows))
        for by, rows in (("intent", by_intent), ("agent", by_agent))
    )
    return intent, agent

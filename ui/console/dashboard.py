"""The agent dashboard's figures: what the store's counts look like, plotted.

Figures are built with the object-oriented matplotlib API (no pyplot state), so
concurrent console sessions cannot draw into each other's plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from deskbot.bot.store.satisfaction import CsatRow
from deskbot.ui.render import md_text

FALLBACK_KINDS = ("fallback", "clarify")


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
        lines = [f"| {title} | answers | CSAT | mean (1-5) |", "|---|---:|---:|---:|"]
        lines += [
            f"| {_cell(name)} | {row['answers']} | {row['csat']:.0%} | {row['mean_score']:.1f} |"
            for name, row in rows.items()
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)

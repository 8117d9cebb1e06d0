"""What a nightly run decided, and the report people read: JSON, Markdown and HTML.

The Markdown and HTML come from Jinja2 templates shipped in `templates/` (the HTML one
autoescaped); `report.json` holds the same figures for machines.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

if TYPE_CHECKING:
    from deskbot.training.nightly.quarantine import QuarantinedLabel

PROMOTED = "promoted"
REJECTED = "rejected"
NOTHING_NEW = "nothing-new"

# The metric rows of the two reports (the HTML one has no out-of-scope precision).
MARKDOWN_METRICS = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision", "n")
HTML_METRICS = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "n")

PerIntent = dict[str, dict[str, float]]
Row = dict[str, Any]  # one JSON object of a report: a per-intent change, a quarantined label


@dataclass
class RetrainOutcome:
    """What a run decided, with the candidate's and the live model's figures."""

    decision: str
    run_id: str
    live_before: str | None
    live_after: str | None
    candidate: str | None = None
    reasons: list[str] = field(default_factory=list)
    report_dir: Path | None = None
    metrics: Row = field(default_factory=dict)
    repeated: bool = False
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> Row:
        d = dataclasses.asdict(self)
        d["report_dir"] = str(self.report_dir) if self.report_dir else None
        return d


def public_metrics(metrics: Row) -> Row:
    """The scalar figures of an evaluation (what the reports show)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str) or v is None}


def fmt(x: object) -> str:
    """A report cell: floats with 4 decimals, "–" for none."""
    return f"{x:.4f}" if isinstance(x, float) else ("–" if x is None else str(x))


def intent_changes(
    live_pi: PerIntent, cand_pi: PerIntent, margins: dict[str, dict[str, float]] | None
) -> list[Row]:
    """Each intent's F1 before and after, with its allowed drop, largest drops first."""
    changes: list[Row] = []
    for intent in sorted(set(live_pi) | set(cand_pi)):
        before = live_pi.get(intent, {}).get("f1")
        after = cand_pi.get(intent, {}).get("f1")
        margin = (margins or {}).get(intent, {})
        changes.append(
            {
                "intent": intent,
                "live_f1": before,
                "candidate_f1": after,
                "delta": None if before is None or after is None else after - before,
                "support": (cand_pi.get(intent) or live_pi.get(intent) or {}).get("support", 0),
                "allowed_drop": margin.get("allowed"),
                "drop_se": margin.get("se"),
            }
        )
    changes.sort(key=lambda c: c["delta"] if c["delta"] is not None else 0.0)
    return changes


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("deskbot.training.nightly", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = fmt
    return env


_TEMPLATES = _environment()


def _context(outcome: RetrainOutcome, changes: list[Row], held: list[Row]) -> Row:
    return {
        "o": outcome,
        "m": outcome.metrics,
        "changes": changes,
        "held": held,
        "data_json": json.dumps(outcome.metrics.get("data", {}), indent=2),
        "md_metrics": MARKDOWN_METRICS,
        "html_metrics": HTML_METRICS,
    }


def render(template: str, **context: Any) -> str:
    """A template of `templates/` rendered with `context` (the `num` filter included)."""
    return _TEMPLATES.get_template(template).render(context)


def render_markdown(outcome: RetrainOutcome, changes: list[Row], held: list[Row]) -> str:
    return _TEMPLATES.get_template("report.md.j2").render(_context(outcome, changes, held))


def render_html(outcome: RetrainOutcome, changes: list[Row], held: list[Row]) -> str:
    return _TEMPLATES.get_template("report.html.j2").render(_context(outcome, changes, held))


def write_report(
    out: Path,
    outcome: RetrainOutcome,
    changes: list[Row],
    quarantined: list[QuarantinedLabel] | None = None,
) -> Path:
    """Write `report.json`, `report.md` and `report.html` of a run into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    held = [dataclasses.asdict(q) for q in quarantined or []]
    report = {
        **outcome.to_dict(),
        "report_dir": str(out),
        "per_intent_changes": changes,
        "quarantined_labels": held,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(outcome, changes, held), encoding="utf-8")
    (out / "report.html").write_text(render_html(outcome, changes, held), encoding="utf-8")
    return out

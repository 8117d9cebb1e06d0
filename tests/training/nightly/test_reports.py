"""The retrain reports (Jinja2 templates) say what the hand-built ones said.

`golden/` holds the Markdown and HTML the string-concatenating code wrote for the same
outcomes (commit 03512cb): the Markdown is byte for byte the same; the HTML differs only
in how the escaper spells two entities (`&#34;` for `&quot;`, `&#39;` for `&#x27;`),
which a browser shows alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deskbot.training.nightly.quarantine import QuarantinedLabel
from deskbot.training.nightly.reports import (
    NOTHING_NEW,
    REJECTED,
    RetrainOutcome,
    intent_changes,
    render_html,
    render_markdown,
    write_report,
)

GOLDEN = Path(__file__).parent / "golden"

CHECKS = [
    {
        "name": "accuracy",
        "passed": True,
        "detail": "accuracy 0.9000 vs live 0.8800 (tolerance 0.0)",
    },
    {
        "name": "per_intent_f1",
        "passed": False,
        "detail": "F1 down by more than 0.1: a<b> 0.900->0.700 (allowed drop 0.100)",
        "allowed_drops": {"a<b>": 0.1},
    },
]
FULL = RetrainOutcome(
    REJECTED,
    "20261206T010203-abcdef",
    "v1",
    "v1",
    "20261206T010203-abcdef",
    reasons=[
        "F1 down & more",
        "2 agent labels quarantined for review (ann: 2); later runs train without them until released",
    ],
    metrics={
        "live": {
            "accuracy": 0.88,
            "macro_f1": 0.8,
            "in_scope_accuracy": 0.9,
            "oos_recall": None,
            "oos_precision": 0.5,
            "n": 40,
        },
        "candidate": {
            "accuracy": 0.9,
            "macro_f1": 0.85,
            "in_scope_accuracy": 0.91,
            "oos_recall": 0.75,
            "n": 40,
        },
        "checks": CHECKS,
        "data": {"new_examples": 12, "export": {"by_source": {"agent": 3}}, "note": "<&>"},
    },
)
CHANGES = [
    {
        "intent": "a<b>",
        "live_f1": 0.9,
        "candidate_f1": 0.7,
        "delta": -0.2,
        "support": 12,
        "allowed_drop": 0.1,
        "drop_se": 0.03,
    },
    {
        "intent": "oos",
        "live_f1": None,
        "candidate_f1": 0.5,
        "delta": None,
        "support": 3,
        "allowed_drop": None,
        "drop_se": None,
    },
    {"intent": "card", "live_f1": 1, "candidate_f1": 1.0, "delta": 0.0, "support": 7},
]
HELD = [
    {"label_id": 5, "agent": "ann & co", "turn_id": 17, "intent": "x<y", "live_prediction": None},
    {"label_id": 6, "agent": "bob", "turn_id": 18, "intent": "card", "live_prediction": "card'2"},
]
NOTHING = RetrainOutcome(
    NOTHING_NEW,
    "20261206T000000-000000",
    "v1",
    "v1",
    reasons=["0 new examples (at least 1 needed)"],
    metrics={"data": {"new_examples": 0}},
)
CASES = {
    "full": (FULL, CHANGES, HELD),
    "nothing": (NOTHING, [], []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_markdown_report_is_what_it_was(case: str) -> None:
    outcome, changes, held = CASES[case]
    assert render_markdown(outcome, changes, held) == (GOLDEN / f"{case}.md").read_text()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_html_report_is_what_it_was(case: str) -> None:
    outcome, changes, held = CASES[case]
    before = (GOLDEN / f"{case}.html").read_text()
    before = before.replace("&quot;", "&#34;").replace("&#x27;", "&#39;")
    assert render_html(outcome, changes, held) == before


def test_the_html_report_escapes_what_agents_and_data_wrote() -> None:
    page = render_html(FULL, CHANGES, HELD)
    assert "<td>a&lt;b&gt;</td>" in page and "ann &amp; co" in page
    assert "x<y" not in page and "<&>" not in page


def test_write_report_writes_the_three_files(tmp_path: Path) -> None:
    label = QuarantinedLabel(
        label_id=5,
        turn_id=17,
        agent="ann",
        intent="card",
        live_prediction=None,
        run_id="r",
        reason="disagrees",
        at=0.0,
    )
    out = write_report(tmp_path / "run", FULL, CHANGES, [label])
    saved = json.loads((out / "report.json").read_text())
    assert saved["decision"] == REJECTED and saved["report_dir"] == str(out)
    assert saved["per_intent_changes"] == CHANGES
    assert saved["quarantined_labels"][0]["label_id"] == 5
    md = (out / "report.md").read_text()
    assert "## Labels quarantined for review" in md and "| 5 | ann | 17 | card | – |" in md
    assert (out / "report.html").read_text().startswith("<!doctype html>")


def test_intent_changes_put_the_largest_drop_first() -> None:
    live = {"a": {"f1": 0.9, "support": 10}, "b": {"f1": 0.5, "support": 4}}
    cand = {"a": {"f1": 0.6, "support": 10}, "c": {"f1": 0.7, "support": 2}}
    changes = intent_changes(live, cand, {"a": {"allowed": 0.2, "se": 0.05}})
    assert [c["intent"] for c in changes] == ["a", "b", "c"]
    assert changes[0]["delta"] == pytest.approx(-0.3)
    assert (changes[0]["allowed_drop"], changes[0]["drop_se"]) == (0.2, 0.05)
    assert changes[1]["delta"] is None and changes[2]["support"] == 2

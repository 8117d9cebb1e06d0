"""The label audit: do the night's agent labels agree with the live model as often as
honest labels do?

Mislabelled or poisoned batches teach the candidate wrong answers that a validation
window of a few hundred messages may not show. The live model is a witness that does not
depend on the night: on honest labels of intents it knows, it agrees with the agents at
a rate that its agreement with the validation stream's agent labels tells; shuffled,
careless or malicious labels agree far less. The audit compares the two, for the night
as a whole and for each agent on their own labels, and never looks at the test set
(`intents.test_data`): the reference is the validation window the gate decides on.

How the reference is made, and why (each point was needed on the quarantine test's
tiny model, where a batch 4 in 7 of which were honest passed without it):

- **The same measure on both sides.** Agreement is the live model's best in-scope intent
  (its ranking, the out-of-scope threshold ignored) equal to the label, for the night's
  labels and for the reference alike. The live model's *accuracy* is not that figure:
  it counts a message under the out-of-scope threshold as wrong. On the tests' model its
  accuracy on the window is 0.65 while it agrees with 0.90 of the same labels; a bar
  that low let the poisoned night through (0.486 against a floor of 0.474). Its test
  accuracy (0.69) had stopped it by two messages of 48: luck of a different set, not a
  reason, and a decision on the test set.
- **Agent labels only.** A confirmed turn's label is what a live model predicted, so the
  live model agrees with almost all of them: they would raise the bar for nothing.
- **Per intent.** Agreement depends on the intent (the tiny model: card_arrival 3 of 6,
  the other intents 5 or 6 of 6), and a night's labels rarely have the window's mix
  (the test's are all card_arrival). A set of labels is expected to agree at the mean,
  over its labels, of their intent's rate in the reference, each rate shrunk toward the
  pooled one by `PRIOR` pseudo-labels (6 labels of an intent say little alone). The
  floor is that minus the larger of `audit_margin` and 3 standard errors (a sum of
  Bernoulli trials with those rates).
- **Nobody sets their own bar.** A fifth of the night's labels land in the validation
  stream: poisoned ones would lower the rates the night is held to. So the reference is
  the window's labels given before this night (label ids up to the newest the previous
  run exported) when there are `audit_min_examples` of them, else the whole window
  (the first nights; `reference.source` says which). Within it, an agent is measured
  against the other agents' labels (all of them when the others gave too few), and the
  night as a whole against the labels of the agents it did not flag.

Example:
    >>> audit, best = audit_labels(plan.new, live_dir, stream.window, settings)  # doctest: +SKIP
    >>> audit["agreement"] >= audit["floor"]                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deskbot.bot.nlu.registry import read_manifest
from deskbot.training.data.export import AGENT, Example
from deskbot.training.nightly.settings import RetrainSettings

# Pseudo-labels at the pooled rate added to each intent's rate (a rate from few labels is
# mostly noise; with many it is the intent's own).
PRIOR = 10.0

Rate = Callable[[str], float]


def audit_labels(
    new: Sequence[Example],
    live_dir: Path,
    reference: Sequence[Example],
    settings: RetrainSettings,
    *,
    before_label: int | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """How often the live model agrees with the new agent labels of intents it knows,
    against how often it agrees with the agent labels of `reference` (the validation
    window; see the module docstring). `before_label`: the newest agent label id the
    previous run exported (None: no earlier run).

    Not made (`checked` False) when `audit_margin` is None, or the night or the reference
    holds fewer than `audit_min_examples` agent labels of intents the live model knows.

    Returns:
        the audit (`n`, `agreement`, `expected`, `floor`, `reference`, and `agents`:
        the same figures and `flagged` for each agent), and text key -> the live model's
        best intent for each audited text.
    """
    s = settings
    labels = set(read_manifest(live_dir).labels)
    rows = [e for e in new if e.source == AGENT and e.intent in labels]
    if s.audit_margin is None or len(rows) < s.audit_min_examples:
        return {"checked": False, "n": len(rows)}, {}
    ref = [e for e in reference if e.source == AGENT and e.intent in labels]
    if len(ref) < s.audit_min_examples:
        reason = (
            f"the validation window holds {len(ref)} agent labels of known intents, the "
            f"audit needs {s.audit_min_examples} (audit_min_examples)"
        )
        return {"checked": False, "n": len(rows), "reason": reason}, {}
    older = [e for e in ref if before_label is not None and _newest_label(e) <= before_label]
    source = "validation window, agent labels from before this night"
    if len(older) >= s.audit_min_examples:
        ref = older
    else:
        source = "validation window, agent labels (this night's too: too few from before it)"
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier

    clf = TransformerIntentClassifier(live_dir)
    # Agreement on the best in-scope intent (the ranking ignores the OOS threshold).
    preds = clf.predict([e.text for e in [*rows, *ref]])
    tops = [p.ranking[0][0] if p.ranking else None for p in preds]
    best = {e.key: top for e, top in zip(rows, tops[: len(rows)], strict=True) if top is not None}
    agrees = [best.get(e.key) == e.intent for e in rows]
    ref_agrees = [top == e.intent for e, top in zip(ref, tops[len(rows) :], strict=True)]
    margin = float(s.audit_margin)

    def without(agents: set[str]) -> list[tuple[str, bool]]:
        """The reference without the labels given only by `agents` (too few: all of it)."""
        kept = [
            (e.intent, ok)
            for e, ok in zip(ref, ref_agrees, strict=True)
            if not set(e.agents) <= agents
        ]
        return (
            kept
            if len(kept) >= s.audit_min_examples
            else [(e.intent, ok) for e, ok in zip(ref, ref_agrees, strict=True)]
        )

    by_agent: dict[str, list[tuple[str, bool]]] = {}
    for e, ok in zip(rows, agrees, strict=True):
        for agent in e.agents:
            by_agent.setdefault(agent, []).append((e.intent, ok))
    agents = {
        agent: _judge(by_agent[agent], _rates(without({agent})), margin)
        for agent in sorted(by_agent)
    }
    flagged = {a for a, st in agents.items() if st["flagged"]}
    night_ref = without(flagged)
    audit = {
        "checked": True,
        **_judge(
            [(e.intent, ok) for e, ok in zip(rows, agrees, strict=True)], _rates(night_ref), margin
        ),
        "reference": {
            "source": source,
            "n": len(night_ref),
            "agreement": sum(ok for _, ok in night_ref) / len(night_ref),
        },
        "agents": agents,
    }
    del audit["flagged"]  # the night's verdict is the gate's label_audit check
    return audit, best


def _newest_label(e: Example) -> int:
    return max((label_id for label_id, _ in e.labels), default=0)


def _rates(reference: list[tuple[str, bool]]) -> Rate:
    """intent -> how often honest labels of it agree with the live model (see PRIOR)."""
    pooled = sum(ok for _, ok in reference) / len(reference)
    hits = Counter(y for y, ok in reference if ok)
    seen = Counter(y for y, _ in reference)
    return lambda y: (hits[y] + PRIOR * pooled) / (seen[y] + PRIOR)


def _judge(labels: list[tuple[str, bool]], rate: Rate, margin: float) -> dict[str, Any]:
    """Agreement of `labels` ((intent, agrees) pairs) against what `rate` expects."""
    expected_each = [rate(y) for y, _ in labels]
    n = len(labels)
    expected = sum(expected_each) / n
    se = math.sqrt(sum(p * (1 - p) for p in expected_each)) / n
    floor = expected - max(margin, 3 * se)
    agreement = sum(ok for _, ok in labels) / n
    return {
        "n": n,
        "agreement": agreement,
        "expected": expected,
        "floor": floor,
        "flagged": agreement < floor,
    }

"""The nightly gate: may the candidate replace the live model?

Both models are scored on the validation stream (`deskbot.training.nightly.validation`),
never on the test set; "held-out" below means that validation window. Accuracy not
lower (at the lower bound of a paired bootstrap of the gain), no intent's F1 down by
more than its allowed drop (`f1_margins`: the configured margin, wider for intents with
few held-out examples), out-of-scope recall not lower, and the new agent labels agree
with the live model about as often as its agreement with the validation stream's
agent labels says they should (`deskbot.training.nightly.audit`).

Why the allowed F1 drop depends on held-out support: a fixed margin treats an intent
with 40 held-out examples like one with 400, yet the F1 of a 40-example intent moves by
0.1 when three or four predictions change, and with 77 intents an honest night "drops"
some intent by that much most of the time. So the allowed drop of intent i is

    max(f1_margin, z * se_i)

- `se_i` is the standard error of (live F1 - candidate F1) of intent i, from a paired
  bootstrap: `f1_bootstrap` resamples of the held-out rows, both models scored on the
  same resampled rows. Pairing matters: what the two models predict alike cancels out,
  only the messages whose prediction changed make noise, so a real drop on a
  well-supported intent is still caught at the configured margin.
- `z` is the one-sided normal quantile at `f1_alpha / k`, k the number of gated intents
  (Bonferroni): two equally good models fail the per-intent check through held-out
  sampling noise alone with probability at most about `f1_alpha`.
- `f1_margin` stays the floor: a drop must be material (above the configured margin)
  *and* more than the held-out set's size can explain (above z * se_i) to fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from deskbot.bot.core.errors import DataError
from deskbot.training.data.datasets import OOS_LABEL
from deskbot.training.nightly.settings import RetrainSettings

Check = dict[str, Any]
Margins = dict[str, dict[str, float]]
PerIntent = dict[str, dict[str, float]]


@dataclass
class GateResult:
    passed: bool
    checks: list[Check]

    @property
    def reasons(self) -> list[str]:
        return [c["detail"] for c in self.checks if not c["passed"]]


def f1_margins(
    gold: Sequence[str],
    live_predicted: Sequence[str],
    candidate_predicted: Sequence[str],
    settings: RetrainSettings,
) -> Margins:
    """How far each gated intent's F1 may drop, from both models' held-out predictions.

    The allowed drop of intent i is `max(f1_margin, z * se_i)`: see the module docstring
    for why. With `f1_alpha` None every intent gets `f1_margin`. The resampling is
    seeded with `settings.seed`: the same predictions give the same margins. Labels are
    as `Evaluation` holds them: out of scope is `OOS_LABEL`.

    Returns:
        intent -> {"allowed": the allowed drop, "se": se_i, "z": z, "support": held-out
        examples} for every intent with at least `f1_min_support` held-out examples.
    """
    s = settings
    if not len(gold) == len(live_predicted) == len(candidate_predicted):
        raise DataError("f1_margins: gold and both predictions must have the same length")
    labels = sorted(set(gold) | set(live_predicted) | set(candidate_predicted))
    index = {y: i for i, y in enumerate(labels)}
    n = len(gold)
    gi, ai, bi = (
        np.array([index[y] for y in seq], dtype=np.int64)
        for seq in (gold, live_predicted, candidate_predicted)
    )
    support = np.bincount(gi, minlength=len(labels))
    gated = [
        y for y in labels if y != OOS_LABEL and support[index[y]] >= s.f1_min_support and n > 1
    ]
    if s.f1_alpha is None or not gated:
        return {
            y: {"allowed": s.f1_margin, "se": 0.0, "z": 0.0, "support": int(support[index[y]])}
            for y in gated
        }
    se = _f1_difference_se(gi, ai, bi, len(labels), s)
    z = NormalDist().inv_cdf(1 - s.f1_alpha / len(gated))
    return {
        y: {
            "allowed": max(s.f1_margin, z * float(se[index[y]])),
            "se": float(se[index[y]]),
            "z": z,
            "support": int(support[index[y]]),
        }
        for y in gated
    }


def _f1_difference_se(
    gi: np.ndarray, ai: np.ndarray, bi: np.ndarray, n_labels: int, s: RetrainSettings
) -> np.ndarray:
    """Paired-bootstrap standard error of (live F1 - candidate F1), per label."""
    n = len(gi)
    rng = np.random.default_rng(s.seed)
    diffs = []
    for start in range(0, s.f1_bootstrap, 100):  # chunks keep memory at ~100 x n
        reps = min(100, s.f1_bootstrap - start)
        rows = rng.integers(0, n, size=(reps, n))
        offset = (np.arange(reps, dtype=np.int64) * n_labels)[:, None]
        g_rs = gi[rows] + offset
        diffs.append(
            _f1_by_resample(g_rs, ai[rows] + offset, reps, n_labels)
            - _f1_by_resample(g_rs, bi[rows] + offset, reps, n_labels)
        )
    se: np.ndarray = np.concatenate(diffs).std(axis=0, ddof=1)
    return se


def _f1_by_resample(gold: np.ndarray, pred: np.ndarray, reps: int, n_labels: int) -> np.ndarray:
    """F1 of every label in every resample; labels are offset by resample * n_labels."""
    size = reps * n_labels
    tp = np.bincount(gold[gold == pred], minlength=size)
    denom = np.bincount(gold.ravel(), minlength=size) + np.bincount(pred.ravel(), minlength=size)
    f1: np.ndarray = np.divide(2.0 * tp, denom, out=np.zeros(size), where=denom > 0)
    return f1.reshape(reps, n_labels)


def gate(
    live: dict[str, Any],
    candidate: dict[str, Any],
    live_per_intent: PerIntent,
    candidate_per_intent: PerIntent,
    settings: RetrainSettings,
    audit: dict[str, Any] | None = None,
    margins: Margins | None = None,
    gain: dict[str, Any] | None = None,
) -> GateResult:
    """Decide whether `candidate` may replace `live`; both scored on the same held-out set.

    `margins` (from `f1_margins`) gives each intent's allowed F1 drop; without it every
    intent gets `settings.f1_margin`. `gain` (from `validation.accuracy_gain`) makes the
    accuracy check ask for the lower bound of the gain, not the point estimate, to be at
    least `-accuracy_tolerance`: the nightly job always passes it.
    """
    checks: list[Check] = [
        _accuracy_check(live, candidate, settings, gain),
        _per_intent_check(live_per_intent, candidate_per_intent, settings, margins or {}),
    ]
    lo, co = live.get("oos_recall"), candidate.get("oos_recall")
    if lo is not None and co is not None:
        checks.append(
            {
                "name": "oos_recall",
                "passed": co >= lo - settings.oos_tolerance - 1e-12,
                "detail": f"out-of-scope recall {co:.4f} vs live {lo:.4f}",
            }
        )
    if audit is not None and audit.get("checked"):
        checks.append(
            {
                "name": "label_audit",
                "passed": audit["agreement"] >= audit["floor"],
                "detail": (
                    f"the live model agrees with {audit['agreement']:.3f} of {audit['n']} new "
                    f"agent labels; expected about {audit['expected']:.3f} (floor {audit['floor']:.3f})"
                ),
            }
        )
    return GateResult(all(c["passed"] for c in checks), checks)


def _accuracy_check(
    live: dict[str, Any],
    candidate: dict[str, Any],
    settings: RetrainSettings,
    gain: dict[str, Any] | None,
) -> Check:
    la, ca, tol = live["accuracy"], candidate["accuracy"], settings.accuracy_tolerance
    if gain is None:
        return {
            "name": "accuracy",
            "passed": ca >= la - tol - 1e-12,
            "detail": f"accuracy {ca:.4f} vs live {la:.4f} (tolerance {tol})",
        }
    return {
        "name": "accuracy",
        "passed": gain["lower"] >= -tol - 1e-12,
        "detail": (
            f"validation accuracy {ca:.4f} vs live {la:.4f}: gain {gain['gain']:+.4f}, "
            f"{gain['confidence']:.0%} lower bound {gain['lower']:+.4f} (tolerance {tol}; "
            f"{gain['n']} validation examples, {gain['better']} better, {gain['worse']} worse)"
        ),
        "gain": gain,
    }


def _per_intent_check(
    live_per_intent: PerIntent,
    candidate_per_intent: PerIntent,
    settings: RetrainSettings,
    margins: Margins,
) -> Check:
    drops = []
    allowed_drops: dict[str, float] = {}
    for intent, m in live_per_intent.items():
        if intent == OOS_LABEL or m["support"] < settings.f1_min_support:
            continue
        allowed = margins.get(intent, {}).get("allowed", settings.f1_margin)
        allowed_drops[intent] = round(allowed, 4)
        new_f1 = candidate_per_intent.get(intent, {"f1": 0.0})["f1"]
        if m["f1"] - new_f1 > allowed + 1e-12:
            drops.append(f"{intent} {m['f1']:.3f}->{new_f1:.3f} (allowed drop {allowed:.3f})")
    widest = max(allowed_drops.values(), default=settings.f1_margin)
    scope = (
        f"the allowed drop ({settings.f1_margin} up to {widest:.3f} by held-out support)"
        if widest > settings.f1_margin + 1e-9
        else f"{settings.f1_margin}"
    )
    return {
        "name": "per_intent_f1",
        "passed": not drops,
        "detail": (
            f"F1 down by more than {scope}: {', '.join(drops)}"
            if drops
            else f"no intent's F1 down by more than {scope}"
        ),
        "allowed_drops": allowed_drops,
    }

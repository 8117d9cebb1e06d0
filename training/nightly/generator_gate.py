"""The generator's nightly gate: may a candidate adapter replace the live one?

Both generators (the live adapter, or the base model when none is live, and the
candidate) compose a reply to each of the same held-out cases, never trained on
(`deskbot.training.generator.scoring`). The candidate passes when:

1. **no more refused claims**: the share of its sentences the guard refuses
   (unsupported or contradicted claims, unsupported facts) is not higher than live's,
   beyond `max_refused_increase`. A safety check, so it is strict: the point estimate
   must not rise, whatever the noise; an equally good candidate fails it about half the
   time, and waits for the next night.
2. **and something better**: fewer fallbacks (more cases whose whole reply passed the
   guard) or better answers (ROUGE-L to the reference reply), each judged at the lower
   bound of a paired bootstrap (`bootstrap_lower`, one-sided `alpha`), so that a gain
   the held-out set's size can explain does not promote.
3. **enough evidence**: at least `min_cases` held-out cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deskbot.bot.core.errors import DataError
from deskbot.training.generator.scoring import CaseScore, summarize
from deskbot.training.nightly.gate import Check, GateResult
from deskbot.training.nightly.validation import bootstrap_lower

__all__ = ["GeneratorGateSettings", "gate_generator", "side_by_side"]


@dataclass(frozen=True)
class GeneratorGateSettings:
    """What the generator's gate demands.

    Attributes:
        min_cases: fewer held-out cases than this: no promotion.
        max_refused_increase: the candidate's refused-sentence rate may exceed live's by
            at most this (0: not at all).
        alpha: one-sided level of the paired bootstrap bounds of the gains.
        bootstrap: resamples of the held-out cases.
        seed: for the resampling (the same scores give the same decision).
    """

    min_cases: int = 30
    max_refused_increase: float = 0.0
    alpha: float = 0.05
    bootstrap: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_cases < 1 or self.bootstrap < 100 or not 0 < self.alpha < 0.5:
            raise DataError(
                "generator gate: min_cases >= 1, bootstrap >= 100 and 0 < alpha < 0.5 "
                f"(got {self.min_cases}, {self.bootstrap}, {self.alpha})"
            )


def gate_generator(
    live: Sequence[CaseScore], candidate: Sequence[CaseScore], settings: GeneratorGateSettings
) -> GateResult:
    """Decide on `candidate`; both scored on the same cases, in the same order.

    Raises:
        DataError: the two lists are not the same cases.
    """
    if [s.id for s in live] != [s.id for s in candidate]:
        raise DataError("gate_generator: live and candidate must be scored on the same cases")
    n = len(live)
    lsum, csum = summarize(live), summarize(candidate)
    checks: list[Check] = [
        {
            "name": "held_out_cases",
            "passed": n >= settings.min_cases,
            "detail": f"{n} held-out cases (at least {settings.min_cases})",
        },
        _refused_check(lsum, csum, settings),
        _better_check(live, candidate, settings),
    ]
    return GateResult(all(c["passed"] for c in checks), checks)


def _refused_check(
    live: dict[str, Any], candidate: dict[str, Any], s: GeneratorGateSettings
) -> Check:
    lr, cr = float(live["refused_sentence_rate"]), float(candidate["refused_sentence_rate"])
    return {
        "name": "refused_claims",
        "passed": cr <= lr + s.max_refused_increase + 1e-12,
        "detail": (
            f"refused sentences {cr:.3f} of {candidate['sentences']} vs live {lr:.3f} of "
            f"{live['sentences']} (may rise by {s.max_refused_increase})"
        ),
    }


def _better_check(
    live: Sequence[CaseScore], candidate: Sequence[CaseScore], s: GeneratorGateSettings
) -> Check:
    sent = np.array([int(c.sent) - int(v.sent) for v, c in zip(live, candidate, strict=True)])
    rouge = np.array([c.rouge_l - v.rouge_l for v, c in zip(live, candidate, strict=True)])
    bounds = {
        name: bootstrap_lower(d, reps=s.bootstrap, alpha=s.alpha, seed=s.seed)
        for name, d in (("sent", sent.astype(np.float64)), ("rouge_l", rouge))
    }
    gains = {"sent": float(sent.mean()) if len(sent) else 0.0,
             "rouge_l": float(rouge.mean()) if len(rouge) else 0.0}  # fmt: skip
    better = [name for name, lower in bounds.items() if lower > 0]
    level = f"{1 - s.alpha:.0%}"
    return {
        "name": "better",
        "passed": bool(better),
        "detail": (
            f"sent rate {gains['sent']:+.3f} ({level} lower bound {bounds['sent']:+.3f}), "
            f"ROUGE-L {gains['rouge_l']:+.3f} (lower bound {bounds['rouge_l']:+.3f}): "
            + ("better in " + " and ".join(better) if better else "neither is surely better")
        ),
        "gains": gains,
        "lower_bounds": bounds,
    }


def side_by_side(
    live: Sequence[CaseScore], candidate: Sequence[CaseScore], *, n: int = 12
) -> list[dict[str, Any]]:
    """A sample of cases with both versions' replies, for the report: the cases where the
    two differ most (sent by one only, then the largest ROUGE-L difference) first."""

    def order(pair: tuple[CaseScore, CaseScore]) -> tuple[bool, float, str]:
        v, c = pair
        return (v.sent == c.sent, -abs(c.rouge_l - v.rouge_l), v.id)

    pairs = sorted(zip(live, candidate, strict=True), key=order)[:n]
    return [{"id": v.id, "live": v.to_dict(), "candidate": c.to_dict()} for v, c in pairs]

"""The generator's gate: fewer refused claims is required, and a sure gain of something."""

from __future__ import annotations

import pytest

from deskbot.bot.core.errors import DataError
from deskbot.training.generator.scoring import CaseScore
from deskbot.training.nightly.generator_gate import (
    GeneratorGateSettings,
    gate_generator,
    side_by_side,
)

SETTINGS = GeneratorGateSettings(min_cases=20, bootstrap=500)


def scores(sent: list[bool], refused: list[int], rouge: list[float]) -> list[CaseScore]:
    return [
        CaseScore(f"c{i}", f"reply {i}", s, "ok" if s else "refused", 2, r, g, None)
        for i, (s, r, g) in enumerate(zip(sent, refused, rouge, strict=True))
    ]


def check(result, name):  # type: ignore[no-untyped-def]
    return next(c for c in result.checks if c["name"] == name)


def test_a_candidate_that_sends_many_more_replies_with_no_more_refusals_passes() -> None:
    live = scores([False] * 40, [1] * 40, [0.3] * 40)
    cand = scores([True] * 30 + [False] * 10, [0] * 30 + [1] * 10, [0.3] * 40)
    result = gate_generator(live, cand, SETTINGS)
    assert result.passed, result.reasons
    assert "sent" in check(result, "better")["detail"]


def test_more_refused_sentences_fail_even_with_more_replies_sent() -> None:
    live = scores([False] * 40, [0] * 40, [0.3] * 40)
    cand = scores([True] * 39 + [False], [0] * 39 + [2], [0.5] * 40)
    result = gate_generator(live, cand, SETTINGS)
    assert not result.passed
    assert not check(result, "refused_claims")["passed"]
    assert check(result, "better")["passed"]


def test_a_gain_the_noise_explains_does_not_promote() -> None:
    # One case better, one worse, the rest alike: no sure gain in either measure.
    live = scores([True, False] + [True] * 38, [0] * 40, [0.4] * 40)
    cand = scores([False, True] + [True] * 38, [0] * 40, [0.4] * 39 + [0.41])
    result = gate_generator(live, cand, SETTINGS)
    assert not result.passed
    assert "neither is surely better" in check(result, "better")["detail"]


def test_a_clear_gain_in_answer_quality_alone_passes() -> None:
    live = scores([True] * 40, [0] * 40, [0.2] * 40)
    cand = scores([True] * 40, [0] * 40, [0.2 + 0.01 * (i % 10) + 0.05 for i in range(40)])
    assert gate_generator(live, cand, SETTINGS).passed


def test_too_few_cases_never_promote() -> None:
    live = scores([False] * 5, [1] * 5, [0.1] * 5)
    cand = scores([True] * 5, [0] * 5, [0.9] * 5)
    result = gate_generator(live, cand, SETTINGS)
    assert not result.passed and result.reasons == ["5 held-out cases (at least 20)"]


def test_the_two_must_be_scored_on_the_same_cases() -> None:
    live = scores([True] * 3, [0] * 3, [0.1] * 3)
    with pytest.raises(DataError):
        gate_generator(live, live[::-1], SETTINGS)
    with pytest.raises(DataError):
        GeneratorGateSettings(alpha=0.7)


def test_side_by_side_puts_the_cases_that_differ_first() -> None:
    live = scores([True, True, False], [0, 0, 1], [0.5, 0.5, 0.1])
    cand = scores([True, True, True], [0, 0, 0], [0.5, 0.9, 0.4])
    rows = side_by_side(live, cand, n=2)
    assert [r["id"] for r in rows] == ["c2", "c1"]
    assert rows[0]["live"]["sent"] is False and rows[0]["candidate"]["sent"] is True

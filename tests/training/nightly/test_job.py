"""The nightly job on a real store and a real (tiny) model: promote, reject, lock, kill, repeat."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deskbot.bot.core.types import OUT_OF_SCOPE
from deskbot.bot.nlu.registry import KNN_FILE, read_manifest
from deskbot.bot.store import SqlConversationStore, create_store_engine
from deskbot.training.data.datasets import OOS_LABEL
from deskbot.training.nightly.job import (
    NOTHING_NEW,
    PROMOTED,
    REJECTED,
    RetrainBusy,
    RetrainJob,
    RetrainLock,
    RetrainSettings,
    f1_margins,
    gate,
)
from tests.conftest import TEST_INTENTS
from tests.training.conftest import (
    TINY_NIGHT,
    banking_splits,
    labelled,
    nightly_job,
    retrain_world,
)
from tests.training.nightly.sides import TRAIN, VALIDATION, on_side

# Tiny nights, no label audit, no minimum of validation examples (no gate on quality
# anyway); a new intent is learnt from 5 examples.
LENIENT: dict[str, Any] = {
    **TINY_NIGHT,
    "audit_margin": None,
    "min_new_intent_examples": 5,
    "gate_min_examples": 0,
}


@pytest.fixture
def setup(tmp_path: Path, trained_model_dir: Path, small_intents):  # type: ignore[no-untyped-def]
    """A registry with the session's tiny model live, an empty store, data to log."""
    registry, store, heldout, rows = retrain_world(
        tmp_path, trained_model_dir, small_intents, heldout_per_intent=4
    )
    return registry, store, small_intents, heldout, rows, banking_splits()[0]


def log_labels(
    store: SqlConversationStore, rows: list[tuple[str, str]], agent: str = "ann"
) -> None:
    """Customer messages, the bot's replies, and an agent's label on each."""
    for text, intent in rows:
        labelled(store, text, intent, agent)


def job_for(setup, tmp_path: Path, **settings) -> RetrainJob:  # type: ignore[no-untyped-def]
    registry, store, base, heldout, _, _ = setup
    night = RetrainSettings(**{**LENIENT, **settings})
    return nightly_job(store, registry, base, heldout, night, tmp_path / "reports")


@pytest.mark.slow
def test_a_night_promotes_reports_and_is_idempotent(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry, store, _, heldout, rows, train = setup
    new_intent = on_side(
        [(t, y) for t, y in zip(train.texts, train.labels, strict=True) if y == "card_swallowed"],
        TRAIN,
    )
    # 24 messages to learn, 6 that validate: never trained on
    validating = on_side(rows, VALIDATION)[:6]
    log_labels(store, on_side(rows, TRAIN)[:24] + new_intent[:3] + validating)
    # a held-out text labelled by an agent must never reach training
    log_labels(store, [(heldout.texts[0], heldout.labels[0])])
    job = job_for(setup, tmp_path)

    first = job.run()
    assert first.decision == PROMOTED
    assert registry.live_version() == first.candidate != "v1"
    live = read_manifest(registry.live_dir())
    assert "card_swallowed" not in live.labels  # 3 examples < 5: held back, reported
    data = first.metrics["data"]
    assert data["new_intents_held_back"] == {"card_swallowed": 3}
    assert data["export"]["left_out"]["heldout"] == 1
    assert data["new_examples"] == 24
    assert data["validation"]["examples"] == data["validation"]["in_window"] == 6
    assert first.metrics["live"]["n"] == 6  # the gate's figures: the validation window
    assert first.metrics["test"]["live"]["n"] == len(heldout)  # reported only
    assert data["replayed"] >= 2 * len(TEST_INTENTS)
    assert registry.history()[-1]["reason"].startswith("retrain")
    report = first.report_dir
    assert report is not None
    for name in ("report.json", "report.md", "report.html", "candidate/confusion_matrix.png"):
        assert (report / name).is_file(), name
    saved = json.loads((report / "report.json").read_text())
    assert saved["decision"] == PROMOTED and saved["per_intent_changes"]
    md, page = (report / "report.md").read_text(), (report / "report.html").read_text()
    assert md.startswith(f"# Retraining run {first.run_id}: promoted\n")
    assert f"- live before: `v1`; live after: `{first.candidate}`" in md
    assert "![confusion matrix](candidate/confusion_matrix.png)" in md
    assert "## Test set (reported only, never decided on)" in md
    assert (report / "candidate-test" / "confusion_matrix.png").is_file()
    for check in first.metrics["checks"]:
        line = f"- {'PASS' if check['passed'] else 'FAIL'} {check['name']}: {check['detail']}"
        assert line in md
    assert '"new_examples": 24' in md and "## Per-intent F1 (largest drops first)" in md
    for change in saved["per_intent_changes"]:
        assert f"| {change['intent']} | " in md
        assert f"<tr><td>{change['intent']}</td>" in page
    assert f"<h1>Retraining run {first.run_id}: promoted</h1>" in page
    assert not any((registry.root / ".retrain" / "candidates").iterdir())

    # nothing new since: no training, no new version; asking again repeats the decision
    versions = registry.versions()
    second = job.run()
    assert second.decision == NOTHING_NEW
    third = job.run()
    assert (third.decision, third.run_id, third.repeated) == (NOTHING_NEW, second.run_id, True)
    assert second.report_dir is not None
    md = (second.report_dir / "report.md").read_text()
    assert md.startswith(f"# Retraining run {second.run_id}: nothing-new\n")
    assert "- reason: 0 new examples (at least 1 needed)" in md and "## Gate" not in md
    assert registry.versions() == versions

    # enough examples of the new intent now: it is learnt
    log_labels(store, new_intent[3:6])
    fourth = job.run()
    assert fourth.decision == PROMOTED
    assert fourth.metrics["data"]["new_intents_added"] == ["card_swallowed"]
    assert "card_swallowed" in read_manifest(registry.live_dir()).labels


@pytest.mark.slow
def test_a_worse_candidate_is_rejected_and_live_is_untouched(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry, store, _, _, rows, _ = setup
    # every message to learn labelled as one intent, learnt hard: the candidate gets
    # worse on the validation stream, labelled right
    log_labels(store, [(t, "age_limit") for t, _ in on_side(rows, TRAIN)[:96]])
    log_labels(store, on_side(rows, VALIDATION)[:30])
    job = job_for(
        setup,
        tmp_path,
        accuracy_tolerance=0.0,
        f1_margin=0.1,
        gate_min_examples=20,
        train_args=POISONED_NIGHT,
    )
    outcome = job.run()
    assert outcome.decision == REJECTED
    assert outcome.reasons and "validation accuracy" in " ".join(outcome.reasons)
    assert registry.live_version() == "v1" and registry.versions() == ["v1"]
    assert outcome.metrics["candidate"]["accuracy"] < outcome.metrics["live"]["accuracy"]
    again = job.run()
    assert (again.decision, again.repeated) == (REJECTED, True)


# A night that learns its labels hard: 9 steps at a high learning rate.
POISONED_NIGHT = {"max_steps": 9, "batch_size": 16, "lr": 5e-4, "head_lr": 2e-2, "patience": 0}


def out_of_scope_bank_rows(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model_dir / KNN_FILE), "pt") as f:
        names = set(f.keys())
        return f.get_slice("oos_embeddings").get_shape()[0] if "oos_embeddings" in names else 0


@pytest.mark.slow
def test_out_of_scope_labels_fit_the_detector_and_later_nights_keep_them(  # type: ignore[no-untyped-def]
    setup, tmp_path: Path
) -> None:
    registry, store, _, _, rows, train = setup
    assert out_of_scope_bank_rows(registry.live_dir()) == 0
    # agents mark messages of a topic the bot must not answer
    unwanted = [
        t
        for t, y in on_side(list(zip(train.texts, train.labels, strict=True)), TRAIN)
        if y == "card_swallowed"
    ]
    rows = on_side(rows, TRAIN)
    log_labels(store, [(t, OUT_OF_SCOPE) for t in unwanted[:8]] + rows[:8])
    first = job_for(setup, tmp_path).run()
    assert first.decision == PROMOTED
    live = read_manifest(registry.live_dir())
    assert live.oos_method == "knn_contrast" and OOS_LABEL not in live.labels
    kept = out_of_scope_bank_rows(registry.live_dir())
    assert 6 <= kept <= 8  # the rest validate the threshold

    # a later night replays only part of what is known, but every marked message
    log_labels(store, rows[8:12])
    second = job_for(setup, tmp_path, replay_ratio=0.5).run()
    assert second.decision == PROMOTED and registry.live_version() == second.candidate
    assert read_manifest(registry.live_dir()).oos_method == "knn_contrast"
    assert out_of_scope_bank_rows(registry.live_dir()) == kept


def test_the_gate_rules() -> None:
    s = RetrainSettings(f1_margin=0.05, f1_min_support=1)
    live = {"accuracy": 0.80, "oos_recall": 0.5}
    pi = {"a": {"f1": 0.9, "support": 10}, "b": {"f1": 0.7, "support": 10}}
    assert gate(live, {"accuracy": 0.81, "oos_recall": 0.5}, pi, pi, s).passed
    assert not gate(live, {"accuracy": 0.79, "oos_recall": 0.5}, pi, pi, s).passed
    assert not gate(live, {"accuracy": 0.85, "oos_recall": 0.4}, pi, pi, s).passed
    worse_b = {"a": {"f1": 1.0, "support": 10}, "b": {"f1": 0.6, "support": 10}}
    verdict = gate(live, {"accuracy": 0.85, "oos_recall": 0.5}, pi, worse_b, s)
    assert not verdict.passed and "b 0.700->0.600" in verdict.reasons[0]
    audit = {"checked": True, "n": 300, "agreement": 0.55, "expected": 0.8, "floor": 0.7}
    assert not gate(live, {"accuracy": 0.85, "oos_recall": 0.5}, pi, pi, s, audit).passed
    assert gate(
        live, {"accuracy": 0.85, "oos_recall": 0.5}, pi, pi, s, audit | {"agreement": 0.75}
    ).passed


def test_two_runs_never_hold_the_lock_at_once(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with RetrainLock(path), pytest.raises(RetrainBusy, match=f"pid {os.getpid()}"):
        RetrainLock(path).__enter__()
    # a holder killed with SIGKILL leaves no stale lock behind
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time;from deskbot.training.nightly.job import RetrainLock;"
            "lock=RetrainLock(sys.argv[1]);lock.__enter__();print('held',flush=True);time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(RetrainBusy):
        RetrainLock(path).__enter__()
    proc.kill()
    proc.wait()
    with RetrainLock(path):
        pass


@pytest.mark.postgres
def test_the_postgres_advisory_lock_excludes_a_second_run(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = create_store_engine(postgres_url)
    with RetrainLock(tmp_path / "a", engine=engine), pytest.raises(RetrainBusy, match="advisory"):
        RetrainLock(tmp_path / "b", engine=engine).__enter__()
    with RetrainLock(tmp_path / "b", engine=engine):
        pass
    engine.dispose()


def _noisy_model(gold: list[str], labels: list[str], accuracy: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [y if rng.random() < accuracy else rng.choice(labels) for y in gold]


def test_allowed_f1_drops_scale_with_held_out_support() -> None:
    """Equally good models: a fixed 0.1 margin fails most nights, the scaled one few."""
    labels = [f"intent_{k}" for k in range(77)]
    gold = [labels[k % 77] for k in range(77 * 40)]  # 40 held-out examples each
    s = RetrainSettings(f1_bootstrap=300)
    fixed = RetrainSettings(f1_alpha=None)
    failed = {"fixed": 0, "scaled": 0}
    nights = 12
    for night in range(nights):
        live = _noisy_model(gold, labels, 0.86, 2 * night)
        cand = _noisy_model(gold, labels, 0.86, 2 * night + 1)
        ev = {"accuracy": 0.86}
        lp, cp = per_intent_f1(gold, live), per_intent_f1(gold, cand)
        failed["fixed"] += not gate(ev, ev, lp, cp, fixed).passed
        margins = f1_margins(gold, live, cand, s)
        verdict = gate(ev, ev, lp, cp, s, margins=margins)
        failed["scaled"] += not verdict.passed
        allowed = next(c for c in verdict.checks if c["name"] == "per_intent_f1")
        assert allowed["allowed_drops"] == {y: round(margins[y]["allowed"], 4) for y in labels}
    assert failed["fixed"] >= nights * 3 // 4
    assert failed["scaled"] <= 2

    # a real regression of one 40-example intent is still caught
    live = _noisy_model(gold, labels, 0.86, 100)
    cand = [
        "intent_1" if g == "intent_0" and k % 2 else p
        for k, (g, p) in enumerate(zip(gold, live, strict=True))
    ]
    margins = f1_margins(gold, live, cand, s)
    lp, cp = per_intent_f1(gold, live), per_intent_f1(gold, cand)
    verdict = gate({"accuracy": 0.86}, {"accuracy": 0.86}, lp, cp, s, margins=margins)
    assert not verdict.passed and "intent_0 " in verdict.reasons[0]
    assert margins["intent_0"]["allowed"] > s.f1_margin  # wider than the floor, still caught

    # many held-out examples: the allowed drop falls to the configured floor
    big_gold = ["a"] * 2000 + ["b"] * 2000
    big_live = _noisy_model(big_gold, ["a", "b"], 0.95, 1)
    same = f1_margins(big_gold, big_live, list(big_live), s)
    assert same["a"] == {"allowed": s.f1_margin, "se": 0.0, "z": same["a"]["z"], "support": 2000}
    assert f1_margins(big_gold, big_live, list(big_live), s) == same  # seeded: repeatable


def per_intent_f1(gold: list[str], predicted: list[str]) -> dict[str, dict[str, float]]:
    from deskbot.training.intents.evaluation import Evaluation, per_intent

    return per_intent(Evaluation(gold, predicted, [1.0] * len(gold), {}))

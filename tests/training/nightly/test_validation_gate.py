"""The nightly gate decides on a validation stream of its own, never on the test set.

Real store, real tiny models: the split is stable from night to night, the gate refuses
to score on the test data, a night with too few validation examples is not promoted, old
settings keep working with a notice, and a candidate is judged by the validation stream
whatever the test set says of it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from deskbot.bot.core.errors import DataError
from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.store import SqlConversationStore
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import export_examples, heldout_keys, text_key
from deskbot.training.nightly import job as job_module
from deskbot.training.nightly.job import (
    HELDOUT_NOTICE,
    PROMOTED,
    REJECTED,
    RetrainJob,
    RetrainSettings,
    gate,
)
from deskbot.training.nightly.validation import accuracy_gain, assert_disjoint, split_stream
from tests.training.conftest import labelled, retrain_world
from tests.training.nightly.sides import TRAIN, VALIDATION, on_side, side_of
from tests.training.nightly.test_job import LENIENT, POISONED_NIGHT, log_labels

World = tuple[ModelRegistry, SqlConversationStore, IntentDataset, IntentDataset, list[Any]]


@pytest.fixture
def world(tmp_path: Path, trained_model_dir: Path, small_intents: IntentDataset) -> World:
    registry, store, test, rows = retrain_world(
        tmp_path, trained_model_dir, small_intents, heldout_per_intent=4
    )
    return registry, store, small_intents, test, rows


def new_job(world: World, tmp_path: Path, **settings: Any) -> RetrainJob:
    registry, store, base, test, _ = world
    return RetrainJob(
        store=store,
        registry=registry,
        base_data=base,
        test_data=test,
        settings=RetrainSettings(**{**LENIENT, **settings}),
        reports_dir=tmp_path / "reports",
    )


def test_the_split_is_stable_from_night_to_night(store: SqlConversationStore) -> None:
    """An example's side never changes; validation examples are never trained on; the
    gate's window is the newest validation examples and rolls on."""
    from tests.training.conftest import banking_splits

    train, _ = banking_splits()
    unique = {text_key(t): (t, y) for t, y in zip(train.texts, train.labels, strict=True)}
    pool = list(unique.values())[:450]
    s = RetrainSettings(gate_window=25, gate_min_examples=10)
    known: dict[str, str] = {}
    sides: dict[str, str] = {}
    windows = []
    for night in range(3):
        logged = pool[night * 150 : (night + 1) * 150]
        for text, intent in logged:
            labelled(store, text, intent)
        exported = export_examples(store)
        stream = split_stream(exported, known, s)
        for e in stream.train.examples:
            assert sides.setdefault(e.key, TRAIN) == TRAIN
        validation = [
            e for e in exported.examples if e.key not in known and e not in stream.train.examples
        ]
        for e in validation:
            assert sides.setdefault(e.key, VALIDATION) == VALIDATION
            assert e.key not in known  # never trained on
        newest = sorted(validation, key=lambda e: e.turn_id)[-25:]
        assert stream.window == newest[::-1]
        assert stream.total == len(validation)
        assert stream.total == sum(side_of(t) == VALIDATION for t, _ in pool[: 150 * (night + 1)])
        assert 0.12 < stream.total / (150 * (night + 1)) < 0.28
        known.update({e.key: e.intent for e in stream.train.examples})  # the night's learning
        windows.append({e.key for e in stream.window})
    assert not windows[0] & windows[2]  # rolled on: no set decides for ever
    # a larger share later moves nothing already trained on into validation
    wider = split_stream(export_examples(store), known, RetrainSettings(validation_share=0.5))
    assert not {e.key for e in wider.window} & set(known)
    assert wider.trained_before > 0


def test_the_guard_refuses_to_gate_on_the_test_data() -> None:
    test = IntentDataset(("my card is lost", "what is the rate"), ("a", "b"), "test", "t")
    keys = heldout_keys(test)
    with pytest.raises(DataError, match=r"shares 2 texts with the test data \(it is the test"):
        assert_disjoint(test, keys)
    partial = IntentDataset(("My card is lost!", "new words"), ("a", "b"), "validation", "v")
    with pytest.raises(DataError, match="shares 1 texts with the test data: the gate never"):
        assert_disjoint(partial, keys)
    assert_disjoint(IntentDataset(("new words",), ("b",), "validation", "w"), keys)


def test_a_job_whose_validation_would_hold_test_texts_refuses_to_run(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, store, _, test, rows = world
    # an export that forgot to keep the test texts out
    real = export_examples
    monkeypatch.setattr(
        job_module, "export_examples", lambda st, **kw: real(st, **{**kw, "heldout": ()})
    )
    leaked = on_side(list(zip(test.texts, test.labels, strict=True)), VALIDATION)
    assert leaked
    log_labels(store, on_side(rows, VALIDATION)[:20] + leaked[:1])
    with pytest.raises(DataError, match="shares 1 texts with the test data"):
        new_job(world, tmp_path).run()
    assert registry.live_version() == "v1" and registry.versions() == ["v1"]


def test_too_few_validation_examples_the_night_is_not_promoted(
    world: World, tmp_path: Path
) -> None:
    registry, store, _, _, rows = world
    log_labels(store, on_side(rows, TRAIN)[:20] + on_side(rows, VALIDATION)[:7])
    job = new_job(world, tmp_path, gate_min_examples=8)
    outcome = job.run()
    assert outcome.decision == REJECTED and outcome.candidate is None
    assert outcome.reasons == [
        "the validation stream holds 7 examples, the gate needs at least 8 "
        "(gate_min_examples): not promoted, nothing trained; the 20 new examples wait "
        "for a night with enough"
    ]
    assert registry.live_version() == "v1" and registry.versions() == ["v1"]
    assert "train_s" not in outcome.metrics.get("timings", {})
    assert outcome.report_dir is not None
    md = (outcome.report_dir / "report.md").read_text()
    assert f"- reason: {outcome.reasons[0]}" in md
    # one more validation example: the night is judged (and, with no bar on quality, promoted)
    log_labels(store, on_side(rows, VALIDATION)[7:8])
    judged = job.run()
    assert not judged.repeated and judged.decision == PROMOTED
    assert judged.metrics["live"]["n"] == 8


def test_old_settings_and_the_old_heldout_argument_get_a_notice(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry, store, base, test, rows = world
    old = tmp_path / "retrain.yaml"
    old.write_text("epochs: 1\naudit_margin: null\n")
    settings = RetrainSettings.from_file(old)
    assert len(settings.notices) == 1
    assert (
        "intents.test_data is scored and reported only, never decided on" in (settings.notices[0])
    )
    new = tmp_path / "new.yaml"
    new.write_text("epochs: 1\ngate_min_examples: 30\n")
    assert RetrainSettings.from_file(new).notices == ()
    assert RetrainSettings.from_file(new) == RetrainSettings(epochs=1, gate_min_examples=30)

    log_labels(store, on_side(rows, TRAIN)[:4])
    job = RetrainJob(
        store=store, registry=registry, base_data=base, heldout=test, settings=settings
    )
    with caplog.at_level(logging.WARNING, logger="deskbot.training.nightly.job"):
        outcome = job.run()  # too few validation examples: no training, still a report
    assert outcome.notices == [settings.notices[0], HELDOUT_NOTICE]
    logged = [r.getMessage() for r in caplog.records if r.name == "deskbot.training.nightly.job"]
    assert logged == outcome.notices
    assert outcome.report_dir is not None
    md = (outcome.report_dir / "report.md").read_text()
    page = (outcome.report_dir / "report.html").read_text()
    for notice in outcome.notices:
        assert f"- notice: {notice}" in md
    assert "Notice: RetrainJob(heldout=...) is the test data" in page
    with pytest.raises(DataError, match="pass one"):
        RetrainJob(store=store, registry=registry, base_data=base, heldout=test, test_data=base)


def test_the_accuracy_check_asks_for_the_lower_bound_of_the_gain() -> None:
    s = RetrainSettings(f1_margin=1.0, f1_bootstrap=500)
    gold = ["a"] * 100
    live = ["a"] * 80 + ["b"] * 20
    point = {"accuracy": 0.8}

    def verdict(cand: list[str], **kw: Any) -> bool:
        st = RetrainSettings(**{"f1_margin": 1.0, "f1_bootstrap": 500, **kw})
        gain = accuracy_gain(gold, live, cand, st)
        acc = {"accuracy": sum(c == "a" for c in cand) / len(cand)}
        return gate(point, acc, {}, {}, st, gain=gain).passed

    same = accuracy_gain(gold, live, live, s)
    assert (same["gain"], same["lower"], same["better"], same["worse"]) == (0.0, 0.0, 0, 0)
    assert verdict(live)
    # 5 fixed, none broken: better at every resample
    assert verdict(["a"] * 85 + ["b"] * 15)
    # 6 fixed, 4 broken: a point gain of 0.02 the 100 rows cannot tell from noise
    noisy = ["a"] * 76 + ["b"] * 4 + ["a"] * 6 + ["b"] * 14
    gain = accuracy_gain(gold, live, noisy, s)
    assert gain["gain"] == pytest.approx(0.02) and gain["lower"] < 0
    assert not verdict(noisy)
    assert verdict(noisy, accuracy_tolerance=0.05)  # within the tolerance
    assert accuracy_gain(gold, live, noisy, s) == gain  # seeded: repeatable


@pytest.mark.slow
@pytest.mark.parametrize("test_labels", ["live", "age_limit"])
def test_the_gate_follows_the_validation_stream_not_the_test_set(
    world: World, tmp_path: Path, test_labels: str
) -> None:
    """Agents label every message to learn "age_limit", and the night learns it hard.

    "live": the validation stream is labelled the same way, the test set as the live
    model predicts it (live is perfect there): the candidate is worse on the test set,
    better on the validation stream: promoted.
    "age_limit": the validation stream is labelled right, the test set "age_limit": the
    candidate is better on the test set, worse on the validation stream: rejected.
    """
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier

    registry, store, base, test, rows = world
    log_labels(store, [(t, "age_limit") for t, _ in on_side(rows, TRAIN)[:96]])
    validating = on_side(rows, VALIDATION)[:30]
    if test_labels == "live":
        log_labels(store, [(t, "age_limit") for t, _ in validating])
        live = TransformerIntentClassifier(registry.live_dir()).predict(list(test.texts))
        test = IntentDataset(test.texts, tuple(p.intent for p in live), "live's test", "l")
    else:
        log_labels(store, validating)
        test = IntentDataset(test.texts, ("age_limit",) * len(test), "age_limit test", "a")
    job = RetrainJob(
        store=store,
        registry=registry,
        base_data=base,
        test_data=test,
        settings=RetrainSettings(
            **{
                **LENIENT,
                "accuracy_tolerance": 0.0,
                "gate_min_examples": 20,
                "train_args": POISONED_NIGHT,
            }
        ),
        reports_dir=tmp_path / "reports",
    )
    outcome = job.run()
    m = outcome.metrics
    on_test = m["test"]["candidate"]["accuracy"] - m["test"]["live"]["accuracy"]
    on_validation = m["candidate"]["accuracy"] - m["live"]["accuracy"]
    assert m["live"]["n"] == 30 and m["test"]["live"]["n"] == len(test)
    if test_labels == "live":
        assert m["test"]["live"]["accuracy"] == 1.0
        assert on_test < 0 < on_validation
        assert outcome.decision == PROMOTED and registry.live_version() == outcome.candidate
    else:
        assert on_validation < 0 < on_test
        assert outcome.decision == REJECTED and registry.live_version() == "v1"
        assert "validation accuracy" in outcome.reasons[0]

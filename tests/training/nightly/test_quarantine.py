"""Quarantine of suspicious agent labels: a rejected night's bad labels do not poison the next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.store import SqlConversationStore
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import AGENT, CONFIRMED, Example, export_examples, text_key
from deskbot.training.nightly.job import PROMOTED, REJECTED
from deskbot.training.nightly.quarantine import (
    LabelQuarantine,
    QuarantinedLabel,
    suspects,
    withdraw_agent,
)
from tests.conftest import TEST_INTENTS
from tests.training.conftest import labelled, nightly_job, retrain_world, tiny_night
from tests.training.nightly.sides import TRAIN, VALIDATION, on_side


def entry(label_id: int, agent: str, run_id: str | None = "r1") -> QuarantinedLabel:
    return QuarantinedLabel(label_id, agent, "age_limit", label_id, None, run_id, "test", 0.0)


def test_quarantine_file_add_release_and_filters(tmp_path: Path) -> None:
    q = LabelQuarantine(tmp_path / "q.json")
    assert q.label_ids() == frozenset() and q.entries() == []
    assert q.add([entry(1, "ann"), entry(2, "bob"), entry(3, "bob", run_id="r2")]) == 3
    assert q.add([entry(1, "ann"), entry(4, "ann")]) == 1  # already held: not counted again
    assert q.label_ids() == {1, 2, 3, 4}
    assert q.summary() == {
        "labels": 4,
        "by_agent": {"ann": 2, "bob": 2},
        "by_run": {"r1": 3, "r2": 1},
    }
    with pytest.raises(Exception, match="release what"):
        q.release()
    assert q.release(agent="bob", run_id="r2") == 1
    assert q.release(label_ids=[4, 99]) == 1
    assert LabelQuarantine(tmp_path / "q.json").label_ids() == {1, 2}  # persisted
    assert q.release(everything=True) == 2 and q.label_ids() == frozenset()


def ex(text: str, intent: str, labels: tuple[tuple[int, str], ...]) -> Example:
    return Example(text, intent, AGENT if labels else CONFIRMED, ord(text), labels)


def test_suspects_follow_the_audit() -> None:
    new = [
        ex("a", "x", ((1, "ann"),)),  # the live model agrees
        ex("b", "x", ((2, "ann"),)),  # disagrees
        ex("c", "y", ((3, "mal"), (4, "ann"))),  # disagrees; two agents gave it
        ex("d", "z", ((5, "mal"),)),  # an intent the live model does not know
        ex("e", "x", ()),  # a confirmed prediction: never quarantined
    ]
    predicted = {text_key(t): p for t, p in [("a", "x"), ("b", "y"), ("c", "x"), ("e", "y")]}
    base = {"checked": True, "n": 3, "expected": 0.8}
    ok = {**base, "agreement": 0.75, "floor": 0.7}
    assert suspects(new, ok, predicted, run_id="r") == []  # audit passed: labels stay
    assert suspects(new, {"checked": False, "n": 3}, predicted, run_id="r") == []
    # one agent stands out: only their labels, the disagreeing and the unverifiable
    agents = {
        "ann": {"n": 3, "agreement": 0.67, "floor": 0.4, "flagged": False},
        "mal": {"n": 1, "agreement": 0.0, "floor": 0.5, "flagged": True},
    }
    bad = {**base, "agreement": 0.3, "floor": 0.7, "agents": agents}
    held = suspects(new, bad, predicted, run_id="r")
    assert [(q.label_id, q.agent) for q in held] == [(3, "mal"), (5, "mal")]
    assert held[0].live_prediction == "x" and "mal's labels" in held[0].reason
    assert held[0].run_id == "r" and held[0].turn_id == ord("c")
    # the batch failed but nobody stands out: every disagreeing label, any agent
    pooled = {**bad, "agents": {a: {**st, "flagged": False} for a, st in agents.items()}}
    held = suspects(new, pooled, predicted, run_id="r")
    assert sorted(q.label_id for q in held) == [2, 3, 4]


def test_export_skips_quarantined_labels_and_withdraw(
    store: SqlConversationStore, tmp_path: Path
) -> None:
    a1, _, _ = labelled(store, "my card has not arrived", "card_arrival", "ann")
    a2, _, _ = labelled(store, "my card has not arrived", "card_arrival", "mal")  # same text
    m1, m1_turn, _ = labelled(store, "what is the age limit", "card_arrival", "mal")
    ids = {a1, a2, m1}
    assert len(ids) == 3
    full = export_examples(store)
    by_text = {e.text: e for e in full.examples}
    assert by_text["my card has not arrived"].labels == ((a1, "ann"), (a2, "mal"))
    assert by_text["my card has not arrived"].agents == ("ann", "mal")

    q = LabelQuarantine(tmp_path / "q.json")
    assert withdraw_agent(store, q, "mal") == 2
    held = {e.label_id: e for e in q.entries()}
    assert held[m1].turn_id == m1_turn and held[m1].intent == "card_arrival"
    assert held[m1].run_id is None and held[m1].reason == "withdrawn by hand"
    after = export_examples(store, exclude_labels=q.label_ids())
    assert after.stats["quarantined_labels"] == 2
    assert {e.text: e.labels for e in after.examples} == {
        "my card has not arrived": ((a1, "ann"),)  # ann's label of the same text stands
    }
    assert q.release(agent="mal") == 2
    assert len(export_examples(store, exclude_labels=q.label_ids()).examples) == 2


# ann labels honestly; mallory gives every message the next intent's label
SHIFT = {y: TEST_INTENTS[(i + 1) % len(TEST_INTENTS)] for i, y in enumerate(TEST_INTENTS)}


def poisoned_world(
    tmp_path: Path, model_dir: Path, small_intents: IntentDataset
) -> tuple[ModelRegistry, SqlConversationStore, IntentDataset, set[int]]:
    """v1 live; ann's honest labels of 30 messages to learn and of 6 validating messages of
    each intent; mallory's 40 wrong ones (each the next intent's). Returns the registry,
    the store, the test set and mallory's label ids."""
    registry, store, heldout, rows = retrain_world(
        tmp_path, model_dir, small_intents, heldout_per_intent=6
    )
    learn = on_side(rows, TRAIN)
    validating = on_side(rows, VALIDATION)
    for text, intent in learn[:30] + [
        r for y in TEST_INTENTS for r in [v for v in validating if v[1] == y][:6]
    ]:
        labelled(store, text, intent, "ann")
    mallory_ids = {
        labelled(store, text, SHIFT[intent], "mallory")[0] for text, intent in learn[30:70]
    }
    return registry, store, heldout, mallory_ids


POISON_AUDIT = {"f1_min_support": 5, "audit_margin": 0.1, "audit_min_examples": 20}


@pytest.mark.slow
def test_a_rejected_nights_bad_labels_are_quarantined_and_the_next_night_trains_without_them(
    tmp_path: Path, trained_model_dir: Path, small_intents: IntentDataset
) -> None:
    registry, store, heldout, mallory_ids = poisoned_world(
        tmp_path, trained_model_dir, small_intents
    )
    keep = set(TEST_INTENTS)
    settings = tiny_night(**POISON_AUDIT, gate_min_examples=40)
    job = nightly_job(store, registry, small_intents, heldout, settings, tmp_path / "reports")
    first = job.run()
    assert first.decision == REJECTED and registry.live_version() == "v1"
    audit = first.metrics["audit"]
    assert audit["agents"]["mallory"]["flagged"] and not audit["agents"]["ann"]["flagged"]
    held = job.quarantine.entries()
    assert held and {q.agent for q in held} == {"mallory"}
    assert {q.label_id for q in held} <= mallory_ids
    assert all(q.live_prediction != q.intent and q.run_id == first.run_id for q in held)
    assert first.metrics["quarantined"]["by_agent"] == {"mallory": len(held)}
    assert any("quarantined for review (mallory:" in r for r in first.reasons)
    report = first.report_dir
    assert report is not None
    saved = json.loads((report / "report.json").read_text())
    assert {q["label_id"] for q in saved["quarantined_labels"]} == {q.label_id for q in held}
    md, page = (report / "report.md").read_text(), (report / "report.html").read_text()
    assert "## Labels quarantined for review" in md
    for q in held:
        row = f"| {q.label_id} | mallory | {q.turn_id} | {q.intent} | {q.live_prediction or '–'} |"
        assert row in md
        assert f"<tr><td>{q.label_id}</td><td>mallory</td><td>{q.turn_id}</td>" in page
    assert "- FAIL label_audit: the live model agrees with" in md
    gated = [c for c in saved["per_intent_changes"] if c["intent"] in keep]
    assert len(gated) == len(keep) and all(c["allowed_drop"] >= 1.0 for c in gated)

    # the next night trains without them: the audit passes, the night is promoted
    second = job.run()
    assert second.decision == PROMOTED, second.reasons
    assert second.metrics["data"]["export"]["left_out"]["quarantined_labels"] == len(held)
    assert second.metrics["data"]["new_examples"] == 70 - len(held)
    assert not second.metrics["audit"]["agents"]["mallory"]["flagged"]


@pytest.mark.slow
def test_the_audit_decides_the_same_whatever_the_test_data_says(
    tmp_path: Path, trained_model_dir: Path, small_intents: IntentDataset
) -> None:
    """The test set is scored and reported, never decided on: the same poisoned night,
    once with the test set's labels scrambled (each the next intent's, so the live model's
    test accuracy falls near 0), is rejected with the same audit and the same labels
    quarantined."""
    nights = {}
    for name in ("test", "scrambled"):
        registry, store, test, _ = poisoned_world(tmp_path / name, trained_model_dir, small_intents)
        if name == "scrambled":
            test = IntentDataset(
                test.texts, tuple(SHIFT[y] for y in test.labels), "scrambled test", "scrambled"
            )
        settings = tiny_night(**POISON_AUDIT, gate_min_examples=40)
        job = nightly_job(store, registry, small_intents, test, settings, tmp_path / name / "r")
        outcome = job.run()
        held = sorted((q.label_id, q.agent, q.intent) for q in job.quarantine.entries())
        nights[name] = outcome, held
    (real, real_held), (scrambled, scrambled_held) = nights["test"], nights["scrambled"]
    on_test = {n: o.metrics["test"]["live"]["accuracy"] for n, (o, _) in nights.items()}
    assert on_test["scrambled"] < 0.2 < on_test["test"]  # the test data did change
    assert real.decision == scrambled.decision == REJECTED
    assert real.metrics["audit"] == scrambled.metrics["audit"]
    assert real.metrics["audit"]["agents"]["mallory"]["flagged"]
    checks = {
        n: [c for c in o.metrics["checks"] if c["name"] == "label_audit"]
        for n, (o, _) in nights.items()
    }
    assert checks["test"] == checks["scrambled"] and not checks["test"][0]["passed"]
    assert real_held == scrambled_held and real_held


def test_quarantine_commands(bot_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from deskbot.bot.cli import app, load_plugins
    from deskbot.bot.core.config import load_config
    from deskbot.bot.server.container import build_store

    monkeypatch.delenv("DESKBOT_DATABASE_URL", raising=False)
    load_plugins()
    store = build_store(load_config(bot_project))
    mal, mal_turn, _ = labelled(store, "what is the age limit", "card_arrival", "mal")
    labelled(store, "my card has not arrived", "card_arrival", "ann")
    runner = CliRunner()
    cfg = ["-c", str(bot_project)]

    out = runner.invoke(app, ["quarantine", "list", *cfg])
    assert out.exit_code == 0 and "no labels in quarantine" in out.output, out.output
    out = runner.invoke(app, ["quarantine", "withdraw", "mal", *cfg])
    assert out.exit_code == 0 and "1 labels of mal quarantined" in out.output, out.output
    rows = json.loads(runner.invoke(app, ["quarantine", "list", "--json", *cfg]).output)
    assert [(r["label_id"], r["agent"], r["turn_id"]) for r in rows] == [(mal, "mal", mal_turn)]
    out = runner.invoke(app, ["quarantine", "release", *cfg])
    assert out.exit_code == 2 and "release what" in out.output
    out = runner.invoke(app, ["quarantine", "release", "--agent", "mal", *cfg])
    assert out.exit_code == 0 and "1 labels released" in out.output
    assert json.loads(runner.invoke(app, ["quarantine", "list", "--json", *cfg]).output) == []

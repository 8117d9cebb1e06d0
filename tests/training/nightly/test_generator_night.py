"""The generator's night on a real project: export, train, score, gate, promote or not.

A shoe shop's FAQ (`deskbot init --from-faq`, `deskbot ingest`), its SQLite store, the
offline generator (SmolLM2-135M) trained for two steps and asked for a few words: the
decisions are the job's, the figures are whatever the tiny run gives.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deskbot.bot.cli import load_plugins
from deskbot.bot.core.config import BotConfig, load_config
from deskbot.bot.core.errors import DataError
from deskbot.bot.generation.adapters import AdapterRegistry, read_adapter_manifest
from deskbot.bot.server.container import build_store
from deskbot.training.generator.project import export_project_examples, project_settings
from deskbot.training.nightly.generator_night import (
    GeneratorNight,
    GeneratorNightSettings,
    held_out_cases,
)
from tests.adapters import make_adapter

FAQ = {
    "entries": [
        {"id": f"e{i}", "question": q, "alternatives": alts, "answer": a}
        for i, (q, alts, a) in enumerate(
            [
                ("What sizes do you stock?", ["Do you have size 47?"], "Our shoes come in EU sizes 35 to 48."),
                ("How do I return shoes?", ["Can I send shoes back?"], "Return unworn shoes within 30 days."),
                ("How long does delivery take?", ["When will my order arrive?"], "Orders arrive within 2 to 4 working days."),
                ("Do you ship abroad?", ["Can you deliver to France?"], "We ship to every EU country."),
                ("Can I pay with PayPal?", ["Do you take PayPal?"], "Yes, PayPal and all major cards are accepted."),
                ("Are the shoes waterproof?", ["Will they keep rain out?"], "Our boots are waterproof; our trainers are not."),
                ("Do you repair shoes?", ["Can you fix my heel?"], "We repair soles and heels for 25 euros."),
                ("Is there a shop in Leeds?", ["Where is your store?"], "We sell online only."),
            ]
        )
    ]
}  # fmt: skip
TINY = {
    "min_new_examples": 1,
    "max_examples": 6,
    "max_cases": 3,
    "train_args": {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "max_length": 192,
                   "num_threads": 1, "device": "cpu", "checkpoint_every": 0},
    "examples": {"heldout_fraction": 0.4},
    "gate": {"min_cases": 1, "bootstrap": 200},
}  # fmt: skip


@pytest.fixture
def shop(tmp_path: Path) -> BotConfig:
    faq = tmp_path / "shoes.yaml"
    faq.write_text(yaml.safe_dump(FAQ), encoding="utf-8")
    project = tmp_path / "shop"
    runner = CliRunner()
    for args in (["init", str(project), "--from-faq", str(faq)], ["ingest", "-c", str(project)]):
        out = runner.invoke(load_plugins(), args)
        assert out.exit_code == 0, out.output
    config = yaml.safe_load((project / "deskbot.yaml").read_text(encoding="utf-8"))
    config["generator"] = {"backend": "transformers", "max_new_tokens": 6, "device": "cpu"}
    (project / "deskbot.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_config(project / "deskbot.yaml")


def night(cfg: BotConfig, **settings: object) -> GeneratorNight:
    return GeneratorNight(
        cfg,
        GeneratorNightSettings.from_dict({**TINY, **settings}),
        build_store(cfg),
        cfg.root / "var" / "reports" / "generator",
    )


def test_a_night_trains_scores_both_versions_on_held_out_cases_and_decides(
    shop: BotConfig,
) -> None:
    job = night(shop)
    outcome = job.run()
    assert outcome.decision in ("promoted", "rejected"), outcome
    m = outcome.metrics
    assert m["data"]["train"] >= 1 and m["data"]["heldout"] >= 1
    assert m["training"]["steps"] == 2
    assert m["live"]["cases"] == m["candidate"]["cases"] >= 1
    # The decision is the gate's, and it is on the record.
    passed = all(c["passed"] for c in m["checks"])
    assert (outcome.decision == "promoted") == passed
    registry = AdapterRegistry(shop.generator.adapters)
    if passed:
        assert registry.live_version() == outcome.candidate
        read_adapter_manifest(registry.version_dir(outcome.candidate))
        rows = build_store(shop).audit_events()
        assert any(r.object_type == "generator_adapter" for r in rows)
    else:
        assert registry.live_version() is None and outcome.reasons
        assert not (registry.root / ".nightly" / f"candidate-{outcome.run_id}").exists()
    # The report shows both versions' replies; the run is recorded.
    assert outcome.report_dir is not None
    html = (outcome.report_dir / "report.html").read_text(encoding="utf-8")
    assert "Both versions&#39; replies" in html or "Both versions' replies" in html
    first = m["side_by_side"][0]
    assert first["live"]["reply"] in html.replace("&#39;", "'") or not first["live"]["reply"]
    report = json.loads((outcome.report_dir / "report.json").read_text(encoding="utf-8"))
    assert report["decision"] == outcome.decision
    assert [r["run_id"] for r in job.runs()] == [outcome.run_id]


def test_a_rejected_candidate_is_not_trained_again_on_the_same_examples(
    shop: BotConfig,
) -> None:
    job = night(shop, gate={"min_cases": 1000, "bootstrap": 200})  # too few cases: rejected
    first = job.run()
    assert first.decision == "rejected" and first.fingerprint
    again = job.run()
    assert again.decision == "repeat", again
    assert first.run_id in again.reasons[0] and "training" not in again.metrics
    assert again.fingerprint == first.fingerprint
    # Other settings train another candidate: not a repeat.
    assert night(shop, max_examples=5)._fingerprint(None, []) != job._fingerprint(None, [])


def test_after_a_promotion_the_next_night_finds_nothing_new(shop: BotConfig) -> None:
    job = night(shop)
    candidate = make_adapter(job.work / "candidate-v1", seed=1)
    export = export_project_examples(
        shop, settings=project_settings(shop, heldout_fraction=0.4), store=job.store,
        progress=False,
    )  # fmt: skip
    job._promote("v1", candidate, None, {e.key for e in export.train})
    assert AdapterRegistry(shop.generator.adapters).live_version() == "v1"
    again = job.run()
    assert again.decision == "nothing-new", again
    assert again.live_before == again.live_after == "v1"
    assert again.metrics["data"]["new"] == 0


def test_off_by_default_without_a_local_generator(shop: BotConfig, tmp_path: Path) -> None:
    config = yaml.safe_load((shop.root / "deskbot.yaml").read_text(encoding="utf-8"))
    config["generator"] = {"backend": "none"}
    (shop.root / "deskbot.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    cfg = load_config(shop.root / "deskbot.yaml")
    outcome = night(cfg).run()
    assert outcome.decision == "off" and "generator.enabled" in outcome.reasons[0]
    assert not (cfg.generator.adapters / ".nightly").exists()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(DataError, match="unknown"):
        GeneratorNightSettings.from_dict({"min_new": 3})
    with pytest.raises(DataError, match="deskbot.yaml"):
        GeneratorNightSettings.from_dict({"examples": {"top_k": 9}})
    with pytest.raises(DataError):
        GeneratorNightSettings.from_dict({"gate": {"alpha": 2}})


def test_held_out_cases_skip_examples_whose_passages_left_the_index() -> None:
    from deskbot.bot.core.types import Passage
    from deskbot.training.generator.chat_jsonl import HELDOUT
    from tests.training.generator.conftest import chat_example

    examples = [chat_example(i, split=HELDOUT) for i in range(3)]
    for i, e in enumerate(examples):
        e.meta.update(passage_ids=[f"p{i}"], cited=f"p{i}")
    passages = {f"p{i}": Passage(f"p{i}", "text", 1.0, "faq") for i in (0, 2)}
    cases = held_out_cases(examples, passages, limit=10, seed=0)
    assert [c.gold_passage for c in cases] == ["p0", "p2"]
    assert cases[0].history[-1].role == "user" and cases[0].reference == examples[0].reply
    assert len(held_out_cases(examples, passages, limit=1, seed=0)) == 1


def test_retrain_refuses_bad_generator_settings_before_the_intents_night(
    bot_project: Path,
) -> None:
    from deskbot.training.nightly.job import WORK_DIR

    (bot_project / "retrain.yaml").write_text("generator: {min_new: 3}\n", encoding="utf-8")
    out = CliRunner().invoke(load_plugins(), ["retrain", "-c", str(bot_project / "deskbot.yaml")])
    assert out.exit_code == 2, out.output
    assert "unknown retrain setting(s) generator.['min_new']" in out.output
    # Nothing ran: the intents' night records every run it makes.
    assert not (bot_project / "var" / "models" / "intents" / WORK_DIR / "runs.jsonl").exists()

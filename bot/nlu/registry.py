"""The on-disk format of trained intent models, and the registry that serves one of them.

`bot` defines the format and reads it; `training` writes it. A model version is a
directory::

    VERSION_DIR/
      deskbot-model.json     # the manifest (IntentModelManifest)
      config.json, model.safetensors, tokenizer files   # the encoder (transformers' save_pretrained)
      head.safetensors       # the cosine classification head
      knn_bank.safetensors   # normalised training embeddings and their labels

The registry of such versions is `deskbot.bot.core.registry.VersionRegistry`; here,
`ModelRegistry` is the one whose versions are intent models.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deskbot.bot.core.errors import ArtifactError
from deskbot.bot.core.registry import LIVE, VersionRegistry, read_version_manifest

MODEL_FORMAT = "deskbot.intent-model/2"
OOS_METHODS = ("knn", "knn_contrast", "msp")
MANIFEST = "deskbot-model.json"
HEAD_FILE = "head.safetensors"  # the cosine head: {"weight": [n_labels, hidden]}
KNN_FILE = "knn_bank.safetensors"  # training embeddings: {"embeddings": [n, hidden], "labels": [n]}
_REQUIRED_FILES = ("config.json", "head.safetensors", "knn_bank.safetensors")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class IntentModelManifest:
    """What a trained intent model is, and how to use it.

    Attributes:
        labels: intent names, in the order of the head's rows.
        temperature: divides the logits before softmax (temperature scaling).
        oos_method: the in-scope score: "knn" (mean similarity to the nearest training
            examples), "knn_contrast" (that, minus the mean similarity to the nearest
            out-of-scope training examples; for data with `oos` examples) or "msp"
            (the calibrated top probability).
        oos_threshold: an in-scope score under this means out of scope.
        oos_k: how many nearest out-of-scope examples "knn_contrast" averages (models
            written before this field existed used 10).
        knn_alpha: weight of the nearest-neighbour vote in the probabilities.
        metrics: what the model scored when it was trained (validation, test).
        data: hashes of the files it was trained on.
    """

    version: str
    labels: tuple[str, ...]
    temperature: float = 1.0
    oos_method: str = "knn"
    oos_threshold: float = -1.0
    max_length: int = 64
    cos_scale: float = 20.0
    knn_alpha: float = 0.0
    knn_k: int = 10
    knn_temp: float = 0.05
    oos_k: int = 10
    base_model: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    format: str = MODEL_FORMAT

    def to_json(self) -> str:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return json.dumps(d, indent=2, sort_keys=True)


def read_manifest(model_dir: str | Path) -> IntentModelManifest:
    """Read and check a model directory's manifest.

    Raises:
        ArtifactError: the directory is missing, incomplete or of another format.
    """
    manifest = read_version_manifest(
        model_dir,
        MANIFEST,
        MODEL_FORMAT,
        lambda raw: IntentModelManifest(**{**raw, "labels": tuple(raw["labels"])}),
        what="model",
        train_hint="deskbot train intents",
        required=(*_REQUIRED_FILES, _WEIGHT_FILES),
    )
    mf = Path(model_dir) / MANIFEST
    if not manifest.labels:
        raise ArtifactError(f"{mf}: the model has no labels")
    if manifest.oos_method not in OOS_METHODS:
        raise ArtifactError(
            f"{mf}: unknown oos_method {manifest.oos_method!r} ({', '.join(OOS_METHODS)})"
        )
    return manifest


class ModelRegistry(VersionRegistry):
    """The intent models' registry: a version is complete when `read_manifest` reads it."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root, check=read_manifest)


__all__ = [
    "HEAD_FILE",
    "KNN_FILE",
    "LIVE",
    "MANIFEST",
    "MODEL_FORMAT",
    "OOS_METHODS",
    "IntentModelManifest",
    "ModelRegistry",
    "read_manifest",
]

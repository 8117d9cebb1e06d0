"""The on-disk format of trained intent models, and the registry that serves one of them.

`bot` defines the format and reads it; `training` writes it. A model version is a
directory::

    VERSION_DIR/
      deskbot-model.json     # the manifest (IntentModelManifest)
      config.json, model.safetensors, tokenizer files   # the encoder (transformers' save_pretrained)
      head.safetensors       # the cosine classification head
      knn_bank.safetensors   # normalised training embeddings and their labels

A registry is a directory of versions with one pointer to the live one::

    REGISTRY/
      LIVE                   # the live version's name, replaced atomically
      history.jsonl          # every promotion and rollback, appended
      versions/<version>/    # complete versions only; work in progress is .tmp-*
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deskbot.bot.core.errors import ArtifactError
from deskbot.knowledge.files.fsutil import append_jsonl, atomic_write_text, read_jsonl

MODEL_FORMAT = "deskbot.intent-model/2"
OOS_METHODS = ("knn", "knn_contrast", "msp")
MANIFEST = "deskbot-model.json"
HEAD_FILE = "head.safetensors"  # the cosine head: {"weight": [n_labels, hidden]}
KNN_FILE = "knn_bank.safetensors"  # training embeddings: {"embeddings": [n, hidden], "labels": [n]}
LIVE = "LIVE"
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
    path = Path(model_dir)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such model directory")
    mf = path / MANIFEST
    if not mf.is_file():
        raise ArtifactError(
            f"{path}: not a deskbot model ({MANIFEST} is missing); train one with `deskbot train intents`"
        )
    try:
        raw = json.loads(mf.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{mf}: corrupted manifest ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise ArtifactError(f"{path}: model format {found!r}; this deskbot reads {MODEL_FORMAT!r}")
    try:
        raw["labels"] = tuple(raw["labels"])
        manifest = IntentModelManifest(**raw)
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"{mf}: incomplete manifest ({exc})") from exc
    missing = [f for f in _REQUIRED_FILES if not (path / f).is_file()]
    if not any((path / f).is_file() for f in _WEIGHT_FILES):
        missing.append("model.safetensors")
    if missing:
        raise ArtifactError(f"{path}: incomplete model directory, missing {', '.join(missing)}")
    if not manifest.labels:
        raise ArtifactError(f"{mf}: the model has no labels")
    if manifest.oos_method not in OOS_METHODS:
        raise ArtifactError(
            f"{mf}: unknown oos_method {manifest.oos_method!r} ({', '.join(OOS_METHODS)})"
        )
    return manifest


class ModelRegistry:
    """Versions of one kind of model under `root`, and which one is live."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def live_version(self) -> str | None:
        try:
            return (self.root / LIVE).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def live_dir(self) -> Path:
        """The live version's directory.

        Raises:
            ArtifactError: there is no live version yet.
        """
        version = self.live_version()
        if version is None:
            raise ArtifactError(
                f"{self.root}: no live model (train one with `deskbot train intents --promote`)"
            )
        return self.versions_dir / version

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def version_dir(self, version: str) -> Path:
        path = self.versions_dir / version
        if version.startswith(".") or "/" in version or not path.is_dir():
            raise ArtifactError(f"{self.root}: no version {version!r} (see `deskbot models list`)")
        return path

    def set_live(self, version: str, *, reason: str = "promote") -> None:
        """Point LIVE at `version` atomically and record it in the history."""
        read_manifest(self.version_dir(version))
        previous = self.live_version()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / LIVE, version + "\n")
        append_jsonl(
            self.root / "history.jsonl",
            {"at": time.time(), "live": version, "previous": previous, "reason": reason},
        )

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.root / "history.jsonl")

    def rollback_target(self) -> str | None:
        """The version that was live before the current one was promoted (None if none).

        Rollbacks undo promotions like a stack: promote A, B, C then roll back twice
        and A is live again (a second rollback does not bounce back to C).
        """
        stack: list[str] = []
        for entry in self.history():
            live = entry.get("live")
            if not isinstance(live, str):
                continue
            if str(entry.get("reason", "")).startswith("rollback"):
                while stack and stack[-1] != live:
                    stack.pop()
                if not stack:
                    stack.append(live)
            else:
                stack.append(live)
        current = self.live_version()
        while stack and stack[-1] != current:
            stack.pop()
        return stack[-2] if len(stack) >= 2 else None

    def rollback(self, to: str | None = None) -> str:
        """Make `to` (default: the version live before the current one) live again.

        Raises:
            ArtifactError: there is nothing to roll back to, or `to` is no version.
        """
        target = to or self.rollback_target()
        if target is None:
            raise ArtifactError(
                f"{self.root}: no earlier live version to roll back to; name one with --to "
                "(see `deskbot models list`)"
            )
        self.set_live(target, reason=f"rollback from {self.live_version()}")
        return target

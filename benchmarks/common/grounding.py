"""What the generator benchmarks share: BANKING77 questions, the demo FAQ's retriever, a verifier.

`generator_grounding.py` (does an unsupported fact reach the customer?) and
`generator_quality.py` (how often is a generated reply sent, is it right, how fast)
ask the same questions of the same set-up:

- `sample_questions`: a seeded stratified sample of BANKING77 *test* utterances
  (never trained on), `per_intent` of each intent;
- `demo_retriever`: the demo FAQ ingested into a faiss index, optionally with the
  BANKING77 *train* utterances as alternative questions (as the demo project's
  `knowledge.examples` does), kept under a cache folder so a second run reuses the
  vectors;
- `claim_verifier`: the guard's claim verifier, the project's live one when there is
  one, else one trained from the demo FAQ into a temporary folder (a minute or two).
"""

from __future__ import annotations

import csv
import random
import tempfile
from pathlib import Path

from benchmarks.common import DATA, DEMO, log
from deskbot.bot.generation.verifier import find_verifier_dir
from deskbot.knowledge.embedding.embedder import Embedder
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.retrieval.retriever import FaissRetriever
from deskbot.knowledge.sources.faq import FaqEntry, load_faq

DEMO_FAQ = DEMO / "faq.yaml"


def demo_entries() -> list[FaqEntry]:
    """The demo FAQ's entries (each names the BANKING77 intent it answers)."""
    return load_faq(DEMO_FAQ)


def sample_questions(
    per_intent: int, seed: int, *, intents: set[str] | None = None
) -> list[tuple[str, str]]:
    """`per_intent` BANKING77 test messages of each intent (of `intents`, if given),
    drawn and shuffled with `seed`: (intent, text) pairs."""
    rows = list(csv.DictReader((DATA / "test.csv").open(encoding="utf-8")))
    by_intent: dict[str, list[str]] = {}
    for r in rows:
        if intents is None or r["category"] in intents:
            by_intent.setdefault(r["category"], []).append(r["text"])
    rng = random.Random(seed)
    turns: list[tuple[str, str]] = []
    for intent in sorted(by_intent):
        texts = by_intent[intent]
        for t in rng.sample(texts, min(per_intent, len(texts))):
            turns.append((intent, t))
    rng.shuffle(turns)
    log(f"{len(turns)} questions over {len(by_intent)} intents")
    return turns


def demo_retriever(
    embedder: Embedder, *, examples: bool, cache: Path | None = None
) -> FaissRetriever:
    """The demo FAQ's retriever; with `examples`, each entry's intent's BANKING77 train
    utterances are alternative questions (the demo project's `knowledge.examples`).

    `cache`: keep the index there (re-ingesting reuses unchanged vectors); None: a
    temporary folder.
    """
    name = "demo_faq_examples" if examples else "demo_faq"
    root = cache if cache is not None else Path(tempfile.mkdtemp(prefix="deskbot-bench-"))
    index_dir = root / name
    report = ingest(
        [DEMO_FAQ],
        index_dir,
        embedder,
        show_progress=False,
        examples=[DATA / "train.csv"] if examples else (),
    )
    log(
        f"FAQ index {index_dir}: {report.passages} passages, {report.vectors} vectors "
        f"({report.embedded} embedded, {report.seconds:.0f} s)"
    )
    return FaissRetriever(index_dir, embedder)


def claim_verifier_dir(path: Path | None, embedder: Embedder | None = None) -> Path:
    """A claim verifier to serve: `path` when something is trained there, else one
    trained now from the demo FAQ into a temporary folder.

    Raises:
        ArtifactError: `path` holds a LIVE pointer to no verifier version.
    """
    if path is not None and find_verifier_dir(path) is not None:
        return path
    # Training code, imported only when there is no verifier to load.
    from deskbot.training.claims.trainer import VerifierArgs, VerifierTrainer

    out = Path(tempfile.mkdtemp(prefix="deskbot-verifier-")) / "v1"
    log(f"no claim verifier under {path}: training one from the demo FAQ into {out}")
    result = VerifierTrainer(VerifierArgs(), embedder=embedder, progress=log).train(
        demo_entries(), out, version="bench"
    )
    log(f"verifier trained in {result.seconds:.0f} s")
    return out

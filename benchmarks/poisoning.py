"""A poisoned night: agents' labels 30% shuffled. The gate must reject the candidate.

From the BANKING77 10-shot model, one night of `--labels` logged turns is labelled by
agents with `--fraction` of the labels shuffled among themselves, inserted into a real
SQLite store, and the real `RetrainJob` runs. For contrast the same turns with correct
labels run as a clean night on a fresh registry and store.

    python benchmarks/poisoning.py --labels 300 --fraction 0.3 --work var/bench/poisoning

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from _loop_common import banking, base_model, fresh_registry, fresh_store, log, log_night

from deskbot.bot.intents import TransformerIntentClassifier
from deskbot.training.retrain import RetrainJob, RetrainSettings


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


def night(work: Path, model: Path, base, test, rows) -> dict[str, object]:  # type: ignore[no-untyped-def]
    registry = fresh_registry(work, model)
    store = fresh_store(work)
    log_night(store, TransformerIntentClassifier(registry.live_dir()), rows)
    job = RetrainJob(
        store=store,
        registry=registry,
        base_data=base,
        heldout=test,
        settings=RetrainSettings(),
        reports_dir=work / "reports",
    )
    o = job.run()
    return {
        "decision": o.decision,
        "live_accuracy": o.metrics["live"]["accuracy"],
        "candidate_accuracy": o.metrics["candidate"]["accuracy"],
        "failed_checks": o.reasons,
        "audit": o.metrics.get("audit"),
        "report": str(o.report_dir),
        "seconds": o.metrics["timings"].get("total_s"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=300)
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--work", type=Path, default=Path("var/bench/poisoning"))
    ap.add_argument("--cache", type=Path, default=Path("var/bench"))
    ap.add_argument("--no-clean", action="store_true", help="Skip the clean contrast night.")
    args = ap.parse_args()
    _, test, base, rest = banking()
    model = base_model(args.cache, base)
    rows = rest[: args.labels]
    poisoned = shuffled(rows, args.fraction, seed=1)
    wrong = sum(a[1] != b[1] for a, b in zip(rows, poisoned, strict=True))
    log(f"poisoned night: {wrong} of {len(rows)} labels wrong")
    result: dict[str, object] = {
        "benchmark": "poisoning",
        "labels": len(rows),
        "wrong_labels": wrong,
        "poisoned": night(args.work / "poisoned", model, base, test, poisoned),
    }
    if not args.no_clean:
        log("clean night with the same turns")
        result["clean"] = night(args.work / "clean", model, base, test, rows)
    result["poisoned_rejected"] = result["poisoned"]["decision"] == "rejected"  # type: ignore[index]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

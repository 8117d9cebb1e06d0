"""How should a message be read in its thread? Two candidate rules, tuned on the dev set.

The classifier reads a message alone (`m`) and read after the customer's previous
message (`p + " " + m`, one batch). Two rules for the intent of `m`:

- `switch`: keep `m` alone when its calibrated confidence is at least `tau` (a message
  clear on its own keeps its meaning: topic switches), else take the thread's reading
  when that is more confident;
- `mix`: the intent of `(1 - w) * P(m) + w * P(p + m)`, both calibrated distributions.

Every `tau` and `w` of the grid is scored on the development conversations
(`benchmarks/data/conversations/dev.yaml`, which may be tuned on): follow-up and
topic-switch intent accuracy. The chosen setting is the best follow-up accuracy whose
topic-switch accuracy on dev is no lower than reading alone gives (the dev set's 30
switches are too few for an absolute floor: one is 3.3 points). Only then, with `--report`,
the held-out set (`heldout.yaml`, never tuned on) is scored once at that setting, and at
"alone" (today's reading) for comparison. A study for issue #19 item 1, not yet the
served path: the judged intent is the classifier's top in-scope intent, without the
out-of-scope threshold or the dialogue policy.

    python -m benchmarks.quality.context_reading --model var/bench/intent-full-seeds/seed13 --report
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.common import command, emit, log, machine

MODULE = "benchmarks.quality.context_reading"
DATA = Path(__file__).resolve().parents[1] / "data" / "conversations"
TAUS = [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01]
WEIGHTS = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="an intent model version folder")
    ap.add_argument("--dev", type=Path, default=DATA / "dev.yaml")
    ap.add_argument("--heldout", type=Path, default=DATA / "heldout.yaml")
    ap.add_argument("--report", action="store_true", help="score the held-out set once")
    ap.add_argument("--out", default="context_reading")
    return ap.parse_args()


def load(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"])


def readings(clf: Any, convos: list[dict[str, Any]]) -> dict[str, Any]:
    """Calibrated distributions of each last turn alone and after the previous one."""
    alone = [str(c["turns"][-1]) for c in convos]
    thread = [f"{c['turns'][-2]} {c['turns'][-1]}" for c in convos]
    p_alone, _ = clf.scores(alone)
    p_thread, _ = clf.scores(thread)
    return {"alone": p_alone.numpy(), "thread": p_thread.numpy(), "labels": list(clf.labels)}


def accuracy(
    picked: np.ndarray, convos: list[dict[str, Any]], labels: list[str], kind: str
) -> float:
    rows = [i for i, c in enumerate(convos) if c["type"] == kind]
    right = sum(labels[int(picked[i])] in convos[i]["accept"] for i in rows)
    return round(right / len(rows), 4) if rows else 0.0


def pick(r: dict[str, Any], rule: str, value: float) -> np.ndarray:
    alone, thread = r["alone"], r["thread"]
    if rule == "mix":
        return np.argmax((1 - value) * alone + value * thread, axis=1)
    conf_a, conf_t = alone.max(axis=1), thread.max(axis=1)
    use_thread = (conf_a < value) & (conf_t > conf_a)
    return np.where(use_thread, thread.argmax(axis=1), alone.argmax(axis=1))


def scores(
    r: dict[str, Any], convos: list[dict[str, Any]], rule: str, value: float
) -> dict[str, float]:
    picked = pick(r, rule, value)
    return {
        "follow_up": accuracy(picked, convos, r["labels"], "follow_up"),
        "topic_switch": accuracy(picked, convos, r["labels"], "topic_switch"),
    }


def main() -> None:
    args = parse_args()
    from deskbot.bot.nlu.classifier import TransformerIntentClassifier

    clf = TransformerIntentClassifier(args.model)
    dev = load(args.dev)
    r = readings(clf, dev)
    grid = {
        "switch": {str(t): scores(r, dev, "switch", t) for t in TAUS},
        "mix": {str(w): scores(r, dev, "mix", w) for w in WEIGHTS},
    }
    floor = scores(r, dev, "switch", 0.0)["topic_switch"]  # reading alone
    allowed = [
        (s["follow_up"], rule, float(v))
        for rule, values in grid.items()
        for v, s in values.items()
        if s["topic_switch"] >= floor
    ]
    best = max(allowed) if allowed else None
    log(f"dev grid: {grid}")
    log(f"chosen on dev: {best}")
    result: dict[str, Any] = {
        "benchmark": "context_reading",
        "command": command(MODULE),
        "model": args.model,
        "dev": {"n": len(dev), "alone": scores(r, dev, "switch", 0.0), "grid": grid},
        "switch_floor": floor,
        "chosen": {"rule": best[1], "value": best[2]} if best else None,
    }
    if args.report and best is not None:
        heldout = load(args.heldout)
        h = readings(clf, heldout)
        result["heldout"] = {
            "n": len(heldout),
            "alone": scores(h, heldout, "switch", 0.0),
            "chosen": scores(h, heldout, best[1], best[2]),
        }
    emit({**result, **machine()}, args.out)


if __name__ == "__main__":
    main()

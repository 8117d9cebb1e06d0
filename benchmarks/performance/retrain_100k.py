"""100,000 logged turns exported, retrained and evaluated: the target is 30 minutes on 2 cores.

A real SQLite store gets `--turns` customer turns (conversations with the customer's
message and the bot's reply): BANKING77 train messages, varied so that most are
distinct, a share with PII in them, `--labelled` of them labelled by agents and the rest
confirmed by thumbs-up or resolution, with the usual disputes mixed in. Then one real
`RetrainJob.run()` from the 10-shot model: export (with redaction and deduplication), the
night's dataset (every new example, `--max-new` is above what the export yields, plus
the replay), fine-tuning from live, evaluation of candidate and live on the validation
window (what the gate and the label audit decide on) and on the full BANKING77 test set
(`test_data`: scored and reported only, never decided on), gate, report. Filling the
store is not timed.

    python -m benchmarks.performance.retrain_100k --turns 100000 --work var/bench/retrain_100k

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import insert

from benchmarks.common import add_work_options, log, parser
from benchmarks.common.loop import banking_loop, base_model, fresh_registry, fresh_store
from deskbot.bot.store import AgentLabel, Conversation, TurnRecord
from deskbot.training.nightly.job import RetrainJob, RetrainSettings

SUFFIXES = ["", " please", " thanks", " asap", " ?", " help", " urgent", " again", " today", " now"]
PREFIXES = ["", "hi ", "hello ", "hey ", "excuse me, ", "quick question: ", "sorry, ", "so "]
PII = [" my email is ann.lee@example.com", " call me on 07700 900123", " card 4111 1111 1111 1111"]


def fill(store, rest, n: int, labelled: int, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Bulk-insert `n` exchanges (two turns each); one transaction per 5,000."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        for start in range(0, n, 5000):
            convs, turns, labels = [], [], []
            for i in range(start, min(n, start + 5000)):
                text, intent = rest[i % len(rest)]
                text = rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)
                if rng.random() < 0.05:
                    text += rng.choice(PII)
                cid = secrets.token_hex(16)
                convs.append(
                    {
                        "id": cid,
                        "token_hash": cid * 2,
                        "channel": "web",
                        "status": "resolved" if rng.random() < 0.3 else "open",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                conf = rng.uniform(0.5, 1.0)
                fb = 1 if rng.random() < 0.3 else (-1 if rng.random() < 0.05 else None)
                base = dict(
                    conversation_id=cid,
                    intent=intent,
                    confidence=conf,
                    created_at=now,
                    passages=[],
                    model_versions={},
                    latency_ms={},
                )
                turns.append({**base, "seq": 1, "role": "user", "text": text})
                turns.append({**base, "seq": 2, "role": "bot", "text": "reply", "feedback": fb})
            conn.execute(insert(Conversation), convs)
            conn.execute(insert(TurnRecord), turns)
            log(f"stored {min(n, start + 5000)} of {n} exchanges")
        ids = [
            r[0]
            for r in conn.execute(
                TurnRecord.__table__.select()
                .with_only_columns(TurnRecord.__table__.c.id)
                .where(TurnRecord.__table__.c.role == "bot")
            )
        ]
        rng.shuffle(ids)
        id_to_intent = dict(
            conn.execute(
                TurnRecord.__table__.select().with_only_columns(
                    TurnRecord.__table__.c.id, TurnRecord.__table__.c.intent
                )
            ).all()
        )
        labels = [
            {
                "turn_id": t,
                "agent": "agent-1",
                "intent": id_to_intent[t],
                "answer_wrong": False,
                "created_at": now,
            }
            for t in ids[:labelled]
        ]
        for s in range(0, len(labels), 5000):
            conn.execute(insert(AgentLabel), labels[s : s + 5000])


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--turns", type=int, default=100_000)
    ap.add_argument("--labelled", type=int, default=5_000)
    ap.add_argument("--max-new", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=1)
    add_work_options(ap, "retrain_100k")
    args = ap.parse_args()
    _, test, base, rest = banking_loop()
    model = base_model(args.cache, base)
    args.work.mkdir(parents=True, exist_ok=True)
    registry = fresh_registry(args.work, model)
    store = fresh_store(args.work)
    t_fill = time.perf_counter()
    fill(store, rest, args.turns, args.labelled)
    fill_s = time.perf_counter() - t_fill
    job = RetrainJob(
        store=store,
        registry=registry,
        base_data=base,
        test_data=test,
        settings=RetrainSettings(epochs=args.epochs, max_new=args.max_new, replay_max=args.max_new),
        reports_dir=args.work / "reports",
    )
    log("retraining")
    load_before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    o = job.run()
    total = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "benchmark": "retrain_100k",
                "turns": store.count_turns(role="user"),
                "export": o.metrics["data"]["export"],
                "new_examples": o.metrics["data"].get("new_examples"),
                "replayed": o.metrics["data"].get("replayed"),
                "night_examples": o.metrics["data"].get("night_examples"),
                "epochs": args.epochs,
                "deferred_to_next_night": o.metrics["data"].get("deferred_to_next_night"),
                "decision": o.decision,
                "validation": o.metrics["data"].get("validation"),
                "live_accuracy": o.metrics.get("live", {}).get("accuracy"),
                "candidate_accuracy": o.metrics.get("candidate", {}).get("accuracy"),
                "test_reported_only": {
                    m: o.metrics.get("test", {}).get(m, {}).get("accuracy")
                    for m in ("live", "candidate")
                },
                "failed_checks": o.reasons,
                "timings_s": o.metrics.get("timings"),
                "fill_store_s_untimed": round(fill_s, 1),
                "load_avg_1_5_15_before": load_before,
                "load_avg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
                "command": "python " + " ".join(sys.argv),
                "total_minutes": round(total / 60, 2),
                "target_minutes": 30,
                "within_target": total <= 1800,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

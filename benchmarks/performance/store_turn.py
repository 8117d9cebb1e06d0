"""CPU time the conversation store spends on one turn, SQLite file and PostgreSQL.

A turn writes what the pipeline writes: the customer's message (stored first), the
conversation and its dialogue state read back, then the bot's reply, the user turn's
intent and the new dialogue state in one transaction. Timed in this process (CPU
seconds of the Python side: statement building, ORM, driver) and by the wall clock;
the databases' own CPU is not counted.

    python -m benchmarks.performance.store_turn --turns 2000

Prints JSON; the median of `--repeats` rounds of `--turns` turns each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_result
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate


def one_round(
    store: SqlConversationStore, turns: int, conversations: list[str]
) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(turns):
        conv = conversations[i % len(conversations)]
        user = store.append_turn(conv, "user", f"where is my card? message {i}")
        store.get_conversation(conv)
        state = store.dialogue_state(conv) or {}
        state["turns"] = state.get("turns", 0) + 1
        store.record_bot_turn(
            conv,
            "Cards arrive 3 to 5 working days after they are posted.",
            user_turn_id=user.id,
            user_values={"intent": "card_arrival", "confidence": 0.93},
            state=state,
            intent="card_arrival",
            confidence=0.93,
            kind="faq",
            latency_ms={"classify": 4.1, "retrieve": 3.2},
        )
    return {
        "cpu_ms_per_turn": (time.process_time() - cpu) / turns * 1000,
        "wall_ms_per_turn": (time.perf_counter() - wall) / turns * 1000,
    }


def measure(url: str, turns: int, repeats: int) -> dict[str, object]:
    engine = create_store_engine(url)
    migrate(engine)
    store = SqlConversationStore(engine)
    conversations = [store.create_conversation(channel="bench")[0].id for _ in range(50)]
    one_round(store, min(200, turns), conversations)  # warm caches
    rounds = [one_round(store, turns, conversations) for _ in range(repeats)]
    engine.dispose()
    return {
        "cpu_ms_per_turn_median": round(statistics.median(r["cpu_ms_per_turn"] for r in rounds), 3),
        "wall_ms_per_turn_median": round(
            statistics.median(r["wall_ms_per_turn"] for r in rounds), 3
        ),
        "rounds": rounds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--turns", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--postgres", action="store_true", help="also on PostgreSQL (127.0.0.1:5432)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result: dict[str, object] = {"turns": args.turns, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = measure(f"sqlite:///{tmp}/store.db", args.turns, args.repeats)
    if args.postgres:
        from benchmarks.common.serve import create_database, drop_database

        url = create_database(prefix="deskbot_store_bench")
        try:
            result["postgresql"] = measure(url, args.turns, args.repeats)
        finally:
            drop_database(url)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print_result(result, args.out, indent=1)


if __name__ == "__main__":
    main()

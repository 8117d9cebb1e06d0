"""`deskbot import conversations` of 100,000 turns into SQLite and PostgreSQL: the target
is 2 minutes (issue #20).

A JSON Lines export is generated: `--turns` turns in conversations of `--per-conversation`
turns (customer, agent and bot alternating; the customers' messages are BANKING77 train
texts, varied, with personal data in a share of them so that the redactor has work),
times over the past year. Then the command a team runs, as a process, from its start to
its summary: `deskbot import conversations FILE -c PROJECT --json`, on a SQLite file and
on a new PostgreSQL database (on $DESKBOT_BENCH_POSTGRES_URL's server, dropped after).
Each is run twice: the second run finds every conversation stored (idempotence) and
must add nothing. The stored rows are counted after each run.

    nice -n 5 python -m benchmarks.performance.import_conversations
    python -m benchmarks.performance.import_conversations --turns 10000 --database sqlite

Prints one JSON object (seconds, turns/s per database and run); progress on stderr.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks.common import banking, command, emit, log, machine, parser
from benchmarks.common.serve import create_database, deskbot_exe, drop_database
from deskbot.bot.store import Conversation, TurnRecord, create_store_engine

TARGET_S = 120.0
PII = [" my email is ann.lee@example.com", " call me on 07700 900123", " card 4111 1111 1111 1111"]
AGENT = [
    "Thanks for waiting. I've checked your account: {x}",
    "Sorry about that! {x} Regards, Sam Carter",
    "{x} Is there anything else I can help with?",
]
BOT = ["I can help with that.", "Let me find someone for you.", "Here is what I found."]


def generate(path: Path, turns: int, per_conversation: int, seed: int = 0) -> int:
    """Write the export; returns its number of conversations."""
    rng = random.Random(seed)
    texts = list(banking()[0].texts)
    start = datetime(2025, 12, 1, tzinfo=UTC)
    conversations = 0
    with path.open("w", encoding="utf-8") as f:
        written = 0
        while written < turns:
            n = min(per_conversation, turns - written)
            at = start + timedelta(minutes=rng.randrange(525_000))
            rows = []
            for k in range(n):
                role = ("customer", "agent", "customer", "bot")[k % 4]
                text = rng.choice(texts)
                if role == "customer" and rng.random() < 0.05:
                    text += rng.choice(PII)
                elif role == "agent":
                    text = rng.choice(AGENT).format(x=rng.choice(texts))
                elif role == "bot":
                    text = rng.choice(BOT)
                rows.append({"role": role, "text": text, "time": at.isoformat()})
                at += timedelta(seconds=rng.randrange(5, 300))
            f.write(json.dumps({"id": f"conv-{conversations}", "channel": "chat", "turns": rows}))
            f.write("\n")
            conversations += 1
            written += n
    return conversations


def stored(url: str) -> tuple[int, int]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            convs = conn.execute(select(func.count()).select_from(Conversation)).scalar_one()
            turns = conn.execute(select(func.count()).select_from(TurnRecord)).scalar_one()
    finally:
        engine.dispose()
    return int(convs), int(turns)


def run_import(export: Path, project: Path) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [deskbot_exe(), "import", "conversations", str(export), "-c", str(project), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"the import failed ({out.returncode}): {out.stderr[-2000:]}")
    summary = json.loads(out.stdout)
    return {
        "seconds": round(wall, 2),
        "import_seconds": summary["seconds"],  # the import itself, without the start-up
        "conversations": summary["conversations"],
        "turns": summary["turns"],
        "duplicates": summary["duplicates"],
        "pii_redacted": summary["pii_redacted"],
    }


def measure(url: str, export: Path, work: Path, turns: int) -> dict[str, Any]:
    project = work / f"project-{url.split(':', 1)[0]}"
    project.mkdir(exist_ok=True)
    (project / "deskbot.yaml").write_text(f"name: Bench\ndatabase:\n  url: {url}\n", "utf-8")
    first = run_import(export, project)
    first["stored"] = stored(url)
    first["turns_per_s"] = round(turns / first["seconds"], 1)
    log(f"{url.split(':', 1)[0]}: first run {first['seconds']} s, stored {first['stored']}")
    again = run_import(export, project)
    again["stored"] = stored(url)
    log(f"{url.split(':', 1)[0]}: second run {again['seconds']} s, stored {again['stored']}")
    return {
        "first": first,
        "again": again,
        "met": first["seconds"] <= TARGET_S and first["turns"] == turns,
        "idempotent": again["stored"] == first["stored"] and again["turns"] == 0,
    }


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--turns", type=int, default=100_000)
    ap.add_argument("--per-conversation", type=int, default=10)
    ap.add_argument("--database", choices=["sqlite", "postgres", "all"], default="all")
    ap.add_argument("--name", default="import_conversations", help="results file name")
    args = ap.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        export = work / "export.jsonl"
        conversations = generate(export, args.turns, args.per_conversation)
        log(f"export: {conversations} conversations, {export.stat().st_size / 1e6:.1f} MB")
        if args.database in ("sqlite", "all"):
            results["sqlite"] = measure(f"sqlite:///{work}/store.db", export, work, args.turns)
        if args.database in ("postgres", "all"):
            url = create_database(prefix="deskbot_import_bench")
            try:
                results["postgres"] = measure(url, export, work, args.turns)
            finally:
                drop_database(url)
    result = {
        "benchmark": "import_conversations",
        "command": command("benchmarks.performance.import_conversations"),
        "target": f"{args.turns:,} turns imported in <= {TARGET_S:g} s",
        "turns": args.turns,
        "conversations": conversations,
        "format": "jsonl",
        "results": results,
        "met": all(r["met"] for r in results.values()),
        "conditions": {
            "path": "deskbot import conversations as a process, start-up included",
            "load_average_1m_before": load_before,
            **machine(),
        },
    }
    emit(result, args.name)


if __name__ == "__main__":
    main()

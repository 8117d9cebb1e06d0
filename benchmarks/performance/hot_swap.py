"""Hot swap under load: the dialogue benchmark's load keeps coming while a new model is
promoted and then rolled back; 0 requests may fail.

The server and the load are the dialogue benchmark's (benchmarks/performance/turn_latency.py): the
API under uvicorn in its own process, built by `build_bot` (so its classifier is the
registry-following `ReloadingIntentClassifier` every deployment runs), and `--sessions`
simulated customers over keep-alive HTTP connections, each sending BANKING77 test
messages as fast as replies come back (closed loop), for `--seconds`. The project's
registry holds the BANKING77 10-shot model (live) and a second version `next`; at one
third of the run `deskbot models promote next` runs (the real command, in its own
process), at two thirds `deskbot models rollback`.

Reported: requests, failures (any non-200 answer or transport error), latency before,
around and after each swap, and, from the store, which model version answered each turn
(the bot turn's `model_versions`): after each swap the new version must answer, and the
delay from the command's start to the first turn the new version answered is reported.
The API's rate limits are off (the load comes from one address; the limiter has its own
tests), as in the other load benchmarks.

    python -m benchmarks.performance.hot_swap --sessions 50 --seconds 60 --work var/bench/hot_swap

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import add_numbers, add_work_options, command, log, parser
from benchmarks.common.loop import banking_loop, base_model
from benchmarks.common.serve import (
    banking_test_texts,
    deskbot_exe,
    edit_config,
    machine_details,
    migrate_database,
    prepare_project,
    rate_limits_off,
    stop_processes,
    wait_ready,
)
from benchmarks.performance.turn_latency import ServerOptions, Session, start_server
from deskbot.bot.nlu.registry import MANIFEST, ModelRegistry, read_manifest

MODULE = "benchmarks.performance.hot_swap"


def second_version(registry: ModelRegistry, model: Path, name: str) -> None:
    """`model`'s files as version `name` (its manifest says so: the turns record it)."""
    target = registry.versions_dir / name
    shutil.copytree(model, target)
    manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    manifest["version"] = name
    (target / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def models_command(project: Path, *args: str) -> float:
    """Run `deskbot models ARGS` for the project; returns the seconds it took."""
    t = time.perf_counter()
    subprocess.run(
        [deskbot_exe(), "models", *args, "-c", str(project / "deskbot.yaml")],
        check=True,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    return time.perf_counter() - t


def pct(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    xs = sorted(xs)
    return {
        "n": len(xs),
        "p50_ms": round(xs[len(xs) // 2], 2),
        "p99_ms": round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 2),
        "max_ms": round(xs[-1], 2),
    }


async def load(
    args: argparse.Namespace, base: str, texts: list[str], project: Path
) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(
        max_connections=args.sessions + 10, max_keepalive_connections=args.sessions + 10
    )
    samples: list[tuple[float, float, str]] = []  # (start, ms, reply kind) of answered requests
    failures: list[tuple[float, str]] = []
    swaps: list[dict[str, Any]] = []
    async with httpx.AsyncClient(limits=limits, timeout=60.0, trust_env=False) as client:
        sessions = [Session(client, base) for _ in range(args.sessions)]
        await asyncio.gather(*(s.open() for s in sessions))
        for i in range(50):  # warm-up, not counted
            await sessions[i % len(sessions)].say(texts[i])
        t0 = time.perf_counter()
        wall_t0 = time.time()
        stop = t0 + args.seconds

        async def customer(k: int) -> None:
            s, i = sessions[k], k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    ms, kind = await s.say(texts[i % len(texts)])
                except Exception as exc:  # every failed request counts
                    failures.append((t - t0, repr(exc)[:200]))
                else:
                    samples.append((t - t0, ms, kind))
                i += args.sessions

        async def operator() -> None:
            for frac, cmd in ((1 / 3, ("promote", "next")), (2 / 3, ("rollback",))):
                await asyncio.sleep(max(0.0, t0 + frac * args.seconds - time.perf_counter()))
                at = time.perf_counter() - t0
                secs = await asyncio.to_thread(models_command, project, *cmd)
                swaps.append({"command": " ".join(cmd), "at_s": round(at, 2), "took_s": secs})
                log(f"`deskbot models {' '.join(cmd)}` at {at:.1f} s under load")

        await asyncio.gather(operator(), *(customer(k) for k in range(args.sessions)))
    return {"samples": samples, "failures": failures, "swaps": swaps, "wall_t0": wall_t0}


def _major_runs(sequence: list[list[Any]], min_turns: int = 10) -> list[Any]:
    out: list[Any] = []
    for version, n in sequence:
        if n >= min_turns and (not out or out[-1] != version):
            out.append(version)
    return out


def parse_args() -> argparse.Namespace:
    ap = parser(__doc__)
    add_numbers(ap, sessions=50, seconds=60.0)
    add_work_options(ap, "hot_swap")
    return ap.parse_args()


def serve_and_load(args: argparse.Namespace, project: Path, db: Path) -> dict[str, Any]:
    """turn_latency's server (default options) on `project`, under `load` until it ends."""
    # Migrate once before the server starts, as turn_latency does.
    migrate_database(f"sqlite:///{db}")
    procs, ports = start_server(ServerOptions(), project, db)
    base_url = f"http://127.0.0.1:{ports[0]}"

    async def go() -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient(trust_env=False, timeout=5) as c:
            await wait_ready(c, base_url, procs[0])
        log("server ready; load starts")
        return await load(args, base_url, banking_test_texts(), project)

    try:
        return asyncio.run(go())
    finally:
        stop_processes(procs)


def stored_versions(db: Path, wall_t0: float) -> tuple[list[Any], list[float]]:
    """The intent model version of each stored bot turn, and when it came in (s from t0)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "select model_versions, created_at from turns where role='bot' order by id"
        ).fetchall()
    versions = [json.loads(r[0] or "{}").get("intents") for r in rows]
    # seconds since the load started (the store writes UTC timestamps)
    stored_at = [
        datetime.fromisoformat(str(r[1])).replace(tzinfo=UTC).timestamp() - wall_t0 for r in rows
    ]
    return versions, stored_at


def runs_of(versions: list[Any]) -> list[list[Any]]:
    """The order in which versions answered: runs of equal versions, [version, count]."""
    sequence: list[list[Any]] = []
    for v in versions:
        if sequence and sequence[-1][0] == v:
            sequence[-1][1] += 1
        else:
            sequence.append([v, 1])
    return sequence


def mark_swaps(
    swaps: list[dict[str, Any]], versions: list[Any], stored_at: list[float], first: str
) -> None:
    """After each command: the first turn (in store order) answered by the version it made
    live, and the turns after it that the old version answered: requests classified just
    before the swap that were stored after it (in-flight requests end on the old model).
    Times are the turns' `created_at` (when the message came in) from the start."""
    lo_idx = 0
    for k, (swap, target, old) in enumerate(
        zip(swaps, ["next", first], [first, "next"], strict=False)
    ):
        idx = next((i for i in range(lo_idx, len(versions)) if versions[i] == target), None)
        swap["new_version"] = target
        if idx is None:
            continue
        hi_idx = len(versions)
        if k + 1 < len(swaps):  # up to the next swap's first turn
            after = ["next", first][k + 1]
            hi_idx = next(
                (i for i in range(idx, len(versions)) if versions[i] == after and i > idx + 10),
                len(versions),
            )
        swap["first_turn_by_new_version_came_in_after_s"] = round(stored_at[idx] - swap["at_s"], 2)
        swap["old_version_turns_stored_after_it"] = sum(
            1 for i in range(idx, hi_idx) if versions[i] == old
        )
        lo_idx = hi_idx


def windows(
    samples: list[Any], swaps: list[dict[str, Any]], seconds: float
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """Latency and reply kinds before, after the promotion and after the rollback."""
    marks = [0.0] + [s["at_s"] for s in swaps] + [seconds + 60]
    latency = {}
    kinds: dict[str, dict[str, int]] = {}
    for i, (lo, hi) in enumerate(itertools.pairwise(marks)):
        name = ["before", "after_promote", "after_rollback"][i]
        latency[name] = pct([ms for t, ms, _ in samples if lo <= t < hi])
        kinds[name] = dict(Counter(k for t, _, k in samples if lo <= t < hi).most_common())
    return latency, kinds


def main() -> None:
    args = parse_args()
    _, _, base, _ = banking_loop()
    model = base_model(args.cache, base)
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    load_before = machine_details()["load_avg_1_5_15"]
    project = prepare_project(args.work, model=str(model))
    edit_config(project, {"limits": rate_limits_off()})
    registry = ModelRegistry(project / "var" / "models" / "intents")
    second_version(registry, model, "next")
    # the version the turns record is the manifest's (the registry folder may differ)
    first = read_manifest(registry.live_dir()).version
    db = args.work / "bench.db"
    run = serve_and_load(args, project, db)
    versions, stored_at = stored_versions(db, run["wall_t0"])
    sequence = runs_of(versions)
    samples, failures, swaps = run["samples"], run["failures"], run["swaps"]
    mark_swaps(swaps, versions, stored_at, first)
    latency, kinds = windows(samples, swaps, args.seconds)
    around = {
        s["command"]: pct([ms for t, ms, _ in samples if s["at_s"] - 1 <= t < s["at_s"] + 5])
        for s in swaps
    }
    result = {
        "benchmark": "hot_swap",
        "load": "turn_latency.py server + closed-loop HTTP customers",
        "sessions": args.sessions,
        "seconds": args.seconds,
        "requests": len(samples) + len(failures),
        "failed_requests": len(failures),
        "failures": [f for _, f in failures[:5]],
        "turns_per_s": round(len(samples) / args.seconds, 1),
        "swaps": [{**s, "took_s": round(s["took_s"], 2)} for s in swaps],
        "answered_by_version": dict(Counter(versions)),
        "version_sequence": sequence[:20],
        # runs of 10+ turns by one version, in store order: live, next, live again (the
        # few turns in flight at a swap interleave; counted per swap above)
        "switched_to_next_and_back": _major_runs(sequence) == [first, "next", first],
        "latency_ms": latency,
        # the reply kinds the API returned (a step past its timeout degrades the reply,
        # e.g. to "fallback" or "clarify", but the request still succeeds)
        "reply_kinds": kinds,
        "latency_ms_from_1s_before_to_5s_after_swap": around,
        "stored_bot_turns": len(versions),
        "live_after": registry.live_version(),
        "load_avg_1_5_15_before": load_before,
        "load_avg_1_5_15_after": machine_details()["load_avg_1_5_15"],
        "command": command(MODULE),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

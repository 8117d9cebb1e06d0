"""The demo bank's conversation suite in process: cases, passed, and seconds (issue #19's
target: 100% passing, 150 cases in at most 60 s on 2 cores).

    python -m benchmarks.performance.demo_suite --project var/demo
    python -m benchmarks.performance.demo_suite --work var/bench/demo_suite  # init, train, ingest

With `--project`, a trained and indexed demo project is copied into the work folder
(its databases left behind); without it, one is made there as a new user makes it
(`deskbot init`, `deskbot train intents --promote` with the demo's config, `deskbot
ingest`), and the training's seconds are reported. The project's action server runs
beside it (`deskbot actions serve`). `deskbot test conversations --json` then runs the
suite (bot/demo/conversations.yaml, which `deskbot init` writes) `--runs` times, each a
command of its own; the result is the median of the seconds the command reports (from
loading the cases to the last case: the bot built and warmed up, every case played) and
of its wall time (with Python's start). The pending cases
(bot/demo/conversations_pending.yaml: those the bot does not pass yet) run once; how
many pass is reported, so that they can move into the suite.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEMO, command, emit, log, machine, parser
from benchmarks.common.serve import (
    action_server,
    deskbot_exe,
    edit_config,
    ingest_project,
    init_project,
)

SUITE = DEMO / "conversations.yaml"
PENDING = DEMO / "conversations_pending.yaml"


def make_project(work: Path, project: str | None) -> tuple[Path, float | None]:
    """The demo project to test in `work/bot`, and the training's seconds if it was trained."""
    out = work / "bot"
    shutil.rmtree(out, ignore_errors=True)
    if project:
        shutil.copytree(project, out, ignore=shutil.ignore_patterns("*.db", "*.db-*"))
        return out, None
    init_project(out)
    log("training the demo's intent model (deskbot train intents --promote)")
    t = time.perf_counter()
    subprocess.run(
        [deskbot_exe(), "train", "intents", "-c", str(out), "--promote"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    train_s = time.perf_counter() - t
    log(f"trained in {train_s:.0f} s; indexing the FAQ")
    ingest_project(out)
    return out, train_s


def run_suite(project: Path, suite: Path) -> tuple[dict[str, Any], float]:
    """`deskbot test conversations SUITE -c PROJECT --json`: its report and wall seconds."""
    t = time.perf_counter()
    done = subprocess.run(
        [deskbot_exe(), "test", "conversations", str(suite), "-c", str(project), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t
    if done.returncode not in (0, 1):  # 1: a case failed, which is counted
        raise SystemExit(f"deskbot test conversations failed:\n{done.stdout}{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report, wall


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--project", help="a trained, indexed demo project (default: make one)")
    ap.add_argument("--work", default="var/bench/demo_suite", help="the work folder")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    project, train_s = make_project(work, args.project)
    actions = action_server(project, work)
    edit_config(project, {"actions": {"url": f"{actions.base}/webhook"}})
    actions.start()
    try:
        actions.wait_ready("/health", timeout=120)
        runs = []
        for i in range(args.runs):
            report, wall = run_suite(project, SUITE)
            log(
                f"run {i + 1}: {report['passed']}/{report['cases']} passed in "
                f"{report['seconds']:.1f} s ({wall:.1f} s wall)"
            )
            runs.append((report, wall))
        pending, pending_wall = run_suite(project, PENDING)
        log(f"pending: {pending['passed']}/{pending['cases']} pass in {pending_wall:.1f} s")
    finally:
        actions.stop()
    first = runs[0][0]
    emit(
        {
            "command": command("benchmarks.performance.demo_suite"),
            "cases": first["cases"],
            "passed": first["passed"],
            "failed": first["failed"],
            "steps": first["steps"],
            "seconds": round(statistics.median(r["seconds"] for r, _ in runs), 2),
            "seconds_runs": [r["seconds"] for r, _ in runs],
            "wall_seconds": round(statistics.median(w for _, w in runs), 2),
            "failures": [f["test_case"] for f in first["failures"]],
            "pending_cases": pending["cases"],
            "pending_passed": pending["passed"],
            "pending_seconds": pending["seconds"],
            "pending_now_passing": sorted(
                {c for c in _names(PENDING)} - {f["test_case"] for f in pending["failures"]}
            ),
            "train_seconds": None if train_s is None else round(train_s, 1),
            "machine": machine(),
        },
        "demo_suite",
    )


def _names(path: Path) -> list[str]:
    from deskbot.bot.testing.cases import load_cases

    return [c.name for c in load_cases(path)]


if __name__ == "__main__":
    main()

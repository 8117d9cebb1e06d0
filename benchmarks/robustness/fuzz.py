"""Hostile input: property-based fuzzing (hypothesis) of every file parser and of the HTTP
API, with the case count of a hypothesis profile, reported per target.

Runs the suite's fuzz tests (`pytest -m fuzz`) in this process under the profile named
by --profile (`ci-full`: 10,000 new random cases per target; `ci`: CI's fixed cases), and
prints, per target, the cases run, the cases that failed and each distinct failure
(exception type and where it was raised), the wall time and the slowest case.

    flock /tmp/deskbot-heavy.lock python -m benchmarks.robustness.fuzz
    python -m benchmarks.robustness.fuzz --only parsers --cases 500      # a quick look
    flock /tmp/deskbot-heavy.lock python -m benchmarks.robustness.fuzz --only api --database postgres \
        --postgres-url postgresql://postgres@127.0.0.1:5432/test \
        --out benchmarks/results/fuzz_api_postgres.json

The API targets run against SQLite and PostgreSQL (a new database on the server of
`--postgres-url`, default $DESKBOT_TEST_POSTGRES_URL or the suite's); `--database` picks
one. `--merge` adds this run's targets to those already in `--out` (a long run split in
parts, each under the machine's time cap).

Prints one JSON object on stdout (and writes it to --out); pytest's report on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, ROOT, parser, print_result

FILES = {
    "parsers": [
        "tests/training/data/test_datasets_fuzz.py",
        "tests/knowledge/sources/test_sources_fuzz.py",
        "tests/bot/core/test_config_fuzz.py",
    ],
    "api": ["tests/bot/server/test_api_fuzz.py"],
}


class Durations:
    """pytest plugin: each test's call time and outcome."""

    def __init__(self) -> None:
        self.calls: dict[str, tuple[float, str]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.calls[report.nodeid] = (report.duration, report.outcome)


def run_fuzz_tests(pytest_args: list[str]) -> tuple[int, float, dict[str, dict[str, Any]]]:
    """`pytest -m fuzz PYTEST_ARGS` in this process (its report on stderr): the exit code,
    the wall time and, per fuzz target, its cases, failures, outcome and times."""
    import pytest

    from tests.fuzzing import STATS

    plugin = Durations()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        code = pytest.main(
            ["-m", "fuzz", "-q", "-p", "no:cacheprovider", "--tb=line", *pytest_args],
            plugins=[plugin],
        )
    wall = time.perf_counter() - started
    targets: dict[str, dict[str, Any]] = {}
    for name, stats in sorted(STATS.items()):
        call_s, outcome = next(
            (v for k, v in plugin.calls.items() if stats.test and k.endswith(stats.test)),
            (stats.busy_s, "unknown"),
        )
        targets[name] = {
            "cases": stats.cases,
            "failed_cases": stats.failed_cases,
            "failures_found": len(stats.failures),
            "failures": stats.failures,
            "outcome": outcome,
            "wall_s": round(call_s, 2),
            "slowest_case_s": round(stats.slowest_s, 4),
            "mean_case_ms": round(1000 * stats.busy_s / max(1, stats.cases), 3),
        }
    return int(code), wall, targets


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--profile", default="ci-full", choices=["ci", "ci-full"])
    ap.add_argument("--cases", type=int, default=None, help="override every target's count")
    ap.add_argument("--only", choices=["parsers", "api", "all"], default="all")
    ap.add_argument("-k", dest="keyword", default=None, help="pytest -k, e.g. messages")
    ap.add_argument("--database", choices=["sqlite", "postgres", "all"], default="all")
    ap.add_argument("--postgres-url", default=None, help="the PostgreSQL server's admin URL")
    ap.add_argument("--merge", action="store_true", help="keep --out's other targets")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz.json")
    args = ap.parse_args()

    os.environ["DESKBOT_FUZZ_PROFILE"] = args.profile
    if args.cases:
        os.environ["DESKBOT_FUZZ_CASES"] = str(args.cases)
    if args.postgres_url:
        os.environ["DESKBOT_TEST_POSTGRES_URL"] = args.postgres_url
        os.environ["DESKBOT_REQUIRE_POSTGRES"] = "1"  # a fail, not a skip, when it is down
    keyword = " and ".join(
        f"({k})" for k in (args.keyword, None if args.database == "all" else args.database) if k
    )
    os.chdir(ROOT)  # pytest reads its configuration from the repository root
    from tests.conftest import POSTGRES_URL

    files = [f for k, fs in FILES.items() if args.only in (k, "all") for f in fs]
    code, wall, targets = run_fuzz_tests([*(["-k", keyword] if keyword else []), *files])
    runs: list[dict[str, Any]] = [
        {
            "command": shlex.join(["python", "-m", "benchmarks.robustness.fuzz", *sys.argv[1:]]),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "wall_s": round(wall, 1),
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "pytest_exit_code": int(code),
            "targets": sorted(targets),
        }
    ]
    if args.merge and args.out.is_file():
        old = json.loads(args.out.read_text(encoding="utf-8"))
        # A target measured again replaces its entry; the old one is kept with this run.
        replaced = {k: v for k, v in old.get("targets", {}).items() if k in targets}
        if replaced:
            runs[0]["replaced_targets"] = replaced
        runs = [*old.get("runs", []), *runs]
        targets = {**old.get("targets", {}), **targets}
        wall = sum(r["wall_s"] for r in runs)
    result = {
        "benchmark": "fuzz",
        "profile": args.profile,
        "cases_override": args.cases,
        "command": shlex.join(["python", "-m", "benchmarks.robustness.fuzz", *sys.argv[1:]]),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "pytest_exit_code": int(code),  # this run's; `all_passed`: every target in the file
        "all_passed": all(t["outcome"] == "passed" for t in targets.values()),
        "postgres_url": POSTGRES_URL if any("[postgres]" in t for t in targets) else None,
        "runs": runs,
        "targets": dict(sorted(targets.items())),
        "total": {
            "targets": len(targets),
            "cases": sum(t["cases"] for t in targets.values()),
            "failures_found": sum(t["failures_found"] for t in targets.values()),
            "wall_s": round(wall, 1),
        },
    }
    print_result(result, args.out, ensure_ascii=False)


if __name__ == "__main__":
    main()

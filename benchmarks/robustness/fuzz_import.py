"""Hostile exports: property-based fuzzing (hypothesis) of every `deskbot import
conversations` format and of the discover CSV, 10,000 new cases each, reported per format.

Runs the suite's import fuzz test (`tests/training/imports/test_imports_fuzz.py`) in this
process under the `ci-full` profile (10,000 new random cases per format: JSONL, CSV,
Chatwoot, Zendesk, Rasa; each case any bytes, or records of the format's shape with
hostile values, imported with or without --strict and --format into a real SQLite
store). A case passes when the import ends in a report or a short error naming the file,
what is stored is exactly what the report counts, and a refused file stores nothing.

`discover_csv` runs `tests/training/discovery/test_discover_fuzz.py` the same way: each
case any bytes, or a CSV of messages with hostile headers and cells, read by
`deskbot discover intents --data`'s reader; it passes when the messages read are
consistent (and, for a file written from known rows, exactly those rows) or the file is
refused with one printable `FILE[:LINE]:` line, and a refused file given to the CLI exits
with that `error:` line and writes nothing to --out (the clustering never runs).

    nice -n 5 python -m benchmarks.robustness.fuzz_import
    python -m benchmarks.robustness.fuzz_import --cases 300 --only csv   # a quick look
    nice -n 19 python -m benchmarks.robustness.fuzz_import --only discover_csv --name fuzz_discover

Prints one JSON object on stdout (and writes benchmarks/results/fuzz_import.json);
pytest's report on stderr.
"""

from __future__ import annotations

import os
import platform

from benchmarks.common import ROOT, command, emit, machine, parser
from benchmarks.robustness.fuzz import run_fuzz_tests

TEST = "tests/training/imports/test_imports_fuzz.py"
DISCOVER = "discover_csv"  # the target of the discover CSV's fuzz test, run after the imports
DISCOVER_TEST = "tests/training/discovery/test_discover_fuzz.py"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--profile", default="ci-full", choices=["ci", "ci-full"])
    ap.add_argument("--cases", type=int, default=None, help="override every format's count")
    ap.add_argument(
        "--only", default=None, help=f"one format: jsonl, csv, chatwoot, zendesk, rasa, {DISCOVER}"
    )
    ap.add_argument("--name", default="fuzz_import", help="results file name")
    args = ap.parse_args()

    os.environ["DESKBOT_FUZZ_PROFILE"] = args.profile
    os.environ.setdefault("DESKBOT_FUZZ_SHRINK", "0")  # report a failure as found
    if args.cases:
        os.environ["DESKBOT_FUZZ_CASES"] = str(args.cases)
    os.chdir(ROOT)  # pytest reads its configuration from the repository root
    code, wall, targets = run_fuzz_tests(
        [DISCOVER_TEST]
        if args.only == DISCOVER
        else ["-k", args.only, TEST]
        if args.only
        else [TEST, DISCOVER_TEST]
    )
    formats = {
        name.removeprefix("import-"): {k: v for k, v in t.items() if k != "failures_found"}
        for name, t in targets.items()
    }
    result = {
        "benchmark": "fuzz_import",
        "command": command("benchmarks.robustness.fuzz_import"),
        "profile": args.profile,
        "cases_override": args.cases,
        "target": "10,000 cases a format: no crash, a clear error, nothing stored from a "
        "refused file (discover_csv: nothing written to --out)",
        "pytest_exit_code": int(code),
        "all_passed": bool(formats) and all(f["outcome"] == "passed" for f in formats.values()),
        "met": int(code) == 0
        and all(f["cases"] >= 10_000 and f["failed_cases"] == 0 for f in formats.values()),
        "formats": formats,
        "total": {"cases": sum(f["cases"] for f in formats.values()), "wall_s": round(wall, 1)},
        "conditions": {
            "store": "SQLite in memory, one per format (discover_csv: none, read_csv and the CLI)",
            "python": platform.python_version(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            **machine(),
        },
    }
    emit(result, args.name)


if __name__ == "__main__":
    main()

"""What the benchmarks share: the BANKING77 data, the results folder, logging, machine facts.

Submodules for the larger parts: `benchmarks.common.serve` (bot projects, server
processes, simulated customers, what was stored), `benchmarks.common.loop` (the
learning-loop benchmarks' 10-shot model, registry and store), and
`benchmarks.common.http_client` (a cheap keep-alive client for load generators).

Run the scripts as modules from the repository root, e.g.
`python -m benchmarks.performance.turn_latency --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

# Before any model library is imported: the benchmarks never download, and their threads
# are counted, not forked.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from deskbot.training.data.datasets import IntentDataset, load_intents

ROOT = Path(__file__).resolve().parents[2]
DEMO = Path(str(resources.files("deskbot.bot.demo")))
DATA = DEMO / "data" / "banking77"
RESULTS = ROOT / "benchmarks" / "results"


def log(msg: str) -> None:
    """A progress line on stderr (stdout carries the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def banking() -> tuple[IntentDataset, IntentDataset]:
    """BANKING77's train and test splits (the test split is never trained on)."""
    return load_intents(DATA / "train.csv"), load_intents(DATA / "test.csv")


def cpu_seconds() -> float:
    """CPU time of this process and its threads: what the run costs on an idle machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> dict[str, Any]:
    """Cores and the load average now (`serve.machine_details` says more)."""
    return {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}


def emit(result: dict[str, Any], name: str) -> None:
    """Write `result` to `benchmarks/results/NAME.json` and print it on stdout."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result))


def save_figure(fig: Any, name: str) -> Path:
    """Write a matplotlib figure to `benchmarks/results/NAME.png` and say where."""
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    log(f"plot: {path}")
    return path


def print_result(
    result: dict[str, Any], out: Path | None, *, indent: int = 2, ensure_ascii: bool = True
) -> None:
    """Print `result` as JSON on stdout and, given `out`, write it there too."""
    text = json.dumps(result, indent=indent, ensure_ascii=ensure_ascii)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")


def command(module: str) -> str:
    """How this run was started, for the result: `python -m MODULE ARGS`."""
    return " ".join(["python", "-m", module, *sys.argv[1:]])


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose description is the first line of the script's docstring."""
    return argparse.ArgumentParser(description=(doc or "").split("\n")[0])


def add_numbers(ap: argparse.ArgumentParser, **defaults: float | str) -> None:
    """One option a keyword, typed by its default: `per_intent=4` adds
    `--per-intent` (an int, default 4)."""
    for name, default in defaults.items():
        ap.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)


def add_work_options(ap: argparse.ArgumentParser, name: str) -> None:
    """`--work` (this run's folder, emptied first) and `--cache` (the shared 10-shot model)."""
    ap.add_argument("--work", type=Path, default=Path("var/bench") / name)
    ap.add_argument("--cache", type=Path, default=Path("var/bench"))


def add_query_options(
    ap: argparse.ArgumentParser, *, precision_help: str, encoder_help: str
) -> None:
    """`--query-precision` and `--query-encoder`: how the FAQ query is embedded."""
    ap.add_argument(
        "--query-precision", choices=["fp32", "int8"], default="fp32", help=precision_help
    )
    ap.add_argument(
        "--query-encoder", choices=["embedder", "intents"], default="embedder", help=encoder_help
    )

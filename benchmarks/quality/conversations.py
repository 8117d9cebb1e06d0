"""Follow-ups and topic switches: does the bot read a message in its thread?

The held-out conversations of `benchmarks/data/conversations/heldout.yaml` (written before
any context-aware model, never used for tuning; its README says how) are played, turn by
turn, to the demo bank's bot in this process (its pipeline, store and rasa-sdk action
server, as `deskbot serve` runs them; the generator off, so an FAQ reply is the passage).
Each conversation is judged on its last customer turn:

- `intent`: the turn's intent is one the conversation accepts;
- `answered`: that, and the bot answered it (kind `faq` or `action`), as issue #19 counts.

Reported per type (`follow_up`, `topic_switch`) with a Wilson 95% interval, with the
median and p95 of the judged turns' latency, and a plot.

    python -m benchmarks.quality.conversations --model var/bench/intent-full-seeds/seed13
    python -m benchmarks.quality.conversations --project var/demo
    python -m benchmarks.quality.conversations --project var/demo --context off
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import RESULTS, ROOT, command, emit, log, machine, serve
from deskbot.ui.console.dashboard import wilson_interval

MODULE = "benchmarks.quality.conversations"
DATA = Path(__file__).resolve().parents[1] / "data" / "conversations" / "heldout.yaml"
ANSWERED = ("faq", "action")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", help="a prepared bot project (live model and index)")
    ap.add_argument("--model", help="an intent model version folder (a demo project is made)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("var/bench/conversations"))
    ap.add_argument("--out", default="conversations")
    ap.add_argument(
        "--context",
        choices=["on", "off"],
        default="on",
        help="read messages in their thread (dialogue.context.enabled; its other settings "
        "are the project's)",
    )
    args = ap.parse_args()
    if not (args.project or args.model):
        ap.error("give --project DIR or --model DIR")
    return args


def interval(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of `k` of `n` (the dashboard's), rounded."""
    if n == 0:
        return (0.0, 0.0)
    low, high = wilson_interval(k, n)
    return (round(low, 4), round(high, 4))


def play(bot: Any, conversations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each conversation through the pipeline; what its last turn got."""
    from deskbot.bot.testing.cases import ConversationCase, Step
    from deskbot.bot.testing.runner import InProcessDriver

    driver = InProcessDriver(bot)
    rows = []
    for i, convo in enumerate(conversations):
        turns = [str(t) for t in convo["turns"]]
        driver.start(ConversationCase(convo["id"], "heldout", 1, (Step(1, user=turns[0]),)))
        for text in turns[:-1]:
            driver.say(text)
        started = time.perf_counter()
        seen = driver.say(turns[-1])
        ms = (time.perf_counter() - started) * 1000
        right = seen.intent in convo["accept"]
        rows.append(
            {
                "id": convo["id"],
                "type": convo["type"],
                "intent": seen.intent,
                "kind": seen.kind,
                "accept": convo["accept"],
                "intent_right": right,
                "answered": right and seen.kind in ANSWERED,
                "ms": round(ms, 2),
            }
        )
        if (i + 1) % 25 == 0:
            log(f"{i + 1}/{len(conversations)} conversations")
    return rows


def scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("follow_up", "topic_switch"):
        part = [r for r in rows if r["type"] == kind]
        n = len(part)
        intent = sum(r["intent_right"] for r in part)
        answered = sum(r["answered"] for r in part)
        out[kind] = {
            "n": n,
            "intent_accuracy": round(intent / n, 4) if n else None,
            "intent_accuracy_95ci": interval(intent, n),
            "answered_accuracy": round(answered / n, 4) if n else None,
            "answered_accuracy_95ci": interval(answered, n),
            "kinds": {
                k: sum(r["kind"] == k for r in part) for k in sorted({r["kind"] for r in part})
            },
        }
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = ["follow_up", "topic_switch"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for offset, (key, label) in enumerate(
        [("intent_accuracy", "right intent"), ("answered_accuracy", "answered (faq/action)")]
    ):
        values = [100 * (result[k][key] or 0) for k in kinds]
        lows = [100 * result[k][f"{key}_95ci"][0] for k in kinds]
        highs = [100 * result[k][f"{key}_95ci"][1] for k in kinds]
        xs = [i + offset * 0.38 for i in range(len(kinds))]
        errs = [
            [v - lo for v, lo in zip(values, lows, strict=True)],
            [hi - v for v, hi in zip(values, highs, strict=True)],
        ]
        ax.bar(xs, values, width=0.36, yerr=errs, capsize=4, label=label)
    ax.axhline(90, color="grey", linestyle=":", label="follow-up target 90%")
    ax.axhline(97, color="black", linestyle=":", label="switch target 97%")
    ax.set_xticks([i + 0.19 for i in range(len(kinds))], ["follow-ups", "topic switches"])
    ax.set_ylabel("% of held-out conversations (last turn)")
    ax.set_ylim(0, 100)
    ax.set_title("Read in its thread? (held-out conversations)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    from deskbot.bot.core.config import load_config
    from deskbot.bot.server.container import build_bot

    conversations = yaml.safe_load(args.data.read_text(encoding="utf-8"))["conversations"]
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    project = serve.prepare_project(args.work, project=args.project, model=args.model)
    actions = serve.action_server(project, args.work)
    actions.start()
    try:
        actions.wait_ready("/health")
        serve.edit_config(
            project,
            {
                "actions": {"url": f"http://127.0.0.1:{actions.port}/webhook"},
                "generator": {"backend": "none"},
                "dialogue": {"context": {"enabled": args.context == "on"}},
            },
        )
        config = load_config(project)
        bot = build_bot(config)
        try:
            bot.warm_up()
            log(f"{len(conversations)} conversations, judged on their last turn")
            rows = play(bot, conversations)
        finally:
            bot.close()
    finally:
        actions.stop()
    result: dict[str, Any] = scores(rows)
    plot_path = RESULTS / f"{args.out}.png"
    RESULTS.mkdir(exist_ok=True)
    plot(result, plot_path)
    latencies = [r["ms"] for r in rows]
    emit(
        {
            "benchmark": "conversations",
            "command": command(MODULE),
            "data": str(args.data.resolve().relative_to(ROOT)),
            "model": args.model or args.project,
            "context": dataclasses.asdict(config.dialogue.context),
            **result,
            "judged_turn_ms_median": round(statistics.median(latencies), 2),
            "judged_turn_ms_p95": serve.pct(latencies, 0.95),
            "misses": [r for r in rows if not r["answered"]],
            "plot": str(plot_path),
            **machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()

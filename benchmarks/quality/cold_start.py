"""Cold start from unlabelled messages to a trained classifier (issue #20 item 5).

The real commands, each in its own process as an operator runs them, on BANKING77's
10,003 train texts with their categories hidden from the method:

1. `deskbot init DIR` (the demo bank), its intents file taken out of the config, so the
   project has no labelled data at all;
2. `deskbot discover intents --data TEXTS.csv --k K --out DIR/var/discovery` on a CSV
   holding the texts only;
3. a simulated agent reviews the candidates with the console's own review code
   (`DiscoveryReview`, what the Discover tab calls), every call one action, at most
   `--budget` in all: it approves each candidate, largest first, named as the category
   most of its members have. Three strategies (`--variants`): `names` does only that;
   `removals` spends the actions left on the candidates with the most wrong members
   (one "remove" of all of them before the approval); `splits` first splits off, for
   each category no candidate is mostly about, its members from the candidate holding
   most of them (a split and an approval: two actions), then removes as `removals`
   does. A candidate past the budget is left unreviewed. The agent is the only part
   that sees the categories, as a person reading the members would;
4. `deskbot train intents -c DIR --promote` on the approved examples
   (`intents.discovered_data`, the demo's training arguments), then
   `deskbot eval intents -c DIR --json` on BANKING77's test split (3,080 texts; a
   category the review refuses as a name, `reverted_card_payment?`, is named without
   its `?`, in the test split too).

    python -m benchmarks.quality.cold_start [--k 77] [--budget 120] [--seed 0]

Prints one JSON object per run and writes `benchmarks/results/cold_start.json` and a
plot: test accuracy against the agent's actions, beside the issue's target (85% after at
most 120 actions) and the 10-shot comparison (770 hand-labelled messages: 86.6%).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import DATA, command, emit, log, machine, save_figure
from benchmarks.common.serve import deskbot_exe
from deskbot.ui.console.discovery import DiscoveryReview

MODULE = "benchmarks.quality.cold_start"
TARGET = {"accuracy": 0.85, "actions": 120}
TEN_SHOT = {"accuracy": 0.866, "labelled_messages": 770}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--k", default="77", help="candidates to discover: a number or 'auto'")
    ap.add_argument("--budget", type=int, default=TARGET["actions"], help="agent actions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--variants",
        nargs="+",
        default=["names", "removals", "splits"],
        choices=["names", "removals", "splits"],
        help="names: approve only; removals: the rest of the budget removes wrong members; "
        "splits: it first splits off intents no candidate is about, then removes",
    )
    ap.add_argument("--work", type=Path, default=Path("var/bench/cold_start"))
    ap.add_argument("--out", default="cold_start")
    return ap.parse_args()


def run(cmd: list[str], what: str) -> str:
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    log(f"{what}: {time.monotonic() - t0:.0f} s")
    return done.stdout


def hidden_texts(work: Path) -> tuple[Path, dict[str, str]]:
    """The train texts alone in a CSV, and each row's category by the id discovery gives
    it (`line:N`, N the row's line in that file)."""
    with open(DATA / "train.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    path = work / "texts.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text"])
        for row in rows:
            writer.writerow([" ".join(row["text"].split())])
    return path, {f"line:{i + 2}": row["category"] for i, row in enumerate(rows)}


def unlabelled_project(exe: str, project: Path) -> None:
    """The demo bank without its intents file: discovered examples are all it learns."""
    run([exe, "init", str(project)], "init")
    config = project / "deskbot.yaml"
    text = config.read_text(encoding="utf-8")
    for key in ("train_data", "examples"):  # the intents file, and its FAQ phrasings
        text, n = re.subn(rf"(?m)^  {key}: .*\n", "", text)
        if n != 1:
            raise SystemExit(f"{config}: expected one {key} line")
    config.write_text(text, encoding="utf-8")
    (project / "data" / "intents" / "train.csv").unlink()


def agent_name(category: str) -> str:
    """The name a person gives a category the review would refuse as it is
    (`reverted_card_payment?` -> `reverted_card_payment`)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "", category)


def renamed_test_set(work: Path) -> Path:
    """BANKING77's test split with the agent's names for its categories."""
    with open(DATA / "test.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    path = work / "test.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "category"])
        writer.writerows([row["text"], agent_name(row["category"])] for row in rows)
    return path


def review(project: Path, truth: dict[str, str], budget: int, strategy: str) -> dict[str, Any]:
    """The simulated agent (module docstring), through the console's review code; returns
    what it did. Every call on the review is one action: an approval (which names the
    candidate), a split, a removal."""
    folder = project / "var" / "discovery"
    reviewer = DiscoveryReview(folder, project / "data" / "intents" / "discovered.csv")

    def label(member: dict[str, Any]) -> str:
        return agent_name(truth[member["id"]])

    def majority(group: dict[str, Any]) -> str:
        return Counter(label(m) for m in group["members"]).most_common(1)[0][0]

    candidates = len(reviewer.groups())
    approvals = min(candidates, budget)
    spare = budget - approvals
    splits = removals = 0
    parts: set[str] = set()  # the candidates split off
    if strategy == "splits":
        # An intent no candidate is mostly about: its members split off the candidate
        # holding most of them, then approved (two actions).
        named = {majority(g) for g in reviewer.groups()[:approvals]}
        missing = sorted(set(map(agent_name, truth.values())) - named)
        hosts = []
        groups = reviewer.groups()
        for intent in missing:
            best = max(groups, key=lambda g: sum(label(m) == intent for m in g["members"]))
            picked = [m["id"] for m in best["members"] if label(m) == intent]
            if 0 < len(picked) < len(best["members"]):
                hosts.append((len(picked), intent, best["id"], picked))
        for _n, _intent, gid, picked in sorted(hosts, reverse=True)[: spare // 2]:
            parts.add(reviewer.split(gid, picked)[1]["id"])
            splits += 1
        approvals = min(len(reviewer.groups()), budget - splits)
        spare = budget - approvals - splits
    groups = reviewer.groups()
    if len(groups) > approvals:  # every split part is approved, then the largest others
        rest = [g for g in groups if g["id"] not in parts]
        groups = [g for g in groups if g["id"] in parts] + rest[: approvals - len(parts)]
    if strategy in ("removals", "splits"):
        wrong = {}
        for g in groups:
            name = majority(g)
            wrong[g["id"]] = [m["id"] for m in g["members"] if label(m) != name]
        for gid in sorted((g for g in wrong if wrong[g]), key=lambda g: -len(wrong[g]))[:spare]:
            reviewer.remove(gid, wrong[gid])
            removals += 1
    examples = mislabelled = 0
    names = set()
    for g in groups:
        g = reviewer.group(g["id"])
        name = majority(g)
        mislabelled += sum(label(m) != name for m in g["members"])
        examples += reviewer.approve(g["id"], name, by="simulated-agent", before_write=lambda: None)
        names.add(name)
    return {
        "candidates": candidates,
        "approved": len(groups),
        "splits": splits,
        "removals": removals,
        "actions": len(groups) + splits + removals,
        "examples": examples,
        "examples_mislabelled": mislabelled,
        "intents_named": len(names),
        "left_unreviewed": len(reviewer.groups()),
    }


def variant(
    args: argparse.Namespace, exe: str, base: Path, truth: dict[str, str], name: str
) -> dict[str, Any]:
    project = args.work / name
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(base, project)
    agent = review(project, truth, args.budget, name)
    log(f"{name}: {agent}")
    t0 = time.monotonic()
    run([exe, "train", "intents", "-c", str(project), "--promote"], f"{name}: train intents")
    train_s = time.monotonic() - t0
    test = renamed_test_set(args.work)
    metrics = json.loads(
        run([exe, "eval", "intents", "-c", str(project), "--data", str(test), "--json"], "eval")
    )
    return {
        "variant": name,
        "agent": agent,
        "train_seconds": round(train_s, 1),
        "test": {
            key: metrics[key]
            for key in ("accuracy", "in_scope_accuracy", "macro_f1", "n")
            if key in metrics
        },
    }


def main() -> None:
    args = parse_args()
    exe = deskbot_exe()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    texts, truth = hidden_texts(args.work)
    base = args.work / "project"
    unlabelled_project(exe, base)
    t0 = time.monotonic()
    found = json.loads(
        run(
            [
                *(exe, "discover", "intents", "--data", str(texts), "--k", args.k),
                *("--seed", str(args.seed), "--out", str(base / "var" / "discovery"), "--json"),
            ],
            "discover intents",
        )
    )
    discover_s = time.monotonic() - t0
    runs = [variant(args, exe, base, truth, v) for v in args.variants]
    result = {
        "command": command(MODULE),
        "data": "BANKING77 train.csv texts (categories hidden from discovery and training); "
        "test.csv scores",
        "k": args.k,
        "seed": args.seed,
        "budget": args.budget,
        "discovery": {**found, "wall_seconds": round(discover_s, 1)},
        "runs": runs,
        "targets": TARGET,
        "ten_shot_comparison": TEN_SHOT,
        "machine": machine(),
    }
    plot(result, args.out)
    emit(result, args.out)


def plot(result: dict[str, Any], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in result["runs"]:
        acc = 100 * r["test"]["accuracy"]
        ax.scatter([r["agent"]["actions"]], [acc], s=60, label=f"{r['variant']} ({acc:.1f}%)")
    ax.axhline(100 * TARGET["accuracy"], color="k", linestyle="dashed", label="target 85%")
    ax.axvline(TARGET["actions"], color="grey", linestyle="dotted", label="120 actions")
    ax.set_xlabel("agent actions")
    ax.set_ylabel("BANKING77 test accuracy (%)")
    ax.set_title(f"Cold start from discovery (k={result['k']}, seed {result['seed']})")
    ax.set_xlim(0, max(140, *(r["agent"]["actions"] + 10 for r in result["runs"])))
    ax.legend(fontsize=8)
    save_figure(fig, out)


if __name__ == "__main__":
    main()

"""Planning a night: what is new since the live model, and what it replays of what it knew."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deskbot.knowledge.files.fsutil import atomic_write_text
from deskbot.training.data.datasets import OOS_LABEL, IntentDataset
from deskbot.training.data.export import AGENT, Example, ExportResult, text_key
from deskbot.training.nightly.settings import RetrainSettings


@dataclass
class NightPlan:
    """What a night learns: the new examples, and what waits or was relabelled."""

    new: list[Example]
    relabelled: int
    added_intents: list[str]
    held_back: dict[str, int]
    deferred: int
    known_after: dict[str, str]


def plan_night(
    exported: ExportResult,
    known: dict[str, str],
    live_labels: set[str],
    base_intents: set[str],
    s: RetrainSettings,
) -> NightPlan:
    """What the live model has not learnt yet: new examples and changed labels; new intents
    wait until agents gave them `min_new_intent_examples`."""
    fresh = [e for e in exported.examples if known.get(e.key) != e.intent]
    relabelled = sum(1 for e in fresh if e.key in known)
    counts = Counter(e.intent for e in fresh)
    new_intents = {
        y for y in counts if y != OOS_LABEL and y not in live_labels and y not in base_intents
    }
    held_back = {y: counts[y] for y in sorted(new_intents) if counts[y] < s.min_new_intent_examples}
    fresh = [e for e in fresh if e.intent not in held_back]
    new = fresh[: s.max_new]  # agents' examples come first
    known_after = dict(known)
    known_after.update({e.key: e.intent for e in new})
    return NightPlan(
        new=new,
        relabelled=relabelled,
        added_intents=sorted(new_intents - set(held_back)),
        held_back=held_back,
        deferred=max(0, len(fresh) - s.max_new),
        known_after=known_after,
    )


def night_dataset(
    plan: NightPlan,
    exported: ExportResult,
    known: dict[str, str],
    base_data: IntentDataset,
    s: RetrainSettings,
    fingerprint: str,
) -> IntentDataset:
    """The new examples and a replayed, stratified sample of what the live model knew."""
    new_keys = {e.key for e in plan.new}
    pool: dict[str, tuple[str, str]] = {}
    for t, y in zip(base_data.texts, base_data.labels, strict=True):
        k = text_key(t)
        if known.get(k, y) == y and k not in new_keys:
            pool[k] = (t, y)
    for e in exported.examples:
        if known.get(e.key) == e.intent and e.key not in new_keys:
            pool[e.key] = (e.text, e.intent)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for k in sorted(pool):
        by_label.setdefault(pool[k][1], []).append(pool[k])
    replay = _replay_sample(by_label, len(plan.new), s, fingerprint)
    texts = [e.text for e in plan.new] + [t for t, _ in replay]
    labels = [e.intent for e in plan.new] + [y for _, y in replay]
    digest = hashlib.sha256(
        "\n".join(f"{t}\t{y}" for t, y in zip(texts, labels, strict=True)).encode()
    ).hexdigest()
    return IntentDataset(tuple(texts), tuple(labels), "retrain night", digest)


def _replay_sample(
    by_label: dict[str, list[tuple[str, str]]], n_new: int, s: RetrainSettings, fingerprint: str
) -> list[tuple[str, str]]:
    """A stratified sample of the known examples, at least `replay_min_per_intent` each."""
    rng = random.Random(f"{s.seed}-{fingerprint}")
    total = sum(len(v) for v in by_label.values())
    wanted = total if s.replay_ratio is None else round(s.replay_ratio * n_new)
    target = min(s.replay_max, wanted)
    replay: list[tuple[str, str]] = []
    for label in sorted(by_label):
        items = by_label[label]
        share = round(target * len(items) / total) if total else 0
        # Out-of-scope examples are the detector's bank, not a class to learn: a
        # sample would forget the topics agents marked on earlier nights.
        n = (
            len(items)
            if label == OOS_LABEL
            else min(len(items), max(s.replay_min_per_intent, share))
        )
        replay.extend(rng.sample(items, n))
    return replay


def summarize(exported: ExportResult, plan: NightPlan) -> dict[str, Any]:
    return {
        "export": exported.summary(),
        "new_examples": len(plan.new),
        "new_from_agents": sum(e.source == AGENT for e in plan.new),
        "relabelled": plan.relabelled,
        "new_intents_added": plan.added_intents,
        "new_intents_held_back": plan.held_back,
        "deferred_to_next_night": plan.deferred,
    }


def run_fingerprint(live: str, plan: NightPlan, **inputs: object) -> str:
    """What makes a run the same as an earlier one: the live version, the new examples
    and the other `inputs` (settings, training arguments, the validation window's and the
    test set's hashes). The same fingerprint: the same run, answered from the record."""
    return hashlib.sha256(
        json.dumps(
            {"live": live, "new": sorted((e.key, e.intent) for e in plan.new), **inputs},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()


def read_known(path: Path) -> dict[str, str] | None:
    """What a model version was trained on (text_key -> label), as `write_known` wrote
    it; None when it was never written."""
    if not path.is_file():
        return None
    rows = (line.partition("\t") for line in path.read_text(encoding="utf-8").splitlines())
    return {key: label for key, _, label in rows}


def write_known(path: Path, known: dict[str, str]) -> None:
    """Record what a model version was trained on, one `key<TAB>label` line each
    (written whole or not at all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(f"{k}\t{y}\n" for k, y in sorted(known.items())))

"""Assemble `labelled.jsonl` from the generated sentences and the hand labels.

Sources (see README.md): the sentences of `benchmarks/results/generator_grounding_turns.jsonl`
(ids `t<n>`, in file order) and of `raw_replies.jsonl` (ids `g<n>`), each with the
passages its turn cited; the labels are `labels.tsv` (`id<TAB>label<TAB>note`), written
by hand. A sentence without a label is left out (list-item numbers such as "1." and a
last sentence cut off by the token limit are never labelled).

Run:
    python -m benchmarks.data.guard.build_labelled
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from deskbot.bot.generation.guard import split_sentences

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TURNS = ROOT / "benchmarks" / "results" / "generator_grounding_turns.jsonl"
FAQ = ROOT / "bot" / "demo" / "faq.yaml"
LABELS = ("supported", "contradicted", "unsupported")


def candidates() -> list[dict[str, object]]:
    """Every generated sentence with its turn's passage ids, ids `t<n>` then `g<n>`."""
    out: list[dict[str, object]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for line in TURNS.open(encoding="utf-8"):
        turn = json.loads(line)
        sentences = split_sentences(turn["text"]) if turn["kind"] == "generated" else []
        if "unsupported sentence" in turn["reason"]:
            sentences += turn["unsupported"]
        for s in sentences:
            key = (s, tuple(turn["passage_ids"]))
            if key not in seen:
                seen.add(key)
                out.append({"sentence": s, "passage_ids": turn["passage_ids"],
                            "source": "grounding_turns"})  # fmt: skip
    for i, c in enumerate(out):
        c["id"] = f"t{i}"
    n = 0
    for line in (HERE / "raw_replies.jsonl").open(encoding="utf-8"):
        reply = json.loads(line)
        sentences = split_sentences(reply["reply"])
        if sentences and not re.search(r"[.!?…][\"')\]]*$", sentences[-1]):
            sentences = sentences[:-1]  # cut off by the token limit: never shown
        for s in sentences:
            out.append({"id": f"g{n}", "sentence": s, "passage_ids": reply["passage_ids"],
                        "source": "raw_replies", "question": reply["question"]})  # fmt: skip
            n += 1
    return out


def main() -> None:
    faq = {e["id"]: e["answer"] for e in yaml.safe_load(FAQ.read_text())["entries"]}
    labels: dict[str, tuple[str, str]] = {}
    for no, line in enumerate((HERE / "labels.tsv").read_text().splitlines(), 1):
        cid, label, note = [*line.split("\t"), "", ""][:3]
        if label not in LABELS:
            raise SystemExit(f"labels.tsv:{no}: label must be one of {LABELS}, got {label!r}")
        labels[cid] = (label, note)
    rows = []
    for c in candidates():
        if c["id"] not in labels:
            continue
        label, note = labels.pop(str(c["id"]))
        ids = list(c["passage_ids"])  # type: ignore[call-overload]
        rows.append({**c, "passages": [{"id": p, "text": faq[p]} for p in ids],
                     "label": label, "note": note})  # fmt: skip
    if labels:
        raise SystemExit(f"labels.tsv: ids with no sentence: {sorted(labels)[:5]}")
    with (HERE / "labelled.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} labelled sentences")


if __name__ == "__main__":
    main()

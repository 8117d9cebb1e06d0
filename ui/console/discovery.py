"""The Discover tab's review of candidate intents, kept in files (#20 item 3).

`deskbot discover intents -c PROJECT --out DIR` writes `candidates.json` into DIR
(`intents.discovery_dir`, default `var/discovery`). Agents work on a copy of those
candidates, `review.json` beside it: they name a candidate, merge two, split one (into
the members they pick, or in two by KMeans on the members' embeddings), remove wrong
members, and approve it as an intent. Approving appends its members to
`intents.discovered_data` (default `data/intents/discovered.csv`): a `text,category`
CSV that `deskbot train intents` and the nightly job read with `intents.train_data`,
its rows marked `source` `discovery` with `ref` the member's id in the store (a
conversation, or `conversation:turn`), which `deskbot discover answers` follows to the
agents' replies. A new `candidates.json` (another discovery run) starts a new copy;
what was approved stays in the CSV. Every change is made under one lock, and files are
replaced whole, so a refused or failed change leaves them as they were.

The console may not import `training`: this reads `candidates.json`'s documented
fields (`name`, `size`, `cohesion`, `keywords`, `member_ids`, `member_texts`) directly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from deskbot.bot.core.errors import DataError
from deskbot.knowledge.files.fsutil import atomic_write_text, file_lock

CANDIDATES_FILE = "candidates.json"
REVIEW_FILE = "review.json"
DISCOVERY_SOURCE = "discovery"
CSV_HEADER = ["text", "category", "source", "ref"]
MAX_TEXT_CHARS = 2_000  # what the training data reader accepts
_INTENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

Group = dict[str, Any]  # id, name, keywords, cohesion, members: [{id, text}]
Embed = Callable[[list[str]], np.ndarray]


class ReviewError(DataError):
    """A change the review refuses; the message says what to do instead."""


def intent_name(name: str, known: Collection[str] = ()) -> str:
    """A typed intent name, checked: letters, digits, `_ . -`, at most 128 characters,
    or one of the `known` intents as it is (BANKING77's `reverted_card_payment?`: the
    demo's own model has it, and an agent picks it from the list)."""
    clean = (name or "").strip()
    if clean in known:
        return clean
    if not _INTENT_NAME.match(clean):
        raise ReviewError(
            "Name the intent with letters, digits, '_', '.' or '-' (no spaces), e.g. card_arrival."
        )
    return clean


class DiscoveryReview:
    """Candidates under review and the approved examples (see the module docstring).

    Args:
        folder: where `candidates.json` is (`intents.discovery_dir`).
        discovered: the approved examples' CSV (`intents.discovered_data`).
    """

    def __init__(self, folder: Path, discovered: Path) -> None:
        self.folder = folder
        self.discovered = discovered
        self.candidates_file = folder / CANDIDATES_FILE
        self.review_file = folder / REVIEW_FILE

    # -- reading -------------------------------------------------------------------------

    def groups(self) -> list[Group]:
        """The candidates still to review, largest first."""
        return self._state()["groups"] if self.candidates_file.is_file() else []

    def group(self, gid: str) -> Group:
        found = next((g for g in self.groups() if g["id"] == gid), None)
        if found is None:
            raise ReviewError("Pick a candidate from the list (it may have just been approved).")
        return found

    def approved(self) -> list[dict[str, Any]]:
        return list(self._state()["approved"]) if self.candidates_file.is_file() else []

    def _state(self) -> dict[str, Any]:
        raw = self.candidates_file.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        if self.review_file.is_file():
            state: dict[str, Any] = json.loads(self.review_file.read_text(encoding="utf-8"))
            if state.get("based_on") == digest:
                return state
        return {"based_on": digest, "next": 0, "groups": self._fresh(raw), "approved": []}

    def _fresh(self, raw: bytes) -> list[Group]:
        where = str(self.candidates_file)
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReviewError(f"{where}: not JSON ({exc}); run deskbot discover intents") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("candidates"), list):
            raise ReviewError(f"{where}: no 'candidates' list; run deskbot discover intents")
        groups = []
        for n, c in enumerate(doc["candidates"]):
            ids, texts = c.get("member_ids"), c.get("member_texts")
            if not isinstance(ids, list) or not isinstance(texts, list) or len(ids) != len(texts):
                raise ReviewError(f"{where}: candidate {n + 1} has no matching member_ids/texts")
            groups.append(
                {
                    "id": f"c{n + 1}",
                    "name": str(c.get("name") or f"candidate_{n + 1}"),
                    "keywords": [str(k) for k in c.get("keywords") or []],
                    "cohesion": c.get("cohesion"),
                    "members": [
                        {"id": str(i), "text": " ".join(str(t).split())[:MAX_TEXT_CHARS]}
                        for i, t in zip(ids, texts, strict=True)
                    ],
                }
            )
        return _by_size(groups)

    # -- changes ---------------------------------------------------------------------------

    @contextmanager
    def _changing(self) -> Iterator[dict[str, Any]]:
        if not self.candidates_file.is_file():
            raise ReviewError(
                f"No candidates in {self.folder}: run deskbot discover intents --out there."
            )
        with file_lock(self.folder / (REVIEW_FILE + ".lock")):
            state = self._state()
            yield state
            state["groups"] = _by_size(state["groups"])
            atomic_write_text(self.review_file, json.dumps(state, ensure_ascii=False, indent=1))

    @staticmethod
    def _find(state: dict[str, Any], gid: str) -> Group:
        found: Group | None = next((g for g in state["groups"] if g["id"] == gid), None)
        if found is None:
            raise ReviewError("Pick a candidate from the list (it may have just been approved).")
        return found

    @staticmethod
    def _new_id(state: dict[str, Any]) -> str:
        state["next"] = int(state.get("next", 0)) + 1
        return f"r{state['next']}"

    def rename(self, gid: str, name: str, *, known: Collection[str] = ()) -> Group:
        clean = intent_name(name, known)
        with self._changing() as state:
            group = self._find(state, gid)
            group["name"] = clean
        return group

    def merge(self, gid: str, other: str) -> Group:
        """`other`'s members join `gid`'s; `other` is gone."""
        if gid == other:
            raise ReviewError("Pick two different candidates to merge.")
        with self._changing() as state:
            group, gone = self._find(state, gid), self._find(state, other)
            seen = {m["id"] for m in group["members"]}
            group["members"] += [m for m in gone["members"] if m["id"] not in seen]
            group["keywords"] = list(dict.fromkeys(group["keywords"] + gone["keywords"]))
            group["cohesion"] = None
            state["groups"].remove(gone)
        return group

    def remove(self, gid: str, member_ids: list[str]) -> int:
        """Take wrong members out of a candidate (they are left unlabelled)."""
        if not member_ids:
            raise ReviewError("Tick the members to remove first.")
        with self._changing() as state:
            group = self._find(state, gid)
            before = len(group["members"])
            group["members"] = [m for m in group["members"] if m["id"] not in set(member_ids)]
            if not group["members"]:
                raise ReviewError("That would remove every member; approve or merge it instead.")
            return before - len(group["members"])

    def split(self, gid: str, picked: list[str], embed: Embed | None = None) -> list[Group]:
        """Two candidates from one: the `picked` members and the rest, or with nothing
        picked, KMeans (k=2) on the members' embeddings by `embed`."""
        with self._changing() as state:
            group = self._find(state, gid)
            members = group["members"]
            if len(members) < 2:
                raise ReviewError("A candidate of one member cannot be split.")
            if picked:
                chosen = set(picked)
                side = [m["id"] in chosen for m in members]
                if all(side):
                    raise ReviewError("Tick some members, not all, to split them off.")
            elif embed is None:
                raise ReviewError("Tick the members to split off.")
            else:
                from sklearn.cluster import KMeans

                vectors = embed([m["text"] for m in members])
                labels = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(vectors)
                side = [bool(x) for x in labels.tolist()]
                if all(side) or not any(side):
                    raise ReviewError("These members are all alike; tick those to split off.")
            part = {
                "id": self._new_id(state),
                "name": group["name"] + "_2",
                "keywords": list(group["keywords"]),
                "cohesion": None,
                "members": [m for m, s in zip(members, side, strict=True) if s],
            }
            group["members"] = [m for m, s in zip(members, side, strict=True) if not s]
            group["cohesion"] = None
            state["groups"].append(part)
        return [group, part]

    def approve(
        self,
        gid: str,
        name: str,
        *,
        by: str,
        before_write: Callable[[], None],
        known: Collection[str] = (),
    ) -> int:
        """Approve a candidate as intent `name`: its members become training examples.

        `before_write` runs once the change is checked and before any file is written
        (the console records its audit row there; if it raises, nothing is written).
        `known`: intents the bot has, accepted as named even where a typed name could
        not be. Returns how many examples were added (members already approved are
        skipped).
        """
        clean = intent_name(name, known)
        with self._changing() as state:
            group = self._find(state, gid)
            rows = self._csv_rows()
            have = {(r["ref"], r["category"]) for r in rows}
            added = [
                {"text": m["text"], "category": clean, "source": DISCOVERY_SOURCE, "ref": m["id"]}
                for m in group["members"]
                if m["text"] and (m["id"], clean) not in have
            ]
            before_write()
            self._write_csv(rows + added)
            state["groups"].remove(group)
            state["approved"].append(
                {
                    "id": gid,
                    "intent": clean,
                    "examples": len(added),
                    "by": by,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
        return len(added)

    def _csv_rows(self) -> list[dict[str, str]]:
        if not self.discovered.is_file():
            return []
        text = self.discovered.read_text(encoding="utf-8-sig")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise ReviewError(f"{self.discovered}: expected columns {','.join(CSV_HEADER)}")
        return [{k: (row.get(k) or "") for k in CSV_HEADER} for row in reader]

    def _write_csv(self, rows: list[dict[str, str]]) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self.discovered.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.discovered, out.getvalue())


def _by_size(groups: list[Group]) -> list[Group]:
    return sorted(groups, key=lambda g: (-len(g["members"]), g["id"]))

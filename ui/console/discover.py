"""The console's Discover tab (#20 item 3): candidate intents, reviewed and approved.

Agents see the candidates `deskbot discover intents --out` wrote (largest first), pick
one, read its members, and name it (an existing intent or a new one), merge it with
another, split it (the ticked members, or in two by KMeans on the members' embeddings
by the FAQ's encoder), remove ticked members, or approve it: its members become
training examples of that intent (`ui.console.discovery`). Every change writes an audit
row (`discovery_edited`, `discovery_approved`), an approval's before its examples.

Example:
    >>> discover = lay_out_discover()   # inside the open gr.Tabs     # doctest: +SKIP
    >>> wire_discover(console_handlers, discover)                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from deskbot.bot.store.audit import DISCOVERY_APPROVED, DISCOVERY_EDITED, AuditEntry, AuditError
from deskbot.bot.store.models import Agent
from deskbot.ui.console.components import read_only_table
from deskbot.ui.console.discovery import DiscoveryReview, Group, ReviewError, intent_name
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.render import md_text

__all__ = ["DiscoverHandlers", "DiscoverTab", "lay_out_discover", "wire_discover"]

HEADERS = ["candidate", "name", "size", "cohesion", "keywords", "for example"]
SHOWN_MEMBERS = 200

Component = Any
Update = Any


@dataclass
class DiscoverTab:
    """The Discover tab's components."""

    tab: Component
    notice: Component
    table: Component
    pick: Component
    members: Component
    name: Component
    other: Component
    rename: Component
    approve: Component
    remove: Component
    split: Component
    merge: Component

    @property
    def outputs(self) -> list[Component]:
        return [self.notice, self.table, self.pick, self.members, self.name, self.other]


def _rows(groups: Sequence[Group]) -> list[list[Any]]:
    return [
        [
            g["id"],
            g["name"],
            len(g["members"]),
            "" if g.get("cohesion") is None else f"{g['cohesion']:.2f}",
            ", ".join(g["keywords"][:5]),
            g["members"][0]["text"] if g["members"] else "",
        ]
        for g in groups
    ]


def _choice(g: Group) -> tuple[str, str]:
    return f"{g['name']} ({len(g['members'])})", g["id"]


class DiscoverHandlers:
    """The tab's handlers, over the console's (`me`, `address`, the store)."""

    def __init__(self, h: ConsoleHandlers) -> None:
        self.h = h
        cfg = h.bot.config.intents
        self.review = DiscoveryReview(cfg.discovery_dir, cfg.discovered_data)

    def embed(self, texts: list[str]) -> np.ndarray:
        """The members' embeddings by the FAQ's encoder (the bot's, already loaded)."""
        return np.asarray(self.h.bot.retriever.embedder.embed(texts))

    def intents(self) -> list[str]:
        """Names to offer: the live model's intents and those approved here."""
        names = set(self.h.svc.intents()) | {a["intent"] for a in self.review.approved()}
        return sorted(names)

    def show(self, gid: str | None, notice: str = "") -> tuple[Update, ...]:
        """The table, the picker (keeping `gid` when it is still there), its members."""
        try:
            groups = self.review.groups()
        except ReviewError as exc:
            return (f"**Not shown:** {md_text(str(exc), line_start=False)}",) + (gr.skip(),) * 5
        if not groups and not notice:
            notice = (
                "No candidates to review. Run `deskbot discover intents -c PROJECT --out "
                f"{md_text(str(self.review.folder), line_start=False)}` to find some."
            )
        current = next((g for g in groups if g["id"] == gid), groups[0] if groups else None)
        choices = [_choice(g) for g in groups]
        members = current["members"][:SHOWN_MEMBERS] if current else []
        return (
            notice or f"**{len(groups)} candidates** to review (largest first).",
            gr.update(value=_rows(groups)),
            gr.update(choices=choices, value=current["id"] if current else None),
            gr.update(choices=[(m["text"], m["id"]) for m in members], value=[]),
            gr.update(choices=self.intents(), value=current["name"] if current else ""),
            gr.update(
                choices=[c for c in choices if current and c[1] != current["id"]], value=None
            ),
        )

    def load(self, request: gr.Request) -> tuple[Update, ...]:
        self.h.me(request)
        return self.show(None)

    def picked(self, gid: str | None, request: gr.Request) -> tuple[Update, ...]:
        self.h.me(request)
        return self.show(gid, " ")

    def _audit(self, agent: Agent, request: gr.Request, action: str, gid: str, detail: str) -> None:
        entry = AuditEntry(
            agent.username,
            action,
            "intent_candidate",
            gid,
            None,
            self.h.address(request),
            detail[:200],
        )
        self.h.bot.store.record_audit(entry)

    def _edit(
        self, verb: str, change: Callable[[], str], gid: str | None, request: gr.Request
    ) -> tuple[Update, ...]:
        """Record the edit, then make it; a refused one changes nothing."""
        agent = self.h.me(request)
        if not gid:
            return self.show(None, "**Not done:** pick a candidate first.")
        try:
            self.review.group(gid)
            self._audit(agent, request, DISCOVERY_EDITED, gid, verb)
            said = change()
        except (ReviewError, AuditError) as exc:
            return self.show(gid, f"**Not done:** {md_text(str(exc), line_start=False)}")
        return self.show(gid, said)

    def do_rename(
        self, gid: str | None, name: str | None, request: gr.Request
    ) -> tuple[Update, ...]:
        def change() -> str:
            group = self.review.rename(gid or "", name or "", known=self.intents())
            return f"Renamed to **{md_text(group['name'], line_start=False)}**."

        return self._edit("rename", change, gid, request)

    def do_merge(
        self, gid: str | None, other: str | None, request: gr.Request
    ) -> tuple[Update, ...]:
        def change() -> str:
            if not other:
                raise ReviewError("Pick the candidate to merge into this one.")
            group = self.review.merge(gid or "", other)
            return f"Merged: **{len(group['members'])} members** now."

        return self._edit(f"merge {other}", change, gid, request)

    def do_split(
        self, gid: str | None, ticked: list[str] | None, request: gr.Request
    ) -> tuple[Update, ...]:
        def change() -> str:
            a, b = self.review.split(gid or "", list(ticked or []), self.embed)
            return f"Split in two: {len(a['members'])} and {len(b['members'])} members."

        return self._edit("split", change, gid, request)

    def do_remove(
        self, gid: str | None, ticked: list[str] | None, request: gr.Request
    ) -> tuple[Update, ...]:
        def change() -> str:
            n = self.review.remove(gid or "", list(ticked or []))
            return f"Removed {n} member{'s' if n != 1 else ''}."

        return self._edit(f"remove {len(ticked or [])}", change, gid, request)

    def do_approve(
        self, gid: str | None, name: str | None, request: gr.Request
    ) -> tuple[Update, ...]:
        agent = self.h.me(request)
        if not gid:
            return self.show(None, "**Not done:** pick a candidate first.")
        try:
            known = self.intents()
            intent = intent_name(name or "", known)
            n = self.review.approve(
                gid,
                intent,
                known=known,
                by=agent.username,
                before_write=lambda: self._audit(
                    agent, request, DISCOVERY_APPROVED, gid, f"intent={intent}"
                ),
            )
        except (ReviewError, AuditError) as exc:
            return self.show(gid, f"**Not done:** {md_text(str(exc), line_start=False)}")
        return self.show(
            None,
            f"**Approved as {md_text(intent, line_start=False)}:** {n} training examples "
            "added; the next training uses them.",
        )


def lay_out_discover() -> DiscoverTab:
    """The tab, inside the open `gr.Tabs`."""
    with gr.Tab("Discover", id="discover") as tab:
        gr.Markdown(
            "Candidate intents found in past conversations. Pick one, check its members, "
            "name it and approve it: its messages become training examples."
        )
        notice = gr.Markdown("", elem_id="discover-notice")
        table = read_only_table(
            HEADERS,
            datatype=["str", "str", "number", "str", "str", "str"],
            label="Candidates",
            elem_id="discover-table",
            max_height=320,
        )
        with gr.Row(equal_height=True):
            pick = gr.Dropdown(label="Candidate", choices=[], elem_id="discover-pick")
            name = gr.Dropdown(
                label="Intent name (existing or new)",
                choices=[],
                allow_custom_value=True,
                elem_id="discover-name",
            )
            rename = gr.Button("Rename", elem_id="discover-rename")
            approve = gr.Button("Approve", variant="primary", elem_id="discover-approve")
        members = gr.CheckboxGroup(
            label="Members (tick to remove or split off)", choices=[], elem_id="discover-members"
        )
        with gr.Row(equal_height=True):
            remove = gr.Button("Remove ticked", elem_id="discover-remove")
            split = gr.Button("Split (ticked, or in two)", elem_id="discover-split")
            other = gr.Dropdown(label="Merge with", choices=[], elem_id="discover-other")
            merge = gr.Button("Merge", elem_id="discover-merge")
    return DiscoverTab(
        tab, notice, table, pick, members, name, other, rename, approve, remove, split, merge
    )


def wire_discover(h: ConsoleHandlers, d: DiscoverTab, *, hide: Sequence[Component] = ()) -> None:
    """Connect the tab's events (no `.change`: see `ui.console.page._on`); `hide` are
    components that do not belong under this tab (the label form)."""
    a = DiscoverHandlers(h)
    private: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
    for component in hide:
        d.tab.select(lambda: gr.update(visible=False), None, [component], **private)
    d.tab.select(a.load, None, d.outputs, **private)
    d.pick.select(a.picked, [d.pick], d.outputs, **private)
    d.rename.click(a.do_rename, [d.pick, d.name], d.outputs, **private)
    d.approve.click(a.do_approve, [d.pick, d.name], d.outputs, **private)
    d.remove.click(a.do_remove, [d.pick, d.members], d.outputs, **private)
    d.split.click(a.do_split, [d.pick, d.members], d.outputs, **private)
    d.merge.click(a.do_merge, [d.pick, d.other], d.outputs, **private)

"""The console's FAQ proposals tab (#20 item 4): agents approve, edit or reject proposals.

Proposals are FAQ entries made from agents' corrections (the nightly job) and answers
mined from agents' replies (`deskbot discover answers`), in `faq-proposals.yaml` beside
the FAQ index (`deskbot.knowledge.sources.proposals`). The nightly job indexes the
approved ones. Each decision writes its audit row before the file changes
(`faq_proposal_decided` with the decision, `faq_proposal_edited` when the question or
answer was changed); if the row cannot be written, nothing changes.

Example:
    >>> proposals = lay_out_proposals()   # inside the open gr.Tabs   # doctest: +SKIP
    >>> wire_proposals(console_handlers, proposals)                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from deskbot.bot.store.audit import (
    FAQ_PROPOSAL_DECIDED,
    FAQ_PROPOSAL_EDITED,
    AuditEntry,
    AuditError,
)
from deskbot.bot.store.models import Agent
from deskbot.knowledge.errors import KnowledgeError
from deskbot.knowledge.sources.proposals import (
    APPROVED,
    PENDING,
    PROPOSALS_FILE,
    REJECTED,
    Entry,
    ProposalsFile,
)
from deskbot.ui.console.components import read_only_table
from deskbot.ui.console.handlers import ConsoleHandlers
from deskbot.ui.render import md_text

__all__ = ["ProposalHandlers", "ProposalsTab", "lay_out_proposals", "wire_proposals"]

HEADERS = ["proposal", "intent", "from", "support", "question", "answer"]

Component = Any
Update = Any


@dataclass
class ProposalsTab:
    """The FAQ proposals tab's components."""

    tab: Component
    notice: Component
    table: Component
    pick: Component
    question: Component
    answer: Component
    variants: Component
    approve: Component
    save: Component
    reject: Component

    @property
    def outputs(self) -> list[Component]:
        return [self.notice, self.table, self.pick, self.question, self.answer, self.variants]


def _rows(entries: Sequence[Entry]) -> list[list[Any]]:
    return [
        [
            str(e.get("id")),
            str(e.get("intent") or ""),
            str(e.get("source") or "agent's answer"),
            str(e.get("support") or ""),
            str(e.get("question") or ""),
            str(e.get("answer") or ""),
        ]
        for e in entries
    ]


def _variants(entry: Entry | None) -> str:
    variants = (entry or {}).get("variants") or []
    if not variants:
        return ""
    lines = ["**Other replies agents gave:**"]
    for v in variants:
        if isinstance(v, dict):
            lines.append(
                f"- ({int(v.get('replies') or 0)}) {md_text(str(v.get('text')), line_start=False)}"
            )
    return "\n".join(lines)


class ProposalHandlers:
    """The tab's handlers, over the console's (`me`, `address`, the store)."""

    def __init__(self, h: ConsoleHandlers) -> None:
        self.h = h
        self.file = ProposalsFile(h.bot.config.knowledge.index_dir.parent / PROPOSALS_FILE)

    def show(self, pid: str | None, notice: str = "") -> tuple[Update, ...]:
        """The pending proposals, the picker (keeping `pid` when still pending), its text."""
        try:
            pending = self.file.pending()
        except KnowledgeError as exc:
            return (f"**Not shown:** {md_text(str(exc), line_start=False)}",) + (gr.skip(),) * 5
        current = next((e for e in pending if str(e.get("id")) == pid), None)
        current = current or (pending[0] if pending else None)
        notice = notice or (
            f"**{len(pending)} proposals** to review."
            if pending
            else "No FAQ proposals to review. `deskbot discover answers` mines some from "
            "agents' replies; agents' corrections add more each night."
        )
        return (
            notice,
            gr.update(value=_rows(pending)),
            gr.update(
                choices=[
                    (f"{e.get('intent') or '-'}: {e.get('id')}", str(e.get("id"))) for e in pending
                ],
                value=str(current.get("id")) if current else None,
            ),
            gr.update(value=str(current.get("question") or "") if current else ""),
            gr.update(value=str(current.get("answer") or "") if current else ""),
            _variants(current),
        )

    def load(self, request: gr.Request) -> tuple[Update, ...]:
        self.h.me(request)
        return self.show(None)

    def picked(self, pid: str | None, request: gr.Request) -> tuple[Update, ...]:
        self.h.me(request)
        return self.show(pid, " ")

    def decide(self, status: str) -> Any:
        """The handler of Approve (`status` approved), Save edit (pending), Reject."""

        def decide(
            pid: str | None, question: str | None, answer: str | None, request: gr.Request
        ) -> tuple[Update, ...]:
            agent = self.h.me(request)
            if not pid:
                return self.show(None, "**Not done:** pick a proposal first.")

            def record(entry: Entry, changed: list[str]) -> None:
                if changed:
                    self._audit(agent, request, FAQ_PROPOSAL_EDITED, entry, "/".join(changed))
                if status != PENDING:
                    self._audit(agent, request, FAQ_PROPOSAL_DECIDED, entry, status)

            keep_text = status == REJECTED  # a rejection keeps the text as proposed
            try:
                entry = self.file.decide(
                    pid,
                    status,
                    question=None if keep_text else question,
                    answer=None if keep_text else answer,
                    by=agent.username,
                    before_write=record,
                )
            except (KnowledgeError, AuditError) as exc:
                return self.show(pid, f"**Not done:** {md_text(str(exc), line_start=False)}")
            said = {
                APPROVED: "approved: the next nightly run adds it to the FAQ",
                REJECTED: "rejected",
                PENDING: "saved; it waits for a decision",
            }[status]
            name = md_text(str(entry.get("id")), line_start=False)
            return self.show(pid if status == PENDING else None, f"**{name}** {said}.")

        return decide

    def _audit(
        self, agent: Agent, request: gr.Request, action: str, entry: Entry, detail: str
    ) -> None:
        turn_id = str(entry.get("turn_id") or "")
        turn = self.h.bot.store.get_turn(int(turn_id)) if turn_id.isdigit() else None
        self.h.bot.store.record_audit(
            AuditEntry(
                agent.username,
                action,
                "faq_proposal",
                str(entry.get("id")),
                turn.conversation_id if turn is not None else None,
                self.h.address(request),
                detail,
            )
        )


def lay_out_proposals() -> ProposalsTab:
    """The tab, inside the open `gr.Tabs`."""
    with gr.Tab("FAQ proposals", id="proposals") as tab:
        gr.Markdown(
            "FAQ answers proposed from agents' replies and corrections. Edit the question "
            "or answer if needed, then approve or reject; approved ones join the FAQ tonight."
        )
        notice = gr.Markdown("", elem_id="proposal-notice")
        table = read_only_table(
            HEADERS, label="Pending proposals", elem_id="proposal-table", max_height=320
        )
        pick = gr.Dropdown(label="Proposal", choices=[], elem_id="proposal-pick")
        question = gr.Textbox(label="Question", elem_id="proposal-question", max_length=4000)
        answer = gr.Textbox(label="Answer", lines=4, elem_id="proposal-answer", max_length=4000)
        variants = gr.Markdown("", elem_id="proposal-variants")
        with gr.Row():
            approve = gr.Button("Approve", variant="primary", elem_id="proposal-approve")
            save = gr.Button("Save edit", elem_id="proposal-save")
            reject = gr.Button("Reject", variant="stop", elem_id="proposal-reject")
    return ProposalsTab(tab, notice, table, pick, question, answer, variants, approve, save, reject)


def wire_proposals(h: ConsoleHandlers, p: ProposalsTab, *, hide: Sequence[Component] = ()) -> None:
    """Connect the tab's events (no `.change`: see `ui.console.page._on`)."""
    a = ProposalHandlers(h)
    private: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
    for component in hide:
        p.tab.select(lambda: gr.update(visible=False), None, [component], **private)
    p.tab.select(a.load, None, p.outputs, **private)
    p.pick.select(a.picked, [p.pick], p.outputs, **private)
    fields = [p.pick, p.question, p.answer]
    p.approve.click(a.decide(APPROVED), fields, p.outputs, **private)
    p.save.click(a.decide(PENDING), fields, p.outputs, **private)
    p.reject.click(a.decide(REJECTED), fields, p.outputs, **private)

"""Supervised examples for the generator: (recent conversation, retrieved passages, customer
message -> reply), from the FAQ and from what agents wrote.

Every example's prompt is what the served generator would be given for that message
(`build_messages` with the real retriever's top-k passages, the model's token counter,
the history budget and the bot's name), so that train and serve prompts match. Sources,
most trusted first:

1. **label**: an agent's corrected answer to a bot reply (`AgentLabel.correct_answer`),
   for the customer message the bot answered;
2. **agent** / **import**: agents' replies in handed-off conversations and in imported
   ones (`Conversation.source` set), for the customer message they answered;
3. **faq**: each FAQ entry's question, its alternative phrasings and the intents file's
   utterances of its intent, answered with the entry's answer and the citation of its
   passage. The entry's passage is put among the retrieved ones when retrieval missed
   it (in the last place), so the model learns to pick the right passage among
   distractors and cite it by its number.

Only replies the passages support are kept (labels and agents' replies alike): the
share of their content words found in the passages must reach `min_coverage`
(`guard.content_coverage`) and no number, amount, time or address in them may be
missing from the passages (`facts.missing_facts`). An agent's reply that rests on what
the agent knows but the passages do not say ("I've refunded the fee") would teach the
model to state facts it was not given: to invent. A reply with no content word at all
("Hi, how can I help?") states nothing to learn and is left out too. A supported reply
cites the passage that covers it best, as the served prompt asks ("like [1]").

Text from the store (customer and agent messages, corrected answers) is PII-redacted
(`PiiRedactor`) before it is used; FAQ passages are the company's own text. Examples
are de-duplicated by their normalised prompt and reply (the most trusted source kept),
and split by **group**: a conversation for examples from the store, an FAQ entry for
FAQ examples. Held-out FAQ entries are entries the model never saw answered: their
questions test whether it learnt to answer from the passages it is given, not to recall
answers it memorised (split by phrasing, every held-out reply would be a training
reply word for word). A group's split is a hash of its name, so it stays in the same
split as new data arrives.

Example:
    >>> export = export_examples(store, retriever, count_tokens=tokens)  # doctest: +SKIP
    >>> write_examples(export.examples, Path("generator.jsonl"))        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.facts import extract_facts, missing_facts
from deskbot.bot.generation.guard import content_coverage
from deskbot.bot.generation.prompting import approx_tokens, build_messages
from deskbot.bot.store import AgentLabel, Conversation, Handoff, SqlConversationStore, TurnRecord
from deskbot.knowledge.passage import IndexedPassage
from deskbot.knowledge.retrieval.retriever import FaissRetriever
from deskbot.training.data.answers import agent_reply_after, conversation_turns
from deskbot.training.data.pii import PiiRedactor
from deskbot.training.generator.chat_jsonl import HELDOUT, TRAIN, ChatExample

logger = logging.getLogger(__name__)

__all__ = [
    "AGENT",
    "FAQ",
    "IMPORT",
    "LABEL",
    "ExampleSettings",
    "GeneratorExport",
    "cite",
    "export_examples",
    "is_heldout",
]

LABEL, AGENT, IMPORT, FAQ = "label", "agent", "import", "faq"
_TRUST = {LABEL: 0, AGENT: 1, IMPORT: 1, FAQ: 2}
_EMBED_BATCH = 64
# Customer messages since the last agent reply that make the retrieval query: "I want
# a person" after "my card hasn't arrived" is answered about the card.
_QUERY_TURNS = 3
_FINAL_PUNCT = re.compile(r"([.!?]+)\s*$")


@dataclass(frozen=True)
class ExampleSettings:
    """How examples are made; the prompt's settings must be the served generator's.

    Attributes:
        top_k: passages retrieved per message (`knowledge.top_k`).
        history_turns: turns of the conversation read (the dialogue's history window).
        max_history_tokens: the prompt's history budget (`generator.max_history_tokens`).
        bot_name: the company's name in the prompt (the config's `name`).
        min_coverage: the least share of a store reply's content words the passages hold.
        heldout_fraction: the share of groups (conversations, FAQ entries) held out.
        faq_per_entry: phrasings kept per FAQ entry (a seeded sample; the question is
            always kept); None keeps all.
        seed: the sample's and the split's seed.
    """

    top_k: int = 3
    history_turns: int = 8
    max_history_tokens: int = 384
    bot_name: str = "our company"
    min_coverage: float = 0.6
    heldout_fraction: float = 0.1
    faq_per_entry: int | None = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.history_turns < 1:
            raise ValueError("top_k and history_turns must be at least 1")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must be within 0..1, got {self.min_coverage}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be within 0..1, got {self.heldout_fraction}")
        if self.faq_per_entry is not None and self.faq_per_entry < 1:
            raise ValueError(f"faq_per_entry must be at least 1, got {self.faq_per_entry}")


@dataclass
class GeneratorExport:
    """The examples (most trusted first) and what was left out and why."""

    examples: list[ChatExample]
    stats: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)

    @property
    def train(self) -> list[ChatExample]:
        return [e for e in self.examples if e.split == TRAIN]

    @property
    def heldout(self) -> list[ChatExample]:
        return [e for e in self.examples if e.split == HELDOUT]

    def summary(self) -> dict[str, Any]:
        by_source = Counter(str(e.meta.get("source")) for e in self.examples)
        return {
            "examples": len(self.examples),
            "train": len(self.train),
            "heldout": len(self.heldout),
            "by_source": dict(sorted(by_source.items())),
            "left_out": dict(sorted(self.stats.items())),
            "pii_redacted": dict(sorted(self.redacted.items())),
        }


@dataclass(frozen=True)
class _Candidate:
    """A reply to learn before its prompt is built: the history ends with the customer."""

    source: str
    group: str
    history: tuple[Turn, ...]
    query: str
    reply: str
    meta: dict[str, Any]
    gold: Passage | None = None  # FAQ examples: the entry's passage, always offered


def export_examples(
    store: SqlConversationStore | None,
    retriever: FaissRetriever,
    *,
    settings: ExampleSettings | None = None,
    count_tokens: Callable[[str], int] = approx_tokens,
    utterances: Mapping[str, Sequence[str]] | None = None,
    redactor: PiiRedactor | None = None,
    exclude_labels: Iterable[int] = (),
    progress: bool = True,
) -> GeneratorExport:
    """The generator's examples from the store and the FAQ index, redacted, de-duplicated
    and split (see the module docstring).

    Args:
        store: the conversation store (None: FAQ examples only).
        retriever: the bot's retriever over its FAQ index (the served top-k).
        settings: how examples are made; its prompt settings must be the served ones.
        count_tokens: the generator's token counter (the served history budget).
        utterances: intent -> utterances (the intents training file), added to the
            phrasings of the FAQ entry of that intent.
        redactor: PII redaction of store text (default: every kind).
        exclude_labels: ids of agent labels to ignore (the quarantine).
        progress: show a progress bar while retrieving.
    """
    settings = settings or ExampleSettings()
    redactor = redactor or PiiRedactor()
    export = GeneratorExport([])
    candidates: list[_Candidate] = []
    if store is not None:
        candidates += _store_candidates(store, settings, frozenset(exclude_labels), export.stats)
    faq = _faq_candidates(retriever.passages(), utterances or {}, settings)
    # FAQ answers are the company's text (its phone numbers are no one's PII): kept.
    candidates = [_redacted(c, redactor, export.redacted, reply=True) for c in candidates]
    candidates += [_redacted(c, redactor, export.redacted, reply=False) for c in faq]
    built = _build(candidates, retriever, settings, count_tokens, export.stats, progress)
    export.examples = _split(_dedupe(built, export.stats), settings)
    logger.info("generator examples: %s", export.summary())
    return export


def cite(reply: str, number: int) -> str:
    """`reply` with the citation `[number]` before its final punctuation, as the served
    rules ask ("... working days later [1].")."""
    reply = reply.strip()
    m = _FINAL_PUNCT.search(reply)
    if m is None:
        return f"{reply} [{number}]"
    return f"{reply[: m.start()]} [{number}]{m.group(1)}"


def is_heldout(group: str, fraction: float, seed: int = 0) -> bool:
    """Whether a group (a conversation, an FAQ entry) is held out: a hash of its name,
    so it stays in the same split whatever else is exported."""
    return _group_hash(group, seed) < fraction


def _group_hash(group: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}\x1f{group}".encode()).hexdigest()[:12]
    return int(digest, 16) / float(16**12)


# - store -


def _store_candidates(
    store: SqlConversationStore,
    settings: ExampleSettings,
    excluded: frozenset[int],
    stats: Counter[str],
) -> list[_Candidate]:
    """Labels' corrected answers, then agents' replies (handed-off and imported conversations)."""
    with Session(store.engine) as session:
        labels, agent_conversations, imported = _read_store(session)
        wanted = sorted(agent_conversations | {row[2] for row in labels})
        turns = conversation_turns(session, wanted)
    out: list[_Candidate] = []
    for label_id, turn_id, conversation, answer in labels:
        if label_id in excluded:
            stats["quarantined_labels"] += 1
            continue
        found = _label_candidate(turns.get(conversation, []), turn_id, answer, settings)
        if found is None:
            stats["label_without_customer_message"] += 1
            continue
        out.append(_with_meta(found, label_id=label_id))
    for conversation in sorted(agent_conversations):
        source = IMPORT if conversation in imported else AGENT
        out += _agent_candidates(turns.get(conversation, []), source, settings)
    return out


def _read_store(session: Session) -> tuple[list[Any], set[str], set[str]]:
    """(labels with a corrected answer: id, turn id, conversation, answer), the handed-off
    and imported conversations, and the imported ones alone."""
    labels = session.exec(  # type: ignore[call-overload]
        select(
            col(AgentLabel.id),
            col(AgentLabel.turn_id),
            col(TurnRecord.conversation_id),
            col(AgentLabel.correct_answer),
        )
        .join(TurnRecord, col(TurnRecord.id) == col(AgentLabel.turn_id))
        .where(col(AgentLabel.correct_answer).is_not(None))
        .order_by(col(AgentLabel.id))
    ).all()
    handed_off = session.exec(  # type: ignore[call-overload]
        select(col(Handoff.conversation_id)).distinct()
    ).all()
    imported = session.exec(  # type: ignore[call-overload]
        select(col(Conversation.id)).where(col(Conversation.source).is_not(None))
    ).all()
    marked = {str(r[0]) for r in imported}
    return list(labels), {str(r[0]) for r in handed_off} | marked, marked


def _label_candidate(
    rows: Sequence[Any], turn_id: int, answer: str, settings: ExampleSettings
) -> _Candidate | None:
    """The customer message a labelled turn is about (itself, or the last before it)."""
    at = next((i for i, r in enumerate(rows) if r[1] == turn_id), None)
    while at is not None and at >= 0 and rows[at][2] != "user":
        at -= 1
    if at is None or at < 0 or not answer.strip():
        return None
    return _candidate(LABEL, rows, at, answer, settings, {"turn_id": int(rows[at][1])})


def _agent_candidates(
    rows: Sequence[Any], source: str, settings: ExampleSettings
) -> list[_Candidate]:
    """Each customer message an agent answered, with the agents' reply (`agent_reply_after`)."""
    out: list[_Candidate] = []
    for at, row in enumerate(rows):
        if row[2] != "user":
            continue
        found = agent_reply_after(rows, int(row[1]))
        if found is None:
            continue
        _, parts, reply_id = found
        meta = {"turn_id": int(row[1]), "reply_turn_id": reply_id}
        out.append(_candidate(source, rows, at, " ".join(parts), settings, meta))
    return out


def _candidate(
    source: str,
    rows: Sequence[Any],
    at: int,
    reply: str,
    settings: ExampleSettings,
    meta: dict[str, Any],
) -> _Candidate:
    """The candidate for the customer message at `rows[at]`: the served history window
    ending with it, and the retrieval query (its latest customer messages)."""
    start = max(0, at + 1 - settings.history_turns)
    history = tuple(
        Turn(role=r[2], text=str(r[3])) for r in rows[start : at + 1] if str(r[3]).strip()
    )
    asked: list[str] = []
    for r in reversed(rows[: at + 1]):
        if r[2] == "agent" or len(asked) == _QUERY_TURNS:
            break
        if r[2] == "user" and str(r[3]).strip():
            asked.append(str(r[3]).strip())
    conversation = str(rows[at][0])
    meta = {"conversation_id": conversation, **meta}
    return _Candidate(
        source, f"conversation:{conversation}", history, " ".join(reversed(asked)), reply, meta
    )


def _with_meta(c: _Candidate, **meta: Any) -> _Candidate:
    return _Candidate(c.source, c.group, c.history, c.query, c.reply, {**c.meta, **meta}, c.gold)


def _redacted(
    c: _Candidate, redactor: PiiRedactor, counts: Counter[str], *, reply: bool
) -> _Candidate:
    def red(text: str) -> str:
        r = redactor.redact(text)
        counts.update(r.counts)
        return r.text

    history = tuple(Turn(t.role, red(t.text)) for t in c.history)
    answer = red(c.reply) if reply else c.reply
    return _Candidate(c.source, c.group, history, red(c.query), answer, c.meta, c.gold)


# - FAQ -


def _faq_candidates(
    passages: Sequence[IndexedPassage],
    utterances: Mapping[str, Sequence[str]],
    settings: ExampleSettings,
) -> list[_Candidate]:
    """Each FAQ entry's phrasings, answered with the entry (documents have no question)."""
    rng = random.Random(settings.seed)
    out: list[_Candidate] = []
    for p in passages:
        if not p.question or not p.text.strip():
            continue
        extra = utterances.get(p.intent, ()) if p.intent else ()
        others = [q for q in dict.fromkeys([*p.alternatives, *extra]) if q != p.question]
        limit = settings.faq_per_entry
        if limit is not None and len(others) > limit - 1:
            others = rng.sample(others, limit - 1)
        gold = Passage(
            id=p.id, text=p.text, score=1.0, source=p.source, question=p.question,
            intent=p.intent, url=p.url, title=p.title, tags=p.tags,
        )  # fmt: skip
        for q in [p.question, *others]:
            meta = {"faq_id": p.id}
            out.append(_Candidate(FAQ, f"faq:{p.id}", (Turn("user", q),), q, p.text, meta, gold))
    return out


# - prompts, support, dedupe, split -


def _build(
    candidates: Sequence[_Candidate],
    retriever: FaissRetriever,
    settings: ExampleSettings,
    count_tokens: Callable[[str], int],
    stats: Counter[str],
    progress: bool,
) -> list[ChatExample]:
    """Retrieve each candidate's passages (queries embedded in batches) and build its
    example, or count why it was left out."""
    from tqdm.auto import tqdm

    out: list[ChatExample] = []
    bar = tqdm(total=len(candidates), desc="examples", unit="ex", disable=not progress)
    for start in range(0, len(candidates), _EMBED_BATCH):
        chunk = candidates[start : start + _EMBED_BATCH]
        vectors = retriever.embedder.embed([c.query for c in chunk])
        for c, vector in zip(chunk, vectors, strict=True):
            found = retriever.retrieve(c.query, top_k=settings.top_k, query_vector=vector)
            example = _example(c, found, settings, count_tokens, stats)
            if example is not None:
                out.append(example)
        bar.update(len(chunk))
    bar.close()
    return out


def _example(
    c: _Candidate,
    found: list[Passage],
    settings: ExampleSettings,
    count_tokens: Callable[[str], int],
    stats: Counter[str],
) -> ChatExample | None:
    passages = list(found)
    if c.gold is not None and all(p.id != c.gold.id for p in passages):
        passages = [*passages[: settings.top_k - 1], c.gold]
        stats["faq_gold_added"] += 1
    if c.gold is not None:
        number = next(i for i, p in enumerate(passages, 1) if p.id == c.gold.id)
        coverage = 1.0
    elif content_coverage(c.reply, "") == 1.0:  # no content word: a greeting states nothing
        stats[f"no_content_{c.source}"] += 1
        return None
    else:
        number, coverage = _support(c.reply, passages, settings.min_coverage)
        if number == 0:
            stats[f"unsupported_{c.source}"] += 1
            return None
    messages = build_messages(
        c.history,
        passages,
        count_tokens=count_tokens,
        max_history_tokens=settings.max_history_tokens,
        bot_name=settings.bot_name,
    )
    if len(messages) < 2:
        stats["empty_prompt"] += 1
        return None
    reply = cite(c.reply, number)
    meta = {
        "source": c.source,
        "group": c.group,
        **c.meta,
        "passage_ids": [p.id for p in passages],
        "cited": passages[number - 1].id,
        "coverage": round(coverage, 3),
    }
    return ChatExample((*messages, {"role": "assistant", "content": reply}), meta)


def _support(reply: str, passages: Sequence[Passage], min_coverage: float) -> tuple[int, float]:
    """(the number of the passage covering `reply` best, the coverage of all of them),
    or (0, coverage) when the passages do not support it."""
    if not passages:
        return 0, 0.0
    source = "\n".join(p.text for p in passages)
    coverage = content_coverage(reply, source)
    if coverage < min_coverage or missing_facts(extract_facts(reply), extract_facts(source)):
        return 0, coverage
    best = max(range(len(passages)), key=lambda i: content_coverage(reply, passages[i].text))
    return best + 1, coverage


def _dedupe(examples: Sequence[ChatExample], stats: Counter[str]) -> list[ChatExample]:
    """One example per normalised prompt and reply, the most trusted source kept."""
    ranked = sorted(examples, key=lambda e: _TRUST.get(str(e.meta.get("source")), 3))
    seen: set[str] = set()
    out: list[ChatExample] = []
    for e in ranked:
        if e.key in seen:
            stats["duplicates"] += 1
            continue
        seen.add(e.key)
        out.append(e)
    return out


def _split(examples: Sequence[ChatExample], settings: ExampleSettings) -> list[ChatExample]:
    """Each example with `meta.split`, drawn by group (at least one group held out when
    there are two or more and a fraction is asked for)."""
    groups = sorted({e.group for e in examples})
    held = {g for g in groups if is_heldout(g, settings.heldout_fraction, settings.seed)}
    if not held and len(groups) >= 2 and settings.heldout_fraction > 0:
        held = {min(groups, key=lambda g: _group_hash(g, settings.seed))}
    return [
        ChatExample(e.messages, {**e.meta, "split": HELDOUT if e.group in held else TRAIN})
        for e in examples
    ]

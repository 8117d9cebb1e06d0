"""How good a generator's replies are on held-out cases: what the nightly gate compares.

Each held-out case is a conversation, its passages and the reply it should get (the
agent's or the FAQ's answer). A generator composes a whole reply for it; the guard
(`GroundingGuard`, with the claim verifier when one is trained) judges every sentence
as the served path does. Per case:

- `sent`: every sentence passed, so the customer would get the generated reply (the
  served responder gives the FAQ answer otherwise: a fallback);
- `refused`: sentences the guard refused (unsupported or contradicted claims, unsupported
  facts, echoes); the rate of refused sentences among all generated ones is the
  unsupported-claim rate the gate may not let rise (an empty reply has no sentence: it
  counts as a fallback, not as a claim);
- `rouge_l`: ROUGE-L F1 of the reply to the reference (citations stripped): answer
  quality, measured on what the generator wrote, sent or not, so a model is not
  rewarded for falling back;
- `cited_gold`: whether the reply cites the case's gold passage, where it has one.

Example:
    >>> rouge_l("cards arrive in 3 days", "your card arrives within 3 working days")
    0.3333333333333333
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from deskbot.bot.core.types import Passage, Turn
from deskbot.bot.generation.guard import GroundingGuard, split_sentences
from deskbot.bot.generation.prompting import cited_passage_ids, strip_citations
from deskbot.bot.generation.protocol import Generator, GeneratorUnavailable

__all__ = ["CaseScore", "HeldOutCase", "rouge_l", "score_case", "score_cases", "summarize"]

_WORD = re.compile(r"[a-z0-9£$€%]+(?:['.][a-z0-9]+)*")


@dataclass(frozen=True)
class HeldOutCase:
    """One conversation the generator is scored on.

    Attributes:
        id: where it came from (an example id: conversation and turn, or FAQ entry).
        history: the conversation, oldest first, ending with the customer's message.
        passages: the retrieved passages, best first (cited [1], [2], ...).
        reference: the reply it should get.
        gold_passage: the id of the passage that answers it, when known.
    """

    id: str
    history: tuple[Turn, ...]
    passages: tuple[Passage, ...]
    reference: str
    gold_passage: str | None = None


@dataclass(frozen=True)
class CaseScore:
    """What the guard and the reference say of one generated reply."""

    id: str
    reply: str
    sent: bool
    reason: str
    sentences: int
    refused: int
    rouge_l: float
    cited_gold: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _words(text: str) -> list[str]:
    return _WORD.findall(strip_citations(text).lower())


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence of words) of `candidate` to `reference`."""
    a, b = _words(candidate), _words(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b, start=1):
            row.append(previous[j - 1] + 1 if x == y else max(previous[j], row[j - 1]))
        previous = row
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def score_case(generator: Generator, guard: GroundingGuard, case: HeldOutCase) -> CaseScore:
    """Compose a whole reply to `case` and judge it as the served path would."""
    try:
        reply = "".join(generator.compose(case.history, case.passages)).strip()
    except GeneratorUnavailable as exc:
        return CaseScore(case.id, "", False, f"generator unavailable: {exc}", 0, 0, 0.0, None)
    sentences = split_sentences(reply)
    reason = "ok" if sentences else "empty reply"
    refused = 0
    echo = guard.check_echo(reply, case.passages) if sentences else None
    if echo is not None and not echo.ok:
        refused, reason = len(sentences), echo.reason
    else:
        for sentence in sentences:
            check = guard.check_sentence(sentence, case.passages)
            if not check.decision.ok:
                refused += 1
                if refused == 1:  # the first refusal says why the reply falls back
                    reason = check.decision.reason
    cited = cited_passage_ids(reply, case.passages)
    gold = None if case.gold_passage is None else case.gold_passage in cited
    sent = bool(sentences) and refused == 0
    return CaseScore(
        case.id, reply, sent, reason, len(sentences), refused, rouge_l(reply, case.reference), gold
    )


def score_cases(
    generator: Generator,
    guard: GroundingGuard,
    cases: Iterable[HeldOutCase],
    *,
    on_case: Callable[[CaseScore], None] | None = None,
) -> list[CaseScore]:
    """`score_case` for each case, in order; `on_case` sees each score (progress bars)."""
    scores = []
    for case in cases:
        score = score_case(generator, guard, case)
        scores.append(score)
        if on_case is not None:
            on_case(score)
    return scores


def summarize(scores: Sequence[CaseScore]) -> dict[str, float | int | None]:
    """The rates the gate compares: sent, refused sentences, ROUGE-L, gold citations."""
    n = len(scores)
    sentences = sum(s.sentences for s in scores)
    gold = [s.cited_gold for s in scores if s.cited_gold is not None]
    return {
        "cases": n,
        "sent_rate": sum(s.sent for s in scores) / n if n else 0.0,
        "fallback_rate": 1 - sum(s.sent for s in scores) / n if n else 1.0,
        "sentences": sentences,
        "refused_sentence_rate": (sum(s.refused for s in scores) / sentences) if sentences else 0.0,
        "rouge_l": sum(s.rouge_l for s in scores) / n if n else 0.0,
        "cited_gold_rate": sum(gold) / len(gold) if gold else None,
    }

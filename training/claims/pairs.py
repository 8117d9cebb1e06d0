"""Passage/claim pairs made from a FAQ, for the claim verifier.

Each pair is (one sentence of an FAQ answer, a claim, a label). Claims are made by
rules, after FactCC's recipe (Kryscinski et al., 2020: claims transformed from the
source text, labelled by the transformation) with the errors a small generator makes
in support replies added:

- **supported**: the passage sentence itself, a clause of it, a light paraphrase
  (fixed word swaps), a yes/no answer to the entry's question that its answer states
  plainly ("Yes: ..." / "No: ...").
- **contradicted**: a negation (can/can't, is/isn't, free/charged, Yes/No), a number
  swapped for another of the same passage, a condition dropped from a "free ..."
  statement ("free up to £1,000 a month" -> "free"), the opposite yes/no answer, and
  either blanket yes/no answer when the answer is conditional (free for some, charged
  for others).
- **unsupported**: a sentence of another entry (unless this passage sentence says
  most of it), a supported clause with an invented one appended, generic invented
  steps and explanations filled with the FAQ's own words ("tap the "Order" button").

Which entries are held out for dev pairs is fixed by a hash of their id, so that the
thresholds are chosen on passages the model never saw.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from deskbot.bot.generation.guard import content_coverage
from deskbot.bot.generation.verifier import LABELS, passage_units
from deskbot.knowledge.sources.faq import FaqEntry

__all__ = ["ClaimPair", "make_pairs", "split_entries"]


@dataclass(frozen=True)
class ClaimPair:
    """One training example: the premise (a passage sentence), the claim, its label."""

    premise: str
    claim: str
    label: str
    kind: str  # how the claim was made, for the training report
    entry_id: str

    @property
    def label_id(self) -> int:
        return LABELS.index(self.label)


def split_entries(
    entries: Sequence[FaqEntry], dev_share: float
) -> tuple[list[FaqEntry], list[FaqEntry]]:
    """(train, dev) entries: an entry is dev when a hash of its id falls under `dev_share`."""
    train: list[FaqEntry] = []
    dev: list[FaqEntry] = []
    for e in entries:
        h = int(hashlib.sha256(e.id.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
        (dev if h < dev_share else train).append(e)
    return train, dev


# -- transformations ----------------------------------------------------------------------

_NEGATIONS: list[tuple[str, str]] = [
    (r"\bcan't\b|\bcannot\b|\bcan not\b", "can"),
    (r"\bcan\b", "can't"),
    (r"\bdon't\b|\bdo not\b", "do"),
    (r"\bdoesn't\b|\bdoes not\b", "does"),
    (r"\bwon't\b|\bwill not\b", "will"),
    (r"\bwill\b", "won't"),
    (r"\baren't\b|\bare not\b", "are"),
    (r"\bisn't\b|\bis not\b", "is"),
    (r"\bhasn't\b", "has"),
    (r"\bmust\b", "don't have to"),
    (r"\bno need to\b", "you must"),
    (r"\bonly\b", "also"),
    (r"\bfree\b", "charged"),
    (r"\bno markup\b", "a markup"),
    (r"\bnever\b", "always"),
    (r"\bare\b", "aren't"),
    (r"\bis\b", "isn't"),
    (r"^Yes\b", "No"),
    (r"^No\b", "Yes"),
]
_PARAPHRASES: list[tuple[str, str]] = [
    (r"\bstraight away\b", "immediately"),
    (r"\bthe Northwind app\b", "the app"),
    (r"\btap\b", "go to"),
    (r"\bfree\b", "free of charge"),
    (r"\bYou can\b", "It's possible to"),
    (r"\busually\b", "normally"),
    (r"\bwe\b", "Northwind"),
    (r"\bcustomers\b", "users"),
]
# Qualifiers whose loss turns "free up to £1,000 a month" into a false "free".
_CONDITIONS = [
    re.compile(
        r"(?<=\bfree) (?:up to|with standard delivery|for the first|whenever|as long as|if|"
        r"unless|once)(?:[^,.;:]|(?<=\d)[,.](?=\d))*"
    ),
    re.compile(r",? (?:issued |)in the UK, (?:the )?EEA,? or Switzerland(?= is| are)"),
    re.compile(r"(?<=\bfree)(?: of charge)? (?:in|within|on) (?:the UK|your first)[^,.;:]*"),
]
_NUMBER = re.compile(r"(?<![\w.])(?:[£$€])?\d[\d,]*(?:\.\d+)?%?")
_CHARGE = re.compile(r"\d\s?%|[£€$]\s?\d|\bfee\b|\bcosts?\b|\bcharge", re.IGNORECASE)
_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]+")

# Invented steps and explanations, the way a small model pads a reply. `{n}` is a noun
# and `{m}` a menu word of the FAQ, `{v}` a verb phrase of the question.
_INVENTED = [
    'To {v}, simply open the Northwind app and tap the "{m}" button.',
    "To {v}, go to the Northwind website and select {m} from the menu.",
    "You can find this under Settings > {m} > {n} in the Northwind app.",
    "The Northwind app has a feature called {m} that lets you manage your {n}.",
    "This usually happens because of a problem with your {n} at the other bank.",
    "You will need to contact your bank's customer service about your {n}.",
    "The {n} depends on the country you live in and the type of account you have.",
    "Once you're ready, select your {n} details and confirm with your signature.",
    "Your {n} is processed manually by our team, which can take a while.",
    "There are several options available, depending on your {n}.",
    "The {n} can only be changed by visiting one of our branches.",
    "It seems there might have been an issue with your {n}.",
    "As a Northwind customer service representative, I can help you with your {n}.",
    "You need to use your {n} instead.",
    "Yes, you can {v} at any time from your {n} page.",
    "No, you can't {v} unless you have a premium account.",
    "The {n} is sent to you by post within a few days.",
    "Northwind offers a loyalty bonus on every {n}.",
]


def _sub_once(pattern: str, repl: str, text: str) -> str | None:
    new, n = re.subn(pattern, repl, text, count=1, flags=re.IGNORECASE if pattern[0] != "^" else 0)
    return new if n and new != text else None


def _negations(sentence: str, rng: random.Random, k: int) -> list[str]:
    out = [n for p, r in _NEGATIONS if (n := _sub_once(p, r, sentence))]
    rng.shuffle(out)
    return out[:k]


def _paraphrase(sentence: str, rng: random.Random) -> str | None:
    options = [n for p, r in _PARAPHRASES if (n := _sub_once(p, r, sentence))]
    return rng.choice(options) if options else None


def _clauses(sentence: str) -> list[str]:
    parts = re.split(r";\s+|:\s+|,\s+(?:and|so|but|which|then)\s+", sentence)
    out = []
    for part in parts:
        part = part.strip().rstrip(".")
        if len(part.split()) >= 5 and part != sentence.rstrip("."):
            out.append(part[0].upper() + part[1:] + ".")
    return out


def _swap_number(sentence: str, passage: str, rng: random.Random) -> str | None:
    mine = _NUMBER.findall(sentence)
    if not mine:
        return None
    target = rng.choice(mine)
    others = [n for n in set(_NUMBER.findall(passage)) if n != target and n[:1] == target[:1]]
    if not others or rng.random() < 0.4:
        digits = re.sub(r"[^\d]", "", target) or "1"
        bumped = str(int(digits) * rng.choice([2, 3, 10]) + rng.choice([0, 1, 5]))
        replacement = re.sub(r"\d[\d,]*(?:\.\d+)?", bumped, target, count=1)
    else:
        replacement = rng.choice(others)
    return sentence.replace(target, replacement, 1) if replacement != target else None


def _drop_condition(sentence: str) -> str | None:
    """`sentence` without the condition attached to its "free", or None."""
    for pattern in _CONDITIONS:
        dropped = pattern.sub("", sentence, count=1)
        if dropped != sentence and re.search(r"\bfree\b", dropped):
            return re.sub(r"\s+([,.;])", r"\1", dropped).strip()
    return None


def _yes_no(question: str) -> tuple[str, str] | None:
    """("Yes, ..." , "No, ...") answers to a yes/no question, or None."""
    q = question.split("?")[0].split(", and ")[0].strip()
    q = re.sub(r"\bmy\b", "your", q)
    q = re.sub(r"\bI\b", "you", q)
    rules = [
        (r"^Is there (.+)", "Yes, there is {0}.", "No, there is no {1}."),
        (r"^Can you (.+)", "Yes, you can {0}.", "No, you can't {0}."),
        (r"^Do you need to (.+)", "Yes, you need to {0}.", "No, you don't need to {0}."),
        (r"^Do you charge (.+)", "Yes, we charge {0}.", "No, we don't charge {0}."),
        (r"^Do you (.+)", "Yes, we {0}.", "No, we don't {0}."),
    ]
    for pattern, yes, no in rules:
        m = re.match(pattern, q, re.IGNORECASE)
        if m:
            body = m.group(1)
            bare = re.sub(r"^(?:a|an|any)\s+", "", body)
            return yes.format(body, bare), no.format(body, bare)
    return None


def _answer_key(answer: str) -> str | None:
    """The answer key: "yes", "no", "conditional" (free for some, charged for others) or None."""
    if re.match(r"^Yes\b", answer):
        return "yes"
    if re.match(r"^(?:No\b|We don't\b|You don't\b)", answer):
        return "no"
    if re.search(r"\bfree\b", answer, re.IGNORECASE) and _CHARGE.search(answer):
        return "conditional"
    return None


def _vocabulary(entries: Sequence[FaqEntry]) -> tuple[list[str], list[str], list[str]]:
    """(nouns, menu words, question verb phrases) to fill the invented templates."""
    menu: set[str] = set()
    nouns: set[str] = set()
    verbs: list[str] = []
    for e in entries:
        for m in re.finditer(r"> ([A-Z][\w ]{2,25}?)(?= >|[.,;]|$)", e.answer):
            menu.add(m.group(1))
        for m in re.finditer(r"\b(?:your|the) ((?:[a-z]+ )?[a-z]{4,})\b", e.answer):
            nouns.add(m.group(1))
        asked = re.match(r"^(?:How (?:do|can) I|Can I) (.+?)[?,]", e.question)
        if asked:
            verbs.append(re.sub(r"\bmy\b", "your", asked.group(1)))
    return sorted(nouns), sorted(menu), verbs or ["use your card"]


# -- the pairs ----------------------------------------------------------------------------


def make_pairs(
    entries: Sequence[FaqEntry], *, others: Sequence[FaqEntry] = (), seed: int = 13
) -> list[ClaimPair]:
    """The labelled pairs of `entries` (claims of other entries come from `others` too)."""
    rng = random.Random(seed)
    pool = list(entries) + [o for o in others if o not in entries]
    foreign = [(e.id, u) for e in pool for u in passage_units(e.answer)]
    nouns, menu, verbs = _vocabulary(pool)
    pairs: list[ClaimPair] = []
    for entry in entries:
        units = passage_units(entry.answer)
        for unit in units:
            pairs.extend(_unit_pairs(entry, unit, units, foreign, rng))
            pairs.extend(_invented_pairs(entry, unit, nouns, menu, verbs, rng))
        pairs.extend(_question_pairs(entry, units))
    rng.shuffle(pairs)
    return pairs


def _unit_pairs(
    entry: FaqEntry,
    unit: str,
    units: list[str],
    foreign: list[tuple[str, str]],
    rng: random.Random,
) -> list[ClaimPair]:
    out: list[ClaimPair] = []

    def add(claim: str | None, label: str, kind: str, premise: str = unit) -> None:
        if claim and claim.strip():
            out.append(ClaimPair(premise, claim.strip(), label, kind, entry.id))

    add(unit, "supported", "verbatim")
    for clause in _clauses(unit)[:2]:
        add(clause, "supported", "clause")
        for neg in _negations(clause, rng, 1):
            add(neg, "contradicted", "negated clause")
    add(_paraphrase(unit, rng), "supported", "paraphrase")
    for neg in _negations(unit, rng, 2):
        add(neg, "contradicted", "negation")
    add(_swap_number(unit, entry.answer, rng), "contradicted", "number swap")
    add(_drop_condition(unit), "contradicted", "dropped condition")
    # Other entries' sentences: unsupported here unless this sentence says most of it.
    for _ in range(3):
        fid, claim = rng.choice(foreign)
        if fid != entry.id and content_coverage(claim, unit) < 0.6:
            add(claim, "unsupported", "other entry")
    # The same entry's other sentences say other things: unsupported by this one.
    rest = [u for u in units if u != unit and content_coverage(u, unit) < 0.6]
    if rest:
        add(rng.choice(rest), "unsupported", "sibling sentence")
    # A true clause with an invented one appended.
    fid, extra = rng.choice(foreign)
    clause = (_clauses(unit) or [unit])[0].rstrip(".")
    if fid != entry.id and content_coverage(extra, unit) < 0.6:
        add(f"{clause}, and {extra[0].lower()}{extra[1:]}", "unsupported", "invented tail")
    return out


def _invented_pairs(
    entry: FaqEntry,
    unit: str,
    nouns: list[str],
    menu: list[str],
    verbs: list[str],
    rng: random.Random,
) -> list[ClaimPair]:
    out: list[ClaimPair] = []
    for template in rng.sample(_INVENTED, 2):
        claim = template.format(n=rng.choice(nouns), m=rng.choice(menu), v=rng.choice(verbs))
        if content_coverage(claim, unit) < 0.8:
            out.append(ClaimPair(unit, claim, "unsupported", "invented", entry.id))
    return out


def _question_pairs(entry: FaqEntry, units: list[str]) -> list[ClaimPair]:
    """Blanket yes/no answers to the entry's question, against its first sentence."""
    answers = _yes_no(entry.question)
    key = _answer_key(entry.answer)
    if answers is None or key is None or not units:
        return []
    yes, no = answers
    label_yes = {"yes": "supported", "no": "contradicted", "conditional": "contradicted"}[key]
    label_no = {"yes": "contradicted", "no": "supported", "conditional": "contradicted"}[key]
    first = units[0]
    return [
        ClaimPair(first, yes, label_yes, f"question yes ({key})", entry.id),
        ClaimPair(first, no, label_no, f"question no ({key})", entry.id),
    ]


def count_words(text: str) -> int:
    """Words in `text` (for the training report)."""
    return len(_WORDS.findall(text))

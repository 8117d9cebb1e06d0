"""Reading a message in its thread: follow-ups, corrections and topic switches.

A customer's "how long does it take?" or "is there a fee?" carries its topic in the
turns before it. Each message is classified twice in one batch: alone, and after the
conversation's topic text (the customer's last message that named an intent, or the
thread it was itself read in, at most `THREAD_MESSAGES` messages). `read_in_context`
then keeps one reading:

- a message clear on its own (in scope, confidence at least `keep_alone_above`) keeps
  its own meaning: a topic switch wins over the context;
- otherwise the intents of both readings are mixed (`thread_weight` of the thread's
  calibrated probability, the rest of the message's own) and the intent the bot last
  answered gets `topic_weight` more; the best of the mix is read when the mix is surer
  than the message alone;
- a correction ("no, I meant my virtual card") is always read in the thread, without
  its "no, I meant", as anything but the intent it corrects.

The readings and the choice travel with the turn (`Reading.explain`): the agent console
shows which context a turn was read in and what it changed. The thresholds were chosen
on the development conversations (`benchmarks/quality/context_reading.py`), never on the
held-out set.

Example:
    >>> correction_of("no, I meant my virtual card")
    'my virtual card'
    >>> thread_text("my card hasn't arrived", "how long does it take?")
    "my card hasn't arrived how long does it take?"
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from deskbot.bot.core.types import OUT_OF_SCOPE, IntentPrediction

__all__ = [
    "THREAD_MESSAGES",
    "ContextRules",
    "Reading",
    "correction_of",
    "leans_on_thread",
    "next_thread",
    "plan_reading",
    "read_alone",
    "read_in_context",
    "thread_text",
]

# Customer messages the thread reading holds at most (the last ones).
THREAD_MESSAGES = 2
# Characters of thread text kept (the classifier reads 64 tokens or so).
THREAD_CHARS = 300

_CORRECTION = re.compile(
    r"^\s*(?:(?:no+|nope|sorry|oops|actually|wait|not\s+that)\b[\s,.!:;-]*)+"
    r"(?:i\s+(?:meant|mean|was\s+(?:asking|talking)\s+about)|what\s+i\s+meant\s+(?:is|was))?"
    r"[\s,.!:;-]*",
    re.IGNORECASE,
)
# What makes a message lean on its thread: a pronoun or "the same" pointing back, a
# connective opening it ("and in Spain?", "what about Google Pay?"), or no more than a
# few words ("why?", "is it free?").
_ANAPHORA = re.compile(
    r"\b(?:it|its|it'?s|that|this|these|those|them|they|their|theirs|one|ones|there|same|"
    r"again|either|neither|instead|else|too)\b",
    re.IGNORECASE,
)
_OPENER = re.compile(
    r"^\s*(?:and|but|so|also|or|then|plus|ok(?:ay)?|what\s+about|how\s+about|what\s+if|"
    r"even|still|except)\b",
    re.IGNORECASE,
)
SHORT_WORDS = 3

_MEANT = re.compile(
    r"^\s*(?:i\s+(?:meant|mean)|what\s+i\s+meant\s+(?:is|was))\b[\s,.!:;-]*", re.IGNORECASE
)


@dataclass(frozen=True)
class ContextRules:
    """How a message is read in its thread (`dialogue.context` in the config).

    Attributes:
        enabled: read messages in their thread at all.
        keep_alone_above: a message alone at least this sure keeps its own reading.
        thread_weight: the thread reading's share of the mix (the rest: the message's).
        topic_weight: what the intent the bot last answered adds to the mix.
        only_leaning: only a message that points back to its thread is read in it
            (`leans_on_thread`); one that says all it means is read alone.
    """

    enabled: bool = True
    keep_alone_above: float = 0.6
    thread_weight: float = 0.5
    topic_weight: float = 0.0
    only_leaning: bool = True


@dataclass(frozen=True)
class Reading:
    """A message's reading: the prediction the policy decides from, and how it came.

    Attributes:
        text: the message as read (a correction without its "no, I meant").
        prediction: what the turn is read as.
        alone: the message's own reading.
        thread: its reading after `context` (None: there was no context).
        context: the thread text it was read after.
        topic: the intent the bot last answered.
        used: the turn is read in its thread (`prediction` is the mix, not `alone`).
        correction: the message corrects the last one ("no, I meant ...").
    """

    text: str
    prediction: IntentPrediction
    alone: IntentPrediction
    thread: IntentPrediction | None = None
    context: str | None = None
    topic: str | None = None
    used: bool = False
    correction: bool = False

    @property
    def switched(self) -> bool:
        """The message left the last topic for another one, clear on its own."""
        p = self.prediction
        return not self.used and self.topic is not None and p.in_scope and p.intent != self.topic

    def explain(self) -> dict[str, Any] | None:
        """What the console shows: the context, both readings and what the context did."""
        if self.context is None:
            return None
        t = self.thread
        return {
            "after": self.context,
            # What the classifier read: the nightly job learns the turn as this text.
            "read": thread_text(self.context, self.text) if self.used else self.text,
            "topic": self.topic,
            "used": self.used,
            "correction": self.correction,
            "alone": [self.alone.intent, round(self.alone.confidence, 4)],
            "thread": [t.intent, round(t.confidence, 4)] if t is not None else None,
        }


def thread_text(context: str, text: str) -> str:
    """The text the thread reading classifies: the context, then the message."""
    joined = f"{context.strip()} {text.strip()}".strip()
    return joined[-THREAD_CHARS:]


def correction_of(text: str) -> str | None:
    """What a correction says instead ("no, I meant my virtual card" -> "my virtual
    card"), or None when the message is not one. A bare "no" is an answer, not a
    correction."""
    if _MEANT.match(text):
        rest = _MEANT.sub("", text, count=1)
    else:
        m = _CORRECTION.match(text)
        if m is None or not re.search(r"\bmeant?\b|\bwas\s+(?:asking|talking)\b", m.group(0), re.I):
            return None
        rest = text[m.end() :]
    rest = rest.strip()
    return rest or None


def leans_on_thread(text: str) -> bool:
    """Whether a message points back to its thread (a pronoun, an opening "and" or
    "what about", or a few words) rather than saying all it means."""
    words = re.findall(r"[\w']+", text)
    return (
        len(words) <= SHORT_WORDS
        or _OPENER.search(text) is not None
        or _ANAPHORA.search(text) is not None
    )


def plan_reading(
    text: str, thread: tuple[str, ...], rules: ContextRules
) -> tuple[str, str | None, bool]:
    """What to classify for a message: the message as read (a correction without its
    "no, I meant"), the thread text to read it after too (None: alone only, which saves
    the second reading), and whether it corrects the last one."""
    if not (rules.enabled and thread):
        return text, None, False
    corrected = correction_of(text)
    said = corrected or text
    if corrected is None and rules.only_leaning and not leans_on_thread(said):
        return said, None, False  # it says all it means
    return said, " ".join(thread), corrected is not None


def read_alone(text: str, prediction: IntentPrediction) -> Reading:
    """A message read without context (the first of a conversation, or context off)."""
    return Reading(text=text, prediction=prediction, alone=prediction)


def read_in_context(
    text: str,
    alone: IntentPrediction,
    thread: IntentPrediction | None,
    *,
    context: str | None,
    topic: str | None,
    rules: ContextRules,
    correction: bool = False,
) -> Reading:
    """Keep the message's own reading or its reading in the thread (module docstring);
    without a thread, its own."""
    if thread is None or context is None:
        return replace(read_alone(text, alone), topic=topic)
    base = Reading(
        text=text,
        prediction=alone,
        alone=alone,
        thread=thread,
        context=context,
        topic=topic,
        correction=correction,
    )
    if not correction and alone.in_scope and alone.confidence >= rules.keep_alone_above:
        return base  # clear on its own: a topic switch keeps its meaning
    if not correction and rules.only_leaning and not leans_on_thread(text):
        return base  # it says all it means: its own reading, even out of scope
    w = rules.thread_weight
    mixed: dict[str, float] = {}
    for intent, p in alone.ranking:
        mixed[intent] = mixed.get(intent, 0.0) + (1.0 - w) * p
    for intent, p in thread.ranking:
        mixed[intent] = mixed.get(intent, 0.0) + w * p
    if correction and topic in mixed and len(mixed) > 1:
        del mixed[topic]  # "no, I meant ...": not what it was read as before
    elif topic is not None and topic in mixed:
        mixed[topic] += rules.topic_weight
    if not mixed:
        return base
    ranking = tuple(sorted(mixed.items(), key=lambda kv: -kv[1]))
    best, score = ranking[0]
    confidence = min(1.0, score)
    if not correction and alone.in_scope and confidence <= alone.confidence:
        return base
    # Out of scope only when the thread reading says so too (a bare "why?" is not).
    in_scope = thread.in_scope or alone.in_scope
    prediction = IntentPrediction(
        intent=best if in_scope else OUT_OF_SCOPE,
        confidence=confidence,
        ranking=tuple((i, min(1.0, s)) for i, s in ranking[: len(thread.ranking) or 5]),
    )
    return replace(base, prediction=prediction, used=True)


def next_thread(thread: tuple[str, ...], reading: Reading) -> tuple[str, ...]:
    """The customer messages the next message is read after: this one alone when it
    named its own intent, else the thread with this one added (a follow-up, or a
    message the bot could not place, which the next one may explain)."""
    if reading.used or not reading.prediction.in_scope:
        return (*thread, reading.text)[-THREAD_MESSAGES:]
    return (reading.text,)

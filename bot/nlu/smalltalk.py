"""Small talk and conversation control: greetings, thanks, goodbyes, "that didn't help",
and asking for a person.

BANKING77 has no such intents, so the classifier cannot name them. A small rule set
does, and it is strict on purpose: greetings, thanks and goodbyes must be the *whole*
message ("hi there!", "thanks a lot"), so "hi, my card hasn't arrived" still goes to
the classifier; a request for a person needs a verb of talking and a person, or one of
a few fixed phrases. The test suite checks that no BANKING77 test utterance is caught.

Example:
    >>> detect_smalltalk("Thanks a lot!")
    'thanks'
    >>> detect_smalltalk("thanks, but where is my card?") is None
    True
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["SmallTalk", "detect_smalltalk"]

SmallTalk = Literal["greet", "thanks", "goodbye", "negative", "human"]

_FILLER = r"(?:\s+(?:there|all|everyone|again|bot|deskbot|team|guys|folks|mate|friend))?"
_GREET = rf"(?:hi|hii+|hello+|hey+|hiya|howdy|yo|greetings|good\s+(?:morning|afternoon|evening|day)){_FILLER}"
_THANKS = (
    r"(?:thanks?|thank\s+you|thankyou|thx|ty|cheers|ta|much\s+appreciated|appreciate\s+it|"
    r"many\s+thanks)(?:\s+(?:so|very)\s+much|\s+a\s+lot|\s+a\s+bunch|\s+loads|\s+again|"
    r"\s+for\s+(?:your|the)\s+help|\s+for\s+helping)?"
)
_BYE = (
    r"(?:bye+|goodbye|good\s+bye|bye\s+bye|see\s+you(?:\s+later|\s+soon)?|see\s+ya|cya|"
    r"later|farewell|have\s+a\s+(?:nice|good|great)\s+(?:day|evening|one)|take\s+care|"
    r"that\s+is\s+all|thats\s+all|that\s+s\s+all|nothing\s+else|no\s+thats\s+it|that\s+s\s+it)"
)
_ACK = r"(?:ok(?:ay)?|great|perfect|awesome|cool|nice|brilliant|lovely|got\s+it|sure)"
_NEGATIVE = (
    r"(?:(?:no\s+|nope\s+|sorry\s+|but\s+)?(?:that|this|it|you)\s+(?:did\s*n\s*t|didnt|did\s+not|"
    r"does\s*n\s*t|doesnt|does\s+not|do\s*n\s*t|dont|do\s+not|was\s*n\s*t|wasnt|was\s+not|"
    r"is\s*n\s*t|isnt|is\s+not|are\s*n\s*t|arent|are\s+not)\s+"
    r"(?:help(?:ing|ful)?|work(?:ing)?|answer\s+my\s+question|what\s+i\s+(?:asked|meant|wanted|need)|"
    r"right|correct|useful)(?:\s+at\s+all)?(?:\s+(?:me|for\s+me))?|"
    r"(?:not|nope\s+not|no\s+not)\s+(?:helpful|useful|what\s+i\s+(?:asked|meant|wanted|need))|"
    r"useless|wrong\s+answer|that\s+s\s+wrong|that\s+is\s+wrong|you\s+re\s+not\s+helping|"
    r"you\s+are\s+not\s+helping|this\s+is\s+useless)"
)
_PERSON = (
    r"(?:a\s+|an\s+|the\s+|some\s+|real\s+|actual\s+|live\s+)*"
    r"(?:human(?:\s+being)?|person|agent|someone|somebody|representative|rep|operator|"
    r"advisor|adviser|staff(?:\s+member)?|(?:customer\s+)?(?:service|support)\s+(?:agent|person|team|rep))"
)
_HUMAN = re.compile(
    r"\b(?:(?:talk|speak|chat)\s+(?:to|with)\s+" + _PERSON + r"(?:\s|$)"
    r"|(?:connect|transfer|put)\s+me\s+(?:to|through\s+to|with)\s+" + _PERSON + r"(?:\s|$)"
    r"|(?:i\s+(?:want|need|d\s+like|would\s+like)|can\s+i\s+(?:have|get)|give\s+me|get\s+me)\s+"
    r"(?:a\s+|an\s+|to\s+)?(?:real\s+|actual\s+|live\s+)?(?:human|person|agent|operator)(?:\s|$)"
    r"|^(?:human|agent|operator|representative|real\s+person)(?:\s+please)?$"
    r"|(?:human|real\s+person|live\s+agent)\s+please)"
)

_RULES: tuple[tuple[SmallTalk, re.Pattern[str]], ...] = (
    ("negative", re.compile(rf"^{_NEGATIVE}$")),
    (
        "goodbye",
        re.compile(
            rf"^(?:(?:{_ACK}|{_THANKS})\s+)*(?:{_THANKS}\s+)?(?:and\s+)?{_BYE}"
            rf"(?:\s+(?:and\s+)?(?:{_THANKS}|{_BYE}|now))*$"
        ),
    ),
    ("thanks", re.compile(rf"^(?:(?:{_ACK}|no|yes)\s+)?{_THANKS}(?:\s+{_ACK})?$")),
    ("greet", re.compile(rf"^{_GREET}(?:\s+{_GREET})?$")),
)


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z0-9']+", " ", text)
    text = text.replace("'", " ")
    return " ".join(text.split())


def detect_smalltalk(text: str) -> SmallTalk | None:
    """What kind of small talk or control message `text` is, or None for a real request."""
    norm = _normalise(text)
    if not norm or len(norm) > 120:
        return None
    if _HUMAN.search(norm):
        return "human"
    for label, pattern in _RULES:
        if pattern.match(norm):
            return label
    return None

"""Phrasings about a side-effect action, each marked how-to question (True: answer from
the FAQ) or request (False: the bot may offer to act).

Written before `deskbot.bot.dialogue.confirming.asks_how_to` was: the two messages of
issue #24, then variants a customer of a bank writes (question words, "can I", "is it
possible", "what do I do"), then requests phrased as questions to the bot ("can you",
"could you", "please") and plain statements, which must stay requests. Not edited to
fit the rule: a phrasing the rule gets wrong is a bug in the rule.
"""

from __future__ import annotations

HOW_TO: tuple[str, ...] = (
    "thanks! one more thing - how do I freeze my card?",
    "how do I freeze my card?",
    "can I freeze my card in the app?",
    "how can I freeze my card",
    "how to freeze a card",
    "is it possible to freeze my card myself?",
    "where do I go to freeze my card?",
    "what do I do if my card is stolen?",
    "what should I do if I lost my card",
    "how would I block my card if I lose it?",
    "could I freeze the card from my phone?",
    "is there a way to freeze my card temporarily?",
    "am I able to unfreeze it later?",
    "do I need to call you to freeze my card?",
    "what happens if I freeze my card?",
    "How does freezing a card work?",
    "if my card gets stolen how do i report it",
    "where in the app can I freeze my card",
)

REQUESTS: tuple[str, ...] = (
    "I lost my card",
    "my card was stolen",
    "please freeze my card",
    "freeze my card",
    "can you freeze my card?",
    "could you block my card please",
    "I think someone has been using my card details online",
    "someone stole my wallet with my card in it",
    "I need my card frozen right now",
    "will you freeze my card for me?",
    "I've lost my debit card, freeze it",
    "my card is missing, I can't find it anywhere",
)

"""The API's dependencies (FastAPI `Depends`): the bot container, the caller's session
token and conversation, and the per-sender rate limit of Rasa's REST channel.

The app keeps what they hand out in `app.state` (set by `create_api`), so a test can
swap any of them with `app.dependency_overrides`.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from deskbot.bot.server.container import Bot
from deskbot.bot.server.frontdoor import SESSION_REFUSED, accept_message, check_session
from deskbot.bot.server.ratelimit import TokenBuckets, sender_key, take, too_many
from deskbot.bot.server.schemas import MESSAGE_ID, MessageIn, RestMessageIn
from deskbot.bot.store.models import Conversation


async def get_bot(request: Request) -> Bot:
    """The bot the app serves (async, like every dependency here that does no I/O: a
    plain `def` would cost each request a hand-over to the worker threads the turns use)."""
    bot: Bot = request.app.state.bot
    return bot


BotDep = Annotated[Bot, Depends(get_bot)]

AuthorizationHeader = Annotated[
    str | None, Header(description="`Bearer TOKEN` from POST /api/sessions")
]


async def session_token(authorization: AuthorizationHeader = None) -> str:
    """The caller's session token, checked for form only (401 when malformed)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "send the session token as 'Authorization: Bearer TOKEN'")
    token = authorization.removeprefix("Bearer ").strip()
    if not token or len(token) > 256 or not token.isascii():
        raise HTTPException(401, SESSION_REFUSED)
    return token


def conversation_for(bot: Bot, token: str) -> Conversation:
    """The conversation of a well-formed session token (`Refused`, 401, when unknown,
    closed or expired)."""
    expiry_s = bot.config.dialogue.session_expiry_minutes * 60.0
    return check_session(bot.store.conversation_by_token(token), expiry_s)


def session_conversation(
    bot: BotDep, token: Annotated[str, Depends(session_token)]
) -> Conversation:
    """The caller's conversation, from its session token (401 when unknown or expired)."""
    return conversation_for(bot, token)


Conv = Annotated[Conversation, Depends(session_conversation)]
Token = Annotated[str, Depends(session_token)]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Your id for this message (as `message_id` in the body): a retry with "
        "the same key gets the first copy's reply and makes no second turn.",
    ),
]


def message_id_of(body_id: str | None, key: str | None) -> str | None:
    """The message's client id, from the body or the Idempotency-Key header (422 when
    malformed, or when both are given and differ)."""
    if key is not None:
        if not re.fullmatch(MESSAGE_ID, key):
            raise HTTPException(
                422, "Idempotency-Key: 1 to 64 letters, digits, '.', '_', ':' or '-'"
            )
        if body_id is not None and body_id != key:
            raise HTTPException(422, "message_id and Idempotency-Key differ; send one of them")
    return body_id or key


async def message_text(body: MessageIn, bot: BotDep) -> str:
    """The message of a `MessageIn` body, judged by the front door (422 when refused)."""
    return accept_message(body.text, bot.config.limits.max_message_chars)


async def rest_message(body: RestMessageIn, bot: BotDep) -> RestMessageIn:
    """A REST channel body whose message the front door accepts (422 when refused)."""
    text = accept_message(body.message, bot.config.limits.max_message_chars)
    return body.model_copy(update={"message": text})


async def sender_buckets(request: Request) -> TokenBuckets | None:
    """The per-session buckets, which count a REST channel sender as a session."""
    buckets: TokenBuckets | None = request.app.state.session_buckets
    return buckets


async def rest_sender_limited(
    body: Annotated[RestMessageIn, Depends(rest_message)],
    buckets: Annotated[TokenBuckets | None, Depends(sender_buckets)],
) -> RestMessageIn:
    """The REST body once its sender's bucket gave a token (429 with Retry-After when
    empty). The sender has no session token, so the middleware cannot count it."""
    if buckets is not None:
        wait = await take(buckets, sender_key(body.sender))
        if wait > 0:
            detail, retry = too_many("from this sender", wait)
            raise HTTPException(429, detail, {"Retry-After": retry})
    return body


RestMessage = Annotated[RestMessageIn, Depends(rest_sender_limited)]

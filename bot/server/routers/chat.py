"""The customer chat routes: open a session, send messages (whole or streamed), read the
history, rate a reply, ask for a person, erase one's data (`DELETE /api/me`).

Every route but `POST /api/sessions` needs the session token (`Conv` or `Token`); each
message passes the front door (`deskbot.bot.server.frontdoor`) before anything is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.pipeline import UnknownTurn
from deskbot.bot.privacy.erasure import Eraser, ErasureError
from deskbot.bot.server.deps import (
    BotDep,
    Conv,
    IdempotencyKey,
    Token,
    conversation_for,
    message_id_of,
    message_text,
)
from deskbot.bot.server.frontdoor import accept_message
from deskbot.bot.server.identity import signed_by_site
from deskbot.bot.server.schemas import (
    ErasureOut,
    FeedbackIn,
    FeedbackOut,
    HandoffOut,
    MessageIn,
    OptionalSessionIn,
    ReplyOut,
    SessionIn,
    SessionOut,
    TurnOut,
    reply_out,
)
from deskbot.bot.store.audit import CUSTOMER

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["chat"])


@router.post("/sessions", response_model=SessionOut, status_code=201)
def create_session(bot: BotDep, body: OptionalSessionIn = None) -> SessionOut:
    """Open a conversation; keep the token, it is shown only once. Send no body for
    an anonymous customer, or what your site knows (`SessionIn`): the customer's id
    signed by your site and their name, the page and the language of the chat."""
    if body is None:
        body = SessionIn()
    if body.customer_id is not None and body.customer_hash is not None:
        key = bot.config.privacy.customer_key
        if not key:
            raise HTTPException(
                422,
                "customer_id is not accepted: the server has no DESKBOT_CUSTOMER_KEY to "
                "check customer_hash with; open the session without it",
            )
        if not signed_by_site(key, body.customer_id, body.customer_hash):
            raise HTTPException(403, "customer_hash does not match customer_id")
    conv, token = bot.store.create_conversation(
        customer_id=body.customer_id,
        channel="api",
        customer_name=body.customer_name,
        page=body.page,
        language=body.language,
    )
    return SessionOut(conversation_id=conv.id, session_token=token)


@router.delete("/me", response_model=ErasureOut)
def erase_me(conv: Conv, bot: BotDep) -> ErasureOut:
    """Erase everything stored about you (GDPR): this conversation, or, when the session
    was opened with your customer id, all of your conversations, with the training
    data derived from them. The session token stops working."""
    eraser = Eraser(bot.store, bot.config)
    try:
        if conv.customer_id is not None and conv.channel == "api":
            report = eraser.forget(
                customer_id=conv.customer_id, requested_by="customer", actor=CUSTOMER
            )
        else:
            report = eraser.forget(
                conversation_ids=[conv.id], requested_by="customer", actor=CUSTOMER
            )
    except ErasureError as exc:
        logger.warning("erasure of conversation %s postponed: %s", conv.id, exc)
        raise HTTPException(
            503,
            "your data cannot be erased right now; try again in a few minutes",
            {"Retry-After": "300"},
        ) from None
    return ErasureOut(**report.to_dict())


@router.post("/messages", response_model=ReplyOut)
async def post_message(
    body: MessageIn, token: Token, bot: BotDep, idempotency_key: IdempotencyKey = None
) -> ReplyOut:
    """Send a message and get the bot's reply (empty while a person owns the chat).

    Give the message an id (`message_id`, or the `Idempotency-Key` header) and retry
    with it freely: a retry gets the first copy's reply, and the conversation holds the
    message once. The same id with another text is refused (409)."""
    message_id = message_id_of(body.message_id, idempotency_key)

    def turn() -> ReplyOut:
        # The token's lookup and the turn share one worker thread: a sync dependency
        # would take a thread of its own, one more hand-over per turn.
        conv = conversation_for(bot, token)
        text = accept_message(body.text, bot.config.limits.max_message_chars)
        reply = bot.pipeline.handle(conv.id, text, conversation=conv, message_id=message_id)
        return reply_out(reply)

    return await run_in_threadpool(turn)


# Endpoints that take `session_token` and look the conversation up themselves: the
# validation handler still refuses an unknown token (401) before it judges their body.
TOKEN_CHECKED_INSIDE: frozenset[object] = frozenset({post_message})


@router.post(
    "/messages/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def post_message_stream(
    conv: Conv,
    text: Annotated[str, Depends(message_text)],
    body: MessageIn,
    bot: BotDep,
    idempotency_key: IdempotencyKey = None,
) -> StreamingResponse:
    """Send a message (a `MessageIn` body); the reply comes as server-sent events: `token`
    events with `{"text": piece}`, then one `reply` event with the whole reply (as
    POST /api/messages). A retry with the message's id gets the first copy's reply."""
    message_id = message_id_of(body.message_id, idempotency_key)
    turn = bot.pipeline.handle_stream(conv.id, text, conversation=conv, message_id=message_id)

    def events() -> Iterator[str]:
        for item in turn:
            if isinstance(item, Reply):
                yield f"event: reply\ndata: {reply_out(item).model_dump_json()}\n\n"
            else:
                yield f"event: token\ndata: {json.dumps({'text': item})}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/history", response_model=list[TurnOut])
def history(conv: Conv, bot: BotDep) -> list[TurnOut]:
    """Your conversation so far, oldest first (agents' messages included)."""
    return [
        TurnOut(
            seq=t.seq,
            role=t.role,
            text=t.text,
            created_at=t.created_at.isoformat(),
            turn_id=t.id if t.role == "bot" else None,
            kind=t.kind,
        )
        for t in bot.store.history(conv.id)
    ]


@router.post("/feedback", response_model=FeedbackOut)
def feedback(body: FeedbackIn, conv: Conv, bot: BotDep) -> FeedbackOut:
    """Rate one of the bot's replies; repeated 'not helpful' brings in a person."""
    try:
        reply = bot.pipeline.feedback(conv.id, body.turn_id, body.value)
    except UnknownTurn:
        raise HTTPException(
            404, f"no bot reply {body.turn_id} in your conversation; use a turn_id it returned"
        ) from None
    return FeedbackOut(recorded=True, reply=reply_out(reply) if reply else None)


@router.post("/handoff", response_model=HandoffOut)
def request_human(conv: Conv, bot: BotDep) -> HandoffOut:
    """Ask for a person: the conversation joins the agents' queue with its transcript."""
    handoff, reply = bot.pipeline.request_handoff(conv.id)
    assert handoff.id is not None
    return HandoffOut(
        handoff_id=handoff.id,
        status=handoff.status,
        reason=handoff.reason,
        reply=reply_out(reply),
    )

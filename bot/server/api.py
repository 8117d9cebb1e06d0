"""The HTTP API (FastAPI): sessions, messages (whole or streamed), history, feedback,
asking for a person, a Rasa-compatible REST channel, health, readiness and metrics.

Anything the client got wrong is a 4xx with a message saying what to send instead,
never a 5xx; a rejected request stores nothing, and no answer reveals anything of
another conversation. A session token is sent as `Authorization: Bearer TOKEN`; it
stops working when its conversation has been idle for `dialogue.session_expiry_minutes`.

Example:
    >>> client = TestClient(create_api(bot))                                   # doctest: +SKIP
    >>> token = client.post("/api/sessions").json()["session_token"]          # doctest: +SKIP
    >>> client.post("/api/messages", json={"text": "my card hasn't arrived"},
    ...             headers={"Authorization": f"Bearer {token}"}).json()["kind"]  # doctest: +SKIP
    'faq'
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deskbot.bot import __version__
from deskbot.bot.core.errors import DeskbotError, StoreError
from deskbot.bot.core.metrics import CONTENT_TYPE
from deskbot.bot.core.network import parse_networks
from deskbot.bot.core.types import Reply
from deskbot.bot.dialogue.pipeline import UnknownTurn
from deskbot.bot.privacy.erasure import (
    MAX_CUSTOMER_ID,
    Eraser,
    ErasureError,
    check_customer_id,
    customer_hash,
)
from deskbot.bot.server.container import Bot
from deskbot.bot.server.ratelimit import (
    RateLimit,
    make_buckets,
    sender_key,
    too_many,
)
from deskbot.bot.store.models import Conversation

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2_000
REST_CHANNEL = "rest"
# The schema's bound; `limits.max_message_chars` (checked per request) is the real one.
_HARD_MAX_CHARS = 100_000


def clean_message(value: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """The message with its whitespace collapsed; ValueError says what is wrong with it."""
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ValueError("the message is empty; send some text")
    if len(cleaned) > max_chars:
        raise ValueError(f"the message is longer than {max_chars} characters; shorten it")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in cleaned):
        raise ValueError("the message contains control characters; send plain text")
    return cleaned


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, max_length=_HARD_MAX_CHARS)

    @field_validator("text")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_message(value, _HARD_MAX_CHARS)


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # le: the store's ids are INTEGER columns, 32-bit on PostgreSQL; a larger number is
    # no turn (and must not reach the database: out of range there is a 500).
    turn_id: int = Field(ge=1, le=2**31 - 1, description="The `turn_id` of the bot's reply.")
    value: int = Field(description="1: helpful, -1: not helpful.")

    @field_validator("value")
    @classmethod
    def _thumb(cls, value: int) -> int:
        if value not in (1, -1):
            raise ValueError("value must be 1 (helpful) or -1 (not helpful)")
        return value


class RestMessageIn(BaseModel):
    """Rasa's REST channel body."""

    model_config = ConfigDict(extra="ignore", strict=True)

    # The conversation's customer id is "rest:" + sender, in a column of 128 characters.
    sender: str = Field(min_length=1, max_length=128 - len(REST_CHANNEL) - 1)
    message: str = Field(min_length=1, max_length=_HARD_MAX_CHARS)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not value.strip() or any(
            ord(c) < 32 or ord(c) == 0x7F or 0xD800 <= ord(c) < 0xE000 for c in value
        ):
            raise ValueError("sender must be a non-empty id without control characters")
        return value

    @field_validator("message")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_message(value, _HARD_MAX_CHARS)


class SessionIn(BaseModel):
    """Who the customer is, as the embedding site knows them (optional).

    The site proves it chose the id: `customer_hash` is HMAC-SHA256 of `customer_id`
    under the key it shares with the bot (`DESKBOT_CUSTOMER_KEY`), in hex.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    customer_id: str = Field(min_length=1, max_length=MAX_CUSTOMER_ID)
    customer_hash: str = Field(min_length=64, max_length=64)

    @field_validator("customer_id")
    @classmethod
    def _customer(cls, value: str) -> str:
        return check_customer_id(value)


class SessionOut(BaseModel):
    conversation_id: str
    session_token: str


class ErasureOut(BaseModel):
    conversations: int
    rows: dict[str, int]
    derived: dict[str, int]


class PassageOut(BaseModel):
    id: str
    question: str
    score: float
    url: str | None = None


class ReplyOut(BaseModel):
    text: str
    kind: str
    intent: str | None
    confidence: float | None
    citations: list[str]
    sources: list[PassageOut]
    buttons: list[str]
    turn_id: int | None = None
    handoff: bool = False
    handoff_reason: str | None = None
    action: str | None = None
    latency_ms: dict[str, float] = Field(default_factory=dict)


class TurnOut(BaseModel):
    seq: int
    role: str
    text: str
    created_at: str
    turn_id: int | None = None
    kind: str | None = None


class FeedbackOut(BaseModel):
    recorded: bool
    reply: ReplyOut | None = None


class HandoffOut(BaseModel):
    handoff_id: int
    status: str
    reason: str
    reply: ReplyOut


class RestButton(BaseModel):
    title: str
    payload: str


class RestReply(BaseModel):
    recipient_id: str
    text: str
    buttons: list[RestButton] | None = None


def reply_out(reply: Reply) -> ReplyOut:
    return ReplyOut(
        text=reply.text,
        kind=reply.kind,
        intent=reply.intent.intent if reply.intent else None,
        confidence=reply.intent.confidence if reply.intent else None,
        citations=list(reply.citations),
        sources=[
            PassageOut(id=p.id, question=p.question, score=p.score, url=p.url)
            for p in reply.passages
            if p.id in reply.citations
        ],
        buttons=list(reply.buttons),
        turn_id=reply.turn_id,
        handoff=reply.kind == "handoff",
        handoff_reason=reply.handoff_reason,
        action=reply.action,
        latency_ms=dict(reply.latency_ms),
    )


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413 before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
                await self.app(scope, receive, send)
                return
        # No Content-Length (a chunked body): read it here, up to the limit, then replay it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"detail": f"the request body is larger than {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _age_s(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


AuthorizationHeader = Annotated[
    str | None, Header(description="`Bearer TOKEN` from POST /api/sessions")
]


async def session_token(authorization: AuthorizationHeader = None) -> str:
    """The caller's session token, checked for form only (401 when malformed)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "send the session token as 'Authorization: Bearer TOKEN'")
    token = authorization.removeprefix("Bearer ").strip()
    if not token or len(token) > 256 or not token.isascii():
        raise HTTPException(401, "unknown or expired session token; create a new session")
    return token


def session_conversation(
    request: Request, token: Annotated[str, Depends(session_token)]
) -> Conversation:
    """The caller's conversation, from its session token (401 when unknown or expired)."""
    return conversation_for(request.app.state.bot, token)


def conversation_for(bot: Bot, token: str) -> Conversation:
    """The conversation of a well-formed session token (401 when unknown or expired)."""
    conv = bot.store.conversation_by_token(token)
    expiry_s = bot.config.dialogue.session_expiry_minutes * 60.0
    if conv is None or conv.status == "closed" or _age_s(conv.updated_at) > expiry_s:
        raise HTTPException(401, "unknown or expired session token; create a new session")
    return conv


Conv = Annotated[Conversation, Depends(session_conversation)]


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


def close_api(api: FastAPI) -> None:
    """Release what the app holds once the server has stopped: the rate limiter's Redis
    connections and the bot's threads, clients and database connections."""
    for buckets in api.state.rate_buckets:
        buckets.close()
    api.state.bot.close()


def create_api(bot: Bot) -> FastAPI:
    """The FastAPI app for `bot` (the UI layer mounts its pages on it)."""
    api = FastAPI(
        title=f"{bot.config.name} (deskbot)",
        version=__version__,
        description="Customer chat API of a deskbot bot. Create a session, then send messages "
        "with its token as `Authorization: Bearer TOKEN`.",
    )
    api.state.bot = bot
    limits = bot.config.limits
    api.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    # Added last, so it runs first: a refused request costs no body read.
    ip_buckets = make_buckets(
        limits.ip_requests_per_minute, limits.ip_burst, limits.rate_limit_redis_url
    )
    session_buckets = make_buckets(
        limits.session_requests_per_minute, limits.session_burst, limits.rate_limit_redis_url
    )
    api.state.rate_buckets = [b for b in (ip_buckets, session_buckets) if b is not None]
    api.add_middleware(
        RateLimit,
        ip_buckets=ip_buckets,
        session_buckets=session_buckets,
        trusted_proxies=parse_networks(limits.trusted_proxies),
        on_reject=lambda status: bot.metrics.rejected.labels(status=str(status)).inc(),
    )
    max_chars = bot.config.limits.max_message_chars
    expiry_s = bot.config.dialogue.session_expiry_minutes * 60.0

    def rejected(status: int, detail: str) -> JSONResponse:
        bot.metrics.rejected.labels(status=str(status)).inc()
        return JSONResponse({"detail": detail}, status_code=status)

    @api.exception_handler(UnicodeDecodeError)
    async def _bad_encoding(_request: Request, _exc: UnicodeDecodeError) -> JSONResponse:
        return rejected(400, "the request body is not UTF-8")

    # Endpoints that take `session_token` and look the conversation up themselves.
    token_checked_inside: set[object] = set()

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.scope.get("endpoint") in token_checked_inside:
            # Those routes look the token up on the turn's thread, after the body was
            # read: an unknown or expired token is still refused (401) before the body
            # is judged, as on every other route.
            try:
                token = await session_token(request.headers.get("authorization"))
                await run_in_threadpool(conversation_for, bot, token)
            except HTTPException as refused:
                return await _http(request, refused)
        return rejected(422, _validation_message(exc))

    @api.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        bot.metrics.rejected.labels(status=str(exc.status_code)).inc()
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @api.exception_handler(StoreError)
    async def _store_down(_request: Request, exc: StoreError) -> JSONResponse:
        logger.error("store error: %s", exc)
        return JSONResponse(
            {"detail": "the conversation store is unavailable; try again shortly"},
            status_code=503,
        )

    # The database went away (restarted, failed over, unreachable): a 503 the client may
    # retry, not a 500. The pool replaces the broken connections (pre-ping) when it is back.
    @api.exception_handler(OperationalError)
    @api.exception_handler(InterfaceError)
    async def _database_down(_request: Request, exc: DBAPIError) -> JSONResponse:
        logger.error("database unavailable: %s", type(exc.orig).__name__)
        return JSONResponse(
            {"detail": "the conversation store is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    def check_length(text: str) -> str:
        if len(text) > max_chars:
            raise HTTPException(
                422, f"text: the message is longer than {max_chars} characters; shorten it"
            )
        return text

    # -- ops -----------------------------------------------------------------------------

    @api.get("/healthz", tags=["ops"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["ops"], summary="Models are loaded (status ready, or degraded)")
    def readyz() -> JSONResponse:
        if not bot.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        # Degraded is still 200: the bot answers (it clarifies and hands off instead of
        # answering from the FAQ), so a load balancer should keep sending customers.
        degraded = bot.degraded
        body: dict[str, object] = {
            "status": "degraded" if degraded else "ready",
            "intent_model": bot.classifier.version,
            "faq_index": bot.retriever.version,
            "actions": bot.config.actions.url is not None,
        }
        if degraded:
            body["degraded"] = degraded
        return JSONResponse(body)

    @api.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(bot.metrics.render(), media_type=CONTENT_TYPE)

    # -- chat ----------------------------------------------------------------------------

    @api.post("/api/sessions", response_model=SessionOut, status_code=201, tags=["chat"])
    def create_session(body: SessionIn | None = None) -> SessionOut:
        """Open a conversation; keep the token, it is shown only once. Send no body for
        an anonymous customer, or the customer's id signed by your site (`SessionIn`)."""
        customer_id = None
        if body is not None:
            key = bot.config.privacy.customer_key
            if not key:
                raise HTTPException(
                    422,
                    "customer_id is not accepted: the server has no DESKBOT_CUSTOMER_KEY to "
                    "check customer_hash with; open the session without a body",
                )
            if not hmac.compare_digest(body.customer_hash, customer_hash(key, body.customer_id)):
                raise HTTPException(403, "customer_hash does not match customer_id")
            customer_id = body.customer_id
        conv, token = bot.store.create_conversation(customer_id=customer_id, channel="api")
        return SessionOut(conversation_id=conv.id, session_token=token)

    @api.delete("/api/me", response_model=ErasureOut, tags=["chat"])
    def erase_me(conv: Conv) -> ErasureOut:
        """Erase everything stored about you (GDPR): this conversation, or, when the session
        was opened with your customer id, all of your conversations, with the training
        data derived from them. The session token stops working."""
        eraser = Eraser(bot.store, bot.config)
        try:
            if conv.customer_id is not None and conv.channel == "api":
                report = eraser.forget(customer_id=conv.customer_id, requested_by="customer")
            else:
                report = eraser.forget(conversation_ids=[conv.id], requested_by="customer")
        except ErasureError as exc:
            logger.warning("erasure of conversation %s postponed: %s", conv.id, exc)
            raise HTTPException(
                503,
                "your data cannot be erased right now; try again in a few minutes",
                {"Retry-After": "300"},
            ) from None
        return ErasureOut(**report.to_dict())

    @api.post("/api/messages", response_model=ReplyOut, tags=["chat"])
    async def post_message(
        body: MessageIn, token: Annotated[str, Depends(session_token)]
    ) -> ReplyOut:
        """Send a message and get the bot's reply (empty while a person owns the chat)."""

        def turn() -> ReplyOut:
            # The token's lookup and the turn share one worker thread: a sync dependency
            # would take a thread of its own, one more hand-over per turn.
            conv = conversation_for(bot, token)
            return reply_out(
                bot.pipeline.handle(conv.id, check_length(body.text), conversation=conv)
            )

        return await run_in_threadpool(turn)

    token_checked_inside.add(post_message)

    @api.post(
        "/api/messages/stream",
        tags=["chat"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def post_message_stream(body: MessageIn, conv: Conv) -> StreamingResponse:
        """Send a message; the reply comes as server-sent events: `token` events with
        `{"text": piece}`, then one `reply` event with the whole reply (as POST /api/messages)."""
        text = check_length(body.text)

        def events() -> Iterator[str]:
            for item in bot.pipeline.handle_stream(conv.id, text, conversation=conv):
                if isinstance(item, Reply):
                    yield f"event: reply\ndata: {reply_out(item).model_dump_json()}\n\n"
                else:
                    yield f"event: token\ndata: {json.dumps({'text': item})}\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.get("/api/history", response_model=list[TurnOut], tags=["chat"])
    def history(conv: Conv) -> list[TurnOut]:
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

    @api.post("/api/feedback", response_model=FeedbackOut, tags=["chat"])
    def feedback(body: FeedbackIn, conv: Conv) -> FeedbackOut:
        """Rate one of the bot's replies; repeated 'not helpful' brings in a person."""
        try:
            reply = bot.pipeline.feedback(conv.id, body.turn_id, body.value)
        except UnknownTurn:
            raise HTTPException(
                404, f"no bot reply {body.turn_id} in your conversation; use a turn_id it returned"
            ) from None
        return FeedbackOut(recorded=True, reply=reply_out(reply) if reply else None)

    @api.post("/api/handoff", response_model=HandoffOut, tags=["chat"])
    def request_human(conv: Conv) -> HandoffOut:
        """Ask for a person: the conversation joins the agents' queue with its transcript."""
        handoff, reply = bot.pipeline.request_handoff(conv.id)
        assert handoff.id is not None
        return HandoffOut(
            handoff_id=handoff.id,
            status=handoff.status,
            reason=handoff.reason,
            reply=reply_out(reply),
        )

    # -- Rasa's REST channel -------------------------------------------------------------

    @api.post("/webhooks/rest/webhook", response_model=list[RestReply], tags=["rasa"])
    def rest_webhook(body: RestMessageIn) -> list[RestReply]:
        """Rasa's REST channel: `{sender, message}` in, `[{recipient_id, text, buttons}]` out.

        `sender` names the customer's conversation on this channel only; it never reaches
        a conversation opened through /api/sessions.
        """
        text = check_length(body.message)
        if session_buckets is not None:
            wait = session_buckets.take(sender_key(body.sender))
            if wait > 0:
                detail, retry = too_many("from this sender", wait)
                raise HTTPException(429, detail, {"Retry-After": retry})
        customer = f"{REST_CHANNEL}:{body.sender}"
        conv = bot.store.conversation_for_customer(customer, channel=REST_CHANNEL)
        if conv is None or conv.status == "closed" or _age_s(conv.updated_at) > expiry_s:
            conv, _token = bot.store.create_conversation(customer_id=customer, channel=REST_CHANNEL)
        reply = bot.pipeline.handle(conv.id, text, conversation=conv)
        if not reply.text:
            return []
        buttons = [RestButton(title=b, payload=b) for b in reply.buttons] or None
        return [RestReply(recipient_id=body.sender, text=reply.text, buttons=buttons)]

    @api.exception_handler(DeskbotError)
    async def _deskbot_error(_request: Request, exc: DeskbotError) -> JSONResponse:
        logger.error("request failed: %s", exc)
        return JSONResponse(
            {"detail": "the bot could not handle this request; try again"}, status_code=503
        )

    return api

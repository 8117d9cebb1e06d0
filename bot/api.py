"""The HTTP API (FastAPI): sessions, messages, history, health.

Errors are 4xx with a message for anything the client got wrong, never a 5xx; a
rejected request stores nothing.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deskbot.bot import __version__
from deskbot.bot.app import Bot
from deskbot.bot.store.models import Conversation

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2_000


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)

    @field_validator("text")
    @classmethod
    def _clean(cls, value: str) -> str:
        cleaned = " ".join(value.split())
        if not cleaned:
            raise ValueError("the message is empty")
        if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in cleaned):
            raise ValueError("the message contains control characters")
        return cleaned


class SessionOut(BaseModel):
    conversation_id: str
    session_token: str


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


class TurnOut(BaseModel):
    seq: int
    role: str
    text: str
    created_at: str


def create_api(bot: Bot) -> FastAPI:
    """The FastAPI app for `bot` (the UI layer mounts its pages on it)."""
    api = FastAPI(title=f"{bot.config.name} (deskbot)", version=__version__)
    api.state.bot = bot

    @api.exception_handler(UnicodeDecodeError)
    async def _bad_encoding(_request: Request, _exc: UnicodeDecodeError) -> JSONResponse:
        return JSONResponse({"detail": "the request body is not UTF-8"}, status_code=400)

    def conversation(
        authorization: Annotated[str | None, Header()] = None,
    ) -> Conversation:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "send the session token as 'Authorization: Bearer TOKEN'")
        conv = bot.store.conversation_by_token(authorization.removeprefix("Bearer ").strip())
        if conv is None:
            raise HTTPException(401, "unknown or expired session token; create a new session")
        return conv

    @api.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["ops"])
    def readyz() -> dict[str, Any]:
        return {
            "status": "ready",
            "intent_model": bot.classifier.version,
            "faq_index": bot.retriever.version,
        }

    @api.post("/api/sessions", response_model=SessionOut, status_code=201, tags=["chat"])
    def create_session() -> SessionOut:
        conv, token = bot.store.create_conversation(channel="api")
        return SessionOut(conversation_id=conv.id, session_token=token)

    @api.post("/api/messages", response_model=ReplyOut, tags=["chat"])
    def post_message(
        body: MessageIn, conv: Annotated[Conversation, Depends(conversation)]
    ) -> ReplyOut:
        reply = bot.pipeline.handle(conv.id, body.text)
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
        )

    @api.get("/api/history", response_model=list[TurnOut], tags=["chat"])
    def history(conv: Annotated[Conversation, Depends(conversation)]) -> list[TurnOut]:
        return [
            TurnOut(seq=t.seq, role=t.role, text=t.text, created_at=t.created_at.isoformat())
            for t in bot.store.history(conv.id)
        ]

    return api

"""How the API answers what went wrong: every refusal is JSON `{"detail": ...}` with a
message saying what to send instead, counted in `deskbot_rejected_total`; a store or
database that is down is a 503 the client may retry, never a 500."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from deskbot.bot.core.errors import DeskbotError, StoreError
from deskbot.bot.dialogue.recording import MessageIdReused
from deskbot.bot.server.container import Bot
from deskbot.bot.server.deps import conversation_for, session_token
from deskbot.bot.server.frontdoor import Refused
from deskbot.bot.server.routers.chat import TOKEN_CHECKED_INSIDE

logger = logging.getLogger(__name__)

STORE_DOWN = "the conversation store is unavailable; try again shortly"


def validation_message(exc: RequestValidationError) -> str:
    """What is wrong with a request, one `field: problem` per error."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


class RefusalHandlers:
    """The handlers that refuse a client's request (4xx), each counted by status.

    They hold `bot` rather than reading `request.app`: an error raised inside a mounted
    app (the widget, the console) reaches them with that app's scope.
    """

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def rejected(
        self, status: int, detail: object, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        self.bot.metrics.rejected.labels(status=str(status)).inc()
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def bad_encoding(self, _request: Request, _exc: Exception) -> JSONResponse:
        return self.rejected(400, "the request body is not UTF-8")

    async def invalid(self, request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if request.scope.get("endpoint") in TOKEN_CHECKED_INSIDE:
            # Those routes look the token up on the turn's thread, after the body was
            # read: an unknown or expired token is still refused (401) before the body
            # is judged, as on every other route.
            try:
                token = await session_token(request.headers.get("authorization"))
                await run_in_threadpool(conversation_for, self.bot, token)
            except (HTTPException, Refused) as refused:
                return await self.refused(request, refused)
        return self.rejected(422, validation_message(exc))

    async def reused_id(self, _request: Request, exc: Exception) -> JSONResponse:
        return self.rejected(409, f"message_id: {exc}")

    async def refused(self, _request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, Refused):
            return self.rejected(exc.status, exc.detail)
        assert isinstance(exc, HTTPException)
        return self.rejected(exc.status_code, exc.detail, exc.headers)


async def _store_down(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("store error: %s", exc)
    return JSONResponse({"detail": STORE_DOWN}, status_code=503)


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    # The database went away (restarted, failed over, unreachable): a 503 the client may
    # retry, not a 500. The pool replaces the broken connections (pre-ping) when it is back.
    assert isinstance(exc, DBAPIError)
    logger.error("database unavailable: %s", type(exc.orig).__name__)
    return JSONResponse({"detail": STORE_DOWN}, status_code=503, headers={"Retry-After": "2"})


async def _deskbot_error(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("request failed: %s", exc)
    return JSONResponse(
        {"detail": "the bot could not handle this request; try again"}, status_code=503
    )


def add_error_handlers(api: FastAPI, bot: Bot) -> None:
    """Install the handlers on `api` (the most specific exception class wins)."""
    refusals = RefusalHandlers(bot)
    api.add_exception_handler(UnicodeDecodeError, refusals.bad_encoding)
    api.add_exception_handler(RequestValidationError, refusals.invalid)
    api.add_exception_handler(HTTPException, refusals.refused)
    api.add_exception_handler(Refused, refusals.refused)
    api.add_exception_handler(MessageIdReused, refusals.reused_id)
    api.add_exception_handler(StoreError, _store_down)
    api.add_exception_handler(OperationalError, _database_down)
    api.add_exception_handler(InterfaceError, _database_down)
    api.add_exception_handler(DeskbotError, _deskbot_error)

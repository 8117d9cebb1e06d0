"""One front door: the checks every customer message passes, whichever way it came in
(`POST /api/messages` and its stream, Rasa's REST channel, the chat widget).

A message is its text with whitespace collapsed; it is refused when it is empty, holds
control characters, or is longer than `limits.max_message_chars`. A session is refused
when it is unknown, closed (for the API) or idle longer than
`dialogue.session_expiry_minutes`. A refusal (`Refused`) carries the HTTP status the API
answers with and the reason, in the same words for every channel; nothing is stored for
a refused message.

Before any of that, `BodyLimit` (ASGI middleware) answers 413 to a request body over
`limits.max_body_bytes` before the app reads it. It is hand-written on purpose:
Starlette and FastAPI have no body-size limit, and a server's own (uvicorn has none;
nginx's `client_max_body_size`) is not there in every deployment. A chunked body (no
Content-Length) is counted as its chunks arrive, before the app reads any of it, so a
client cannot make the process hold a body of any size by leaving the length out; a
generic middleware that reads the whole body first, or a check of Content-Length alone,
would miss exactly that case.

Example:
    >>> accept_message("  where is\\n my card ", max_chars=2000)
    'where is my card'
    >>> accept_message("bell\\x07", max_chars=2000)
    Traceback (most recent call last):
    ...
    deskbot.bot.server.frontdoor.Refused: text: the message contains control characters; send plain text
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.store.models import Conversation

# The schemas' bound on a message (a cheap first cut while the JSON is read);
# `limits.max_message_chars`, checked by `accept_message`, is the real one.
HARD_MAX_CHARS = 100_000
SESSION_REFUSED = "unknown or expired session token; create a new session"


class Refused(DeskbotError):
    """A message or session the front door turns away.

    Attributes:
        status: the HTTP status the API answers with (422 message, 401 session).
        reason: why, in the words every channel shows.
        detail: the API's `detail`: the reason after the field it is about, if any.
    """

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        self.status = status
        self.reason = reason
        self.detail = f"{field}: {reason}" if field else reason
        super().__init__(self.detail)


def clean_message(value: str, max_chars: int = HARD_MAX_CHARS) -> str:
    """The message with its whitespace collapsed; ValueError says what is wrong with it.

    Control characters are judged before the length, so that a message with both
    problems gets the same reason from the schema (which checks `HARD_MAX_CHARS`) and
    from `accept_message` (which checks the configured limit).
    """
    cleaned = " ".join(value.split())
    if not cleaned:
        raise ValueError("the message is empty; send some text")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in cleaned):
        raise ValueError("the message contains control characters; send plain text")
    if len(cleaned) > max_chars:
        raise ValueError(f"the message is longer than {max_chars} characters; shorten it")
    return cleaned


def accept_message(text: str, max_chars: int) -> str:
    """The message as it is stored, or `Refused` (422) saying what to send instead.

    Args:
        text: what the customer sent.
        max_chars: `limits.max_message_chars`.
    """
    try:
        return clean_message(text, max_chars)
    except ValueError as exc:
        raise Refused(422, str(exc), field="text") from None


def idle_s(when: datetime) -> float:
    """Seconds since `when` (a naive time is UTC, as the store writes it)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


def session_refusal(
    conv: Conversation | None, expiry_s: float, *, closed_ok: bool = False
) -> Refused | None:
    """Why the session of `conv` may not take a message (None when it may).

    Args:
        conv: the conversation its token names (None: no such token).
        expiry_s: `dialogue.session_expiry_minutes` in seconds.
        closed_ok: a closed conversation still takes messages (the widget, which tells
            its customer they may write any time after an agent closed it).
    """
    if conv is None or (conv.status == "closed" and not closed_ok):
        return Refused(401, SESSION_REFUSED)
    if idle_s(conv.updated_at) > expiry_s:
        return Refused(401, SESSION_REFUSED)
    return None


def check_session(
    conv: Conversation | None, expiry_s: float, *, closed_ok: bool = False
) -> Conversation:
    """`conv` when its session may take a message, else `Refused` (401)."""
    refusal = session_refusal(conv, expiry_s, closed_ok=closed_ok)
    if refusal is not None:
        raise refusal
    assert conv is not None
    return conv


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

"""The HTTP API (FastAPI): sessions, messages (whole or streamed), history, feedback,
asking for a person, a Rasa-compatible REST channel, health, readiness and metrics.

Anything the client got wrong is a 4xx with a message saying what to send instead,
never a 5xx; a rejected request stores nothing, and no answer reveals anything of
another conversation. A session token is sent as `Authorization: Bearer TOKEN`; it
stops working when its conversation has been idle for `dialogue.session_expiry_minutes`.

The app is put together here (`create_api`) from parts with one job each:

| module | what |
|---|---|
| `routers/chat.py`, `routers/rasa.py`, `routers/ops.py` | the routes, one `APIRouter` per job |
| `deps.py` | dependencies: the bot, the session token and conversation, the sender limit |
| `frontdoor.py` | the checks every message passes (the widget uses them too); `BodyLimit`, 413 for big bodies |
| `schemas.py` | request and response bodies |
| `handlers.py` | errors as JSON refusals (4xx) or retryable 503s |
| `ratelimit.py` | 429 per address and session |

Example:
    >>> client = TestClient(create_api(bot))                                   # doctest: +SKIP
    >>> token = client.post("/api/sessions").json()["session_token"]          # doctest: +SKIP
    >>> client.post("/api/messages", json={"text": "my card hasn't arrived"},
    ...             headers={"Authorization": f"Bearer {token}"}).json()["kind"]  # doctest: +SKIP
    'faq'
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from deskbot.bot import __version__
from deskbot.bot.core.network import parse_networks
from deskbot.bot.server.container import Bot
from deskbot.bot.server.frontdoor import BodyLimit
from deskbot.bot.server.handlers import add_error_handlers
from deskbot.bot.server.ratelimit import RateLimit, make_buckets
from deskbot.bot.server.routers import chat, ops, rasa

logger = logging.getLogger(__name__)

__all__ = ["add_limits", "close_api", "create_api"]


def create_api(bot: Bot) -> FastAPI:
    """The FastAPI app for `bot` (the UI layer mounts its pages on it)."""
    api = FastAPI(
        title=f"{bot.config.name} (deskbot)",
        version=__version__,
        description="Customer chat API of a deskbot bot. Create a session, then send messages "
        "with its token as `Authorization: Bearer TOKEN`.",
    )
    api.state.bot = bot
    add_error_handlers(api, bot)
    api.include_router(ops.router)
    api.include_router(chat.router)
    api.include_router(rasa.router)
    server = bot.config.server
    notice = rasa.rest_channel_notice(server.rest_channel, server.rest_tokens)
    if notice is not None:
        logger.warning("%s", notice)
    add_limits(api, bot)
    return api


def add_limits(api: FastAPI, bot: Bot) -> None:
    """The body size limit and the rate limits, in front of everything `api` serves."""
    limits = bot.config.limits
    api.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    ip_buckets = make_buckets(
        limits.ip_requests_per_minute, limits.ip_burst, limits.rate_limit_redis_url
    )
    session_buckets = make_buckets(
        limits.session_requests_per_minute, limits.session_burst, limits.rate_limit_redis_url
    )
    api.state.session_buckets = session_buckets
    api.state.rate_buckets = [b for b in (ip_buckets, session_buckets) if b is not None]
    # Added last, so it runs first: a refused request costs no body read.
    api.add_middleware(
        RateLimit,
        ip_buckets=ip_buckets,
        session_buckets=session_buckets,
        trusted_proxies=parse_networks(limits.trusted_proxies),
        on_reject=lambda status: bot.metrics.rejected.labels(status=str(status)).inc(),
    )


def close_api(api: FastAPI) -> None:
    """Release what the app holds once the server has stopped: the rate limiter's Redis
    connections and the bot's threads, clients and database connections."""
    for buckets in api.state.rate_buckets:
        buckets.close()
    api.state.bot.close()

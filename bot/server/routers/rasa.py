"""Rasa's REST channel: `{sender, message}` in, `[{recipient_id, text, buttons}]` out.

A sender is its own conversation on this channel; when that conversation is closed or
has expired, the next message opens a new one, as Rasa does.

The channel is closed by default (`server.rest_channel: token`): a message needs one of
the tokens of `DESKBOT_REST_TOKENS`, as `Authorization: Bearer TOKEN` or, as Rasa's
`--auth-token` is sent, `?token=TOKEN`. Each token is a credential of its own: its
senders' conversations are keyed by the token's hash as well as the sender, so two
client systems with the same sender id never share a conversation. Whoever holds a
token can still write as any sender of that token: give each client system its own.
`rest_channel: open` takes messages without a credential (customer id `rest:SENDER`,
as before issue #22); `off` answers 404.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from deskbot.bot.core.config import REST_TOKENS_ENV
from deskbot.bot.server.deps import BotDep, RestMessage
from deskbot.bot.server.frontdoor import session_refusal
from deskbot.bot.server.schemas import REST_CHANNEL, RestButton, RestReply

logger = logging.getLogger(__name__)

router = APIRouter(tags=["rasa"])
_MAX_CUSTOMER_ID = 128  # the conversations.customer_id column


def rest_credential(request: Request, bot: BotDep) -> str | None:
    """The credential of this request (a token's short hash), None on an open channel.

    401 without a valid token, 403 while no token is configured, 404 when the channel
    is off. Every configured token is compared, in constant time, whatever matches."""
    server = bot.config.server
    if server.rest_channel == "off":
        raise HTTPException(404, "the REST channel is off (server.rest_channel)")
    if server.rest_channel == "open":
        return None
    if not server.rest_tokens:
        raise HTTPException(
            403,
            f"the REST channel needs a credential: set {REST_TOKENS_ENV} on the server, "
            "or server.rest_channel: open on a private network",
        )
    header = request.headers.get("authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    given = given or request.query_params.get("token", "")
    found: str | None = None
    for token in server.rest_tokens:
        if hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
            found = token
    if found is None:
        raise HTTPException(
            401,
            "the REST channel needs a token: Authorization: Bearer TOKEN or ?token=TOKEN",
            {"WWW-Authenticate": "Bearer"},
        )
    return hashlib.sha256(found.encode("utf-8")).hexdigest()[:12]


def rest_customer(sender: str, credential: str | None) -> str:
    """The conversation's customer id for `sender` under `credential`."""
    if credential is None:
        return f"{REST_CHANNEL}:{sender}"
    customer = f"{REST_CHANNEL}:{credential}:{sender}"
    if len(customer) <= _MAX_CUSTOMER_ID:
        return customer
    digest = hashlib.sha256(sender.encode("utf-8", "replace")).hexdigest()
    return f"{REST_CHANNEL}:{credential}:#{digest}"


@router.post("/webhooks/rest/webhook", response_model=list[RestReply])
def rest_webhook(
    body: RestMessage,
    bot: BotDep,
    credential: Annotated[str | None, Depends(rest_credential)],
) -> list[RestReply]:
    """Rasa's REST channel: `{sender, message}` in, `[{recipient_id, text, buttons}]` out.

    `sender` names the customer's conversation on this channel, under this request's
    credential; it never reaches a conversation opened through /api/sessions.
    """
    customer = rest_customer(body.sender, credential)
    conv = bot.store.conversation_for_customer(customer, channel=REST_CHANNEL)
    expiry_s = bot.config.dialogue.session_expiry_minutes * 60.0
    if conv is None or session_refusal(conv, expiry_s) is not None:
        conv, _token = bot.store.create_conversation(customer_id=customer, channel=REST_CHANNEL)
    reply = bot.pipeline.handle(
        conv.id, body.message, conversation=conv, message_id=body.message_id
    )
    if not reply.text:
        return []
    buttons = [RestButton(title=b, payload=b) for b in reply.buttons] or None
    return [RestReply(recipient_id=body.sender, text=reply.text, buttons=buttons)]


def rest_channel_notice(rest_channel: str, tokens: tuple[str, ...]) -> str | None:
    """What an operator upgrading an old config must be told at start-up, if anything."""
    if rest_channel == "token" and not tokens:
        return (
            "the Rasa REST channel (/webhooks/rest/webhook) now needs a credential and "
            f"refuses every message (403): set {REST_TOKENS_ENV} (one token per client "
            "system, sent as Authorization: Bearer TOKEN or ?token=TOKEN), or "
            "server.rest_channel: open to take messages from anyone (a private network "
            "only), or off"
        )
    if rest_channel == "open":
        return (
            "the Rasa REST channel (/webhooks/rest/webhook) takes messages without a "
            "credential (server.rest_channel: open): whoever knows a sender id writes "
            "into that conversation; keep it off the public network"
        )
    return None

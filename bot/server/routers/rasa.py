"""Rasa's REST channel: `{sender, message}` in, `[{recipient_id, text, buttons}]` out.

A sender is its own conversation on this channel (customer id `rest:SENDER`); when that
conversation is closed or has expired, the next message opens a new one, as Rasa does.
"""

from __future__ import annotations

from fastapi import APIRouter

from deskbot.bot.server.deps import BotDep, RestMessage
from deskbot.bot.server.frontdoor import session_refusal
from deskbot.bot.server.schemas import REST_CHANNEL, RestButton, RestReply

router = APIRouter(tags=["rasa"])


@router.post("/webhooks/rest/webhook", response_model=list[RestReply])
def rest_webhook(body: RestMessage, bot: BotDep) -> list[RestReply]:
    """Rasa's REST channel: `{sender, message}` in, `[{recipient_id, text, buttons}]` out.

    `sender` names the customer's conversation on this channel only; it never reaches
    a conversation opened through /api/sessions.
    """
    customer = f"{REST_CHANNEL}:{body.sender}"
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

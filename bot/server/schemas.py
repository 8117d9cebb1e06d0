"""The HTTP API's request and response bodies (pydantic), and `reply_out`, which turns a
`Reply` into what the API sends.

Requests are strict (`extra="forbid"`, no coercion): a field of the wrong type or one
too many is a 422 saying which. Messages are judged by the front door's
`clean_message` (`deskbot.bot.server.frontdoor`), the same code the widget uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from deskbot.bot.core.types import Reply
from deskbot.bot.privacy.erasure import MAX_CUSTOMER_ID, check_customer_id
from deskbot.bot.server.frontdoor import HARD_MAX_CHARS, clean_message
from deskbot.bot.server.identity import (
    MAX_LANGUAGE,
    MAX_NAME,
    MAX_PAGE,
    check_customer_name,
    check_language,
    check_page,
)

REST_CHANNEL = "rest"
# How each of the session's fields is checked (and cleaned) when it is sent.
_SESSION_CHECKS: dict[str, Callable[[str], str]] = {
    "customer_id": check_customer_id,
    "customer_name": check_customer_name,
    "page": check_page,
    "language": check_language,
}


# The client's id of a message (or the Idempotency-Key header): a retry with the same id
# gets the first copy's reply and makes no second turn.
MESSAGE_ID = r"^[A-Za-z0-9._:-]{1,64}$"
MESSAGE_ID_HELP = (
    "Your id for this message (letters, digits, . _ : -; at most 64): send the same id "
    "when you retry it, and the reply is the first copy's, never a second turn."
)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, max_length=HARD_MAX_CHARS)
    message_id: str | None = Field(default=None, pattern=MESSAGE_ID, description=MESSAGE_ID_HELP)

    @field_validator("text")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_message(value, HARD_MAX_CHARS)


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
    message: str = Field(min_length=1, max_length=HARD_MAX_CHARS)
    # Rasa's message id, when the client sends one: a retry with it is not a second turn.
    message_id: str | None = Field(default=None, pattern=MESSAGE_ID, description=MESSAGE_ID_HELP)

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
        return clean_message(value, HARD_MAX_CHARS)


class SessionIn(BaseModel):
    """Who the customer is, as the embedding site knows them (every field optional).

    The site proves it chose the id: `customer_hash` is HMAC-SHA256 of `customer_id`
    under the key it shares with the bot (`DESKBOT_CUSTOMER_KEY`), in hex. The name needs
    a signed id; the page and the language do not (`deskbot.bot.server.identity`, the
    rules the widget's URL follows too). Agents see them beside the conversation.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    customer_id: str | None = Field(default=None, min_length=1, max_length=MAX_CUSTOMER_ID)
    customer_hash: str | None = Field(default=None, min_length=64, max_length=64)
    customer_name: str | None = Field(
        default=None, description=f"The customer's name for agents (at most {MAX_NAME} characters)."
    )
    page: str | None = Field(
        default=None,
        max_length=MAX_PAGE,
        description="The http(s) URL of the page the customer is chatting from.",
    )
    language: str | None = Field(
        default=None,
        max_length=MAX_LANGUAGE,
        description="The customer's language, a BCP-47 tag such as 'en' or 'en-GB'.",
    )

    @field_validator("customer_id", "customer_name", "page", "language")
    @classmethod
    def _checked(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _SESSION_CHECKS[str(info.field_name)](value)

    @model_validator(mode="after")
    def _signed_id(self) -> SessionIn:
        if (self.customer_id is None) != (self.customer_hash is None):
            raise ValueError("customer_id and customer_hash go together; send both or neither")
        if self.customer_name is not None and self.customer_id is None:
            raise ValueError("customer_name is taken only with a signed customer_id")
        return self


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


def _empty_is_none(value: object) -> object:
    # `{}` says no more than no body: an anonymous session, not two missing fields.
    return None if value == {} else value


# The body of POST /api/sessions: SessionIn, or nothing (no body, `null` or `{}`).
OptionalSessionIn = Annotated[SessionIn | None, BeforeValidator(_empty_is_none)]

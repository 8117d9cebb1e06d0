"""Canned replies: saved texts with placeholders, shared by every agent, edited by admins.

A text may hold the placeholders of `PLACEHOLDERS` (`{customer_name}`, `{agent_name}`,
`{conversation_id}`); `{{` and `}}` are literal braces. Saving checks the text and
refuses an unknown placeholder with the list of known ones; filling never raises.

The placeholders are read with the standard library's `string.Formatter().parse`, which
knows exactly this syntax (Python's format strings), and filled by our own join from a
fixed mapping, never with `str.format`: a text an admin typed gets no attribute or index
lookups (`{agent_name.__class__}`), conversions or format specs, only whole names.
Jinja2 (which the nightly reports use) would need `{{ name }}` and brings a language of
loops and filters that a reply's text does not need.

Example:
    >>> check_placeholders("Hi {customer_name}, I'm {agent_name}.")
    ('customer_name', 'agent_name')
    >>> fill("Hi {customer_name}, I'm {agent_name}.", {"customer_name": "Ann"})
    "Hi Ann, I'm ."
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from deskbot.bot.core.errors import StoreError
from deskbot.bot.store.base import SqlRepository
from deskbot.bot.store.models import Agent, CannedReply, utcnow

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_CANNED_CHARS",
    "PLACEHOLDERS",
    "CannedReplyRepository",
    "NotAllowed",
    "PlaceholderError",
    "check_placeholders",
    "fill",
]

# What a canned reply may say, and what each placeholder becomes when it is inserted.
PLACEHOLDERS = {
    "customer_name": "the customer's name, as the site passed it (empty if none)",
    "agent_name": "the display name of the agent who inserts the reply",
    "conversation_id": "the conversation's reference",
}
MAX_TITLE_CHARS = 128  # the column's length
MAX_CANNED_CHARS = 4_000  # an agent's reply is at most this long


class NotAllowed(StoreError):
    """The agent's role does not allow this change (an agent editing canned replies,
    someone other than the claiming agent or an admin moving a handoff)."""


class PlaceholderError(StoreError):
    """A canned reply's text has an unknown or malformed placeholder."""


def _known() -> str:
    return ", ".join("{" + name + "}" for name in PLACEHOLDERS)


def check_placeholders(text: str) -> tuple[str, ...]:
    """The placeholders `text` uses, in order; raises `PlaceholderError` saying what is
    wrong and which placeholders there are."""
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:  # "{customer_name" or a lone "}"
        raise PlaceholderError(
            f"the text has a brace without its pair ({exc}); write a placeholder as "
            f"{{name}} ({_known()}) and a literal brace as {{{{ or }}}}"
        ) from None
    used: list[str] = []
    unknown: list[str] = []
    for _, name, spec, conversion in pieces:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            unknown.append(_as_typed(name, spec, conversion))
        else:
            used.append(name)
    if unknown:
        raise PlaceholderError(
            f"unknown placeholder {', '.join(unknown)}; the placeholders are {_known()} "
            "(write a literal brace as {{ or }})"
        )
    return tuple(used)


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with its placeholders replaced by `values` (a missing value is empty).

    Never raises: a text saved before a placeholder was withdrawn (or written to the
    table by hand) keeps what cannot be filled as it was typed, for the agent to edit."""
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError:
        return text
    out: list[str] = []
    for literal, name, spec, conversion in pieces:
        # parse() has already turned "{{" and "}}" into single braces in `literal`.
        out.append(literal)
        if name is None:
            continue
        if name in PLACEHOLDERS and not spec and not conversion:
            out.append(values.get(name) or "")
        else:
            out.append(_as_typed(name, spec, conversion))
    return "".join(out)


def _as_typed(name: str, spec: str | None, conversion: str | None) -> str:
    """A placeholder as it was written: "{name!r:>5}"."""
    return (
        "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    )


class CannedReplyRepository(SqlRepository):
    """The shared canned replies; only admins may add, change or delete them."""

    def canned_replies(self) -> list[CannedReply]:
        """Every canned reply, by title."""
        return self._all(select(CannedReply).order_by(col(CannedReply.title)))

    def get_canned_reply(self, reply_id: int) -> CannedReply | None:
        with self.session() as s:
            return s.get(CannedReply, reply_id)

    def save_canned_reply(
        self, editor: Agent, title: str, text: str, *, reply_id: int | None = None
    ) -> CannedReply:
        """Add a canned reply (or change reply `reply_id`) as `editor`, an admin.

        Raises:
            NotAllowed: `editor` is not an admin.
            PlaceholderError: the text has an unknown or malformed placeholder.
            StoreError: an empty or too long title or text, a title another reply has,
                no reply `reply_id`.
        """
        _admin(editor, "change canned replies")
        title, text = " ".join(title.split()), text.strip()
        if not title or len(title) > MAX_TITLE_CHARS:
            raise StoreError(f"a canned reply needs a title of 1 to {MAX_TITLE_CHARS} characters")
        if not text or len(text) > MAX_CANNED_CHARS:
            raise StoreError(f"a canned reply's text is 1 to {MAX_CANNED_CHARS} characters")
        check_placeholders(text)
        with self._write_session() as s:
            if reply_id is None:
                reply = CannedReply(title=title, text=text, updated_by=editor.username)
            else:
                found = s.get(CannedReply, reply_id)
                if found is None:
                    raise StoreError(f"no canned reply {reply_id}; it may have been deleted")
                reply = found
                reply.title, reply.text = title, text
                reply.updated_by, reply.updated_at = editor.username, utcnow()
            s.add(reply)
            try:
                s.commit()
            except IntegrityError:
                raise StoreError(
                    f"a canned reply titled {title!r} exists already; pick it to change it"
                ) from None
        logger.info("canned reply %s saved by %s", reply.id, editor.username)
        return reply

    def delete_canned_reply(self, editor: Agent, reply_id: int) -> None:
        """Delete canned reply `reply_id` as `editor`, an admin (`NotAllowed` otherwise)."""
        _admin(editor, "delete canned replies")
        with self._write_session() as s:
            reply = s.get(CannedReply, reply_id)
            if reply is None:
                raise StoreError(f"no canned reply {reply_id}; it may have been deleted")
            s.delete(reply)
            s.commit()
        logger.info("canned reply %s deleted by %s", reply_id, editor.username)


def _admin(agent: Agent, doing: str) -> None:
    if agent.role != "admin":
        logger.warning("agent %s was refused: %s", agent.username, doing)
        raise NotAllowed(f"only an admin may {doing}; ask one to do it")

"""Who the customer is, as the embedding site says: the checks of what it may pass (the
customer's id with its signature, a display name, the page the chat was opened on and
the customer's language), the same for the API (`POST /api/sessions`) and the widget
(its URL's query).

The site proves it chose the id: `customer_hash` is HMAC-SHA256 of `customer_id` under
the key it shares with the bot (`privacy.customer_key`, `DESKBOT_CUSTOMER_KEY`). A name
describes an identified customer, so it is taken only with a signed id; the page and the
language say where the chat is and are taken from anyone. Each value is checked
against its column (`Conversation.customer_name`, `.page`, `.language`) and refused with
a reason that says what to send instead; nothing is stored for a refused one.

Example:
    >>> check_language("EN-gb")
    'en-GB'
    >>> check_page("javascript:alert(1)")
    Traceback (most recent call last):
    ...
    ValueError: page must be an http:// or https:// URL of at most 512 characters
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.privacy.erasure import check_customer_id, customer_hash

__all__ = [
    "MAX_LANGUAGE",
    "MAX_NAME",
    "MAX_PAGE",
    "CustomerContext",
    "IdentityRefused",
    "check_customer_name",
    "check_language",
    "check_page",
    "context_from_query",
    "signed_by_site",
]

# The columns' lengths (`deskbot.bot.store.models.Conversation`; a test holds them in step).
MAX_NAME = 128
MAX_PAGE = 512
MAX_LANGUAGE = 16

# A BCP-47 language tag, as browsers and sites write it: a 2-3 letter language, then
# subtags of 1-8 letters or digits (script, region, variant): en, en-GB, zh-Hant-TW, es-419.
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
_BAD_URL_CHARS = re.compile(r"[\s<>\"'`\\\x00-\x1f\x7f]")

# The widget's URL query (what the site writes into the address it embeds): its names,
# and the API's name of each. Gradio reads `page` of a URL itself (a page of a multipage
# app), so the page and the language go as `customer_page` and `customer_language`.
QUERY_FIELDS = {
    "customer_id": "customer_id",
    "customer_hash": "customer_hash",
    "customer_name": "customer_name",
    "customer_page": "page",
    "customer_language": "language",
}


class IdentityRefused(DeskbotError):
    """What the site passed about its customer cannot be taken (the message says why)."""


def _printable(value: str) -> bool:
    return not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value)


def check_customer_name(value: str) -> str:
    """The name with its whitespace collapsed, else ValueError (empty, control
    characters, longer than `MAX_NAME`)."""
    name = " ".join(value.split())
    if not name or len(name) > MAX_NAME or not _printable(name):
        raise ValueError(
            f"customer_name must be 1 to {MAX_NAME} characters of text, without control characters"
        )
    return name


def check_page(value: str) -> str:
    """An absolute http(s) URL of at most `MAX_PAGE` characters, else ValueError."""
    problem = ValueError(
        f"page must be an http:// or https:// URL of at most {MAX_PAGE} characters"
    )
    if not value or len(value) > MAX_PAGE or _BAD_URL_CHARS.search(value) or not value.isascii():
        raise problem
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (a port that is no number raises here)
    except ValueError:
        raise problem from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise problem
    return value


def check_language(value: str) -> str:
    """A BCP-47 language tag in its usual case (`en-GB`, `zh-Hant-TW`), else ValueError."""
    if len(value) > MAX_LANGUAGE or not _LANGUAGE.fullmatch(value):
        raise ValueError(
            f"language must be a BCP-47 language tag such as 'en' or 'en-GB' "
            f"(at most {MAX_LANGUAGE} characters)"
        )
    first, *rest = value.split("-")
    subtags = [first.lower()]
    for tag in rest:
        if len(tag) == 2 and tag.isalpha():
            tag = tag.upper()  # a region: GB
        elif len(tag) == 4 and tag.isalpha():
            tag = tag.title()  # a script: Hant
        else:
            tag = tag.lower()
        subtags.append(tag)
    return "-".join(subtags)


def signed_by_site(key: str, customer_id: str, signature: str) -> bool:
    """Whether `signature` is the site's HMAC of `customer_id` under `key`."""
    return hmac.compare_digest(signature.lower(), customer_hash(key, customer_id))


@dataclass(frozen=True)
class CustomerContext:
    """What the site passed about the customer of a conversation (each checked; None
    where it passed nothing)."""

    customer_id: str | None = None
    customer_name: str | None = None
    page: str | None = None
    language: str | None = None

    def __bool__(self) -> bool:
        return any((self.customer_id, self.customer_name, self.page, self.language))


def context_from_query(query: Mapping[str, str], key: str | None) -> CustomerContext:
    """The customer as the widget's URL query says, under the same rules as the API.

    Args:
        query: the query of the page the widget was opened with (`customer_id`,
            `customer_hash`, `customer_name`, `customer_page`, `customer_language`;
            other names are not ours).
        key: `privacy.customer_key` (without one, no customer id is taken).

    Raises:
        IdentityRefused: a value is malformed, the id is not signed by the site, or a name
            comes without a signed id.
    """
    given = {field: str(query[name]) for name, field in QUERY_FIELDS.items() if query.get(name)}
    customer_id = given.get("customer_id")
    signature = given.get("customer_hash")
    try:
        if (customer_id is None) != (signature is None):
            raise ValueError("customer_id and customer_hash go together; pass both or neither")
        if customer_id is not None and signature is not None:
            check_customer_id(customer_id)
            if not key:
                raise ValueError("customer_id is not accepted: the server has no customer key")
            if not signed_by_site(key, customer_id, signature):
                raise ValueError("customer_hash does not match customer_id")
        if "customer_name" in given and customer_id is None:
            raise ValueError("customer_name is taken only with a signed customer_id")
        return CustomerContext(
            customer_id=customer_id,
            customer_name=_maybe(check_customer_name, given.get("customer_name")),
            page=_maybe(check_page, given.get("page")),
            language=_maybe(check_language, given.get("language")),
        )
    except ValueError as exc:
        raise IdentityRefused(str(exc)) from None


def _maybe(check: Callable[[str], str], value: str | None) -> str | None:
    return None if value is None else check(value)

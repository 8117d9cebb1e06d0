"""Agent accounts and console sessions.

Passwords are stored as argon2id hashes (`argon2-cffi`). A console session is a
signed cookie (HMAC-SHA256 over the username, the expiry and a fingerprint of the
agent's password hash), so every app process that shares `DESKBOT_SECRET_KEY` accepts
it, and changing an agent's password ends their sessions. The cookie is HttpOnly,
SameSite=Strict, scoped to the console's path, and Secure when served over HTTPS.

Example:
    >>> h = hash_password("correct horse")
    >>> verify_password(h, "correct horse"), verify_password(h, "wrong")
    (True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.store import Agent, SqlConversationStore

logger = logging.getLogger(__name__)

SECRET_ENV = "DESKBOT_SECRET_KEY"
COOKIE_NAME = "deskbot_agent"
SESSION_SECONDS = 12 * 3600
MIN_PASSWORD_CHARS = 8
# The roles an agent account may have, by the name the CLI is given.
_ROLES: dict[str, Literal["agent", "admin"]] = {"agent": "agent", "admin": "admin"}

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AgentAccountError(DeskbotError):
    """An agent account cannot be created as asked."""


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; the parameters are in the hash)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash`; never raises for a mismatch."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_agent(
    store: SqlConversationStore,
    username: str,
    password: str,
    *,
    display_name: str | None = None,
    role: str = "agent",
) -> Agent:
    """Add an agent who can log in to the console.

    Raises:
        AgentAccountError: the name or password is unusable (the message says why).
        StoreError: an agent with that username exists.
    """
    username = username.strip()
    if not username or len(username) > 128 or any(c.isspace() for c in username):
        raise AgentAccountError(
            "the username must be 1 to 128 characters without spaces, e.g. 'alice'"
        )
    if len(password) < MIN_PASSWORD_CHARS:
        raise AgentAccountError(
            f"the password must have at least {MIN_PASSWORD_CHARS} characters; choose a longer one"
        )
    checked_role = _ROLES.get(role)
    if checked_role is None:
        raise AgentAccountError(f"the role is 'agent' or 'admin', not {role!r}")
    agent = Agent(
        username=username,
        display_name=(display_name or username).strip()[:128] or username,
        password_hash=hash_password(password),
        role=checked_role,
    )
    store.add_agent(agent)
    logger.info("agent %s added (role %s)", username, role)
    return agent


def authenticate(store: SqlConversationStore, username: str, password: str) -> Agent | None:
    """The agent if the username and password match, else None (in constant-ish time)."""
    agent = store.get_agent(username.strip()) if username else None
    if agent is None:
        verify_password(_DUMMY_HASH, password)
        return None
    return agent if verify_password(agent.password_hash, password) else None


def secret_key() -> bytes:
    """The key that signs console sessions: `DESKBOT_SECRET_KEY`, or a random one.

    Without the variable, sessions end when the process restarts and are not shared by
    replicas; the server logs a warning saying so.
    """
    value = os.environ.get(SECRET_ENV, "")
    if value:
        return value.encode("utf-8")
    logger.warning(
        "%s is not set: agent console logins end when the server restarts and are not "
        "shared between server processes; set it to a long random string",
        SECRET_ENV,
    )
    return secrets.token_bytes(32)


@dataclass(frozen=True)
class SessionSigner:
    """Issues and checks console session cookies.

    Args:
        key: the signing key (`secret_key()`).
        store: where agents (and their password hashes) live.
        max_age: seconds a session lasts.
    """

    key: bytes
    store: SqlConversationStore
    max_age: int = SESSION_SECONDS

    def issue(self, agent: Agent, *, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.max_age)
        body = f"{agent.username}|{expires}"
        return _b64(body.encode("utf-8")) + "." + self._mac(body, agent.password_hash)

    def check(self, cookie: str | None, *, now: float | None = None) -> Agent | None:
        """The agent the cookie was issued to, or None if it is missing, forged or expired."""
        if not cookie or "." not in cookie or len(cookie) > 1024:
            return None
        encoded, mac = cookie.rsplit(".", 1)
        try:
            body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
            username, expires = body.rsplit("|", 1)
            expiry = int(expires)
        except ValueError:
            return None
        if expiry < (now if now is not None else time.time()):
            return None
        agent = self.store.get_agent(username)
        if agent is None or not hmac.compare_digest(mac, self._mac(body, agent.password_hash)):
            return None
        return agent

    def _mac(self, body: str, password_hash: str) -> str:
        fingerprint = hashlib.sha256(password_hash.encode("utf-8")).hexdigest()
        digest = hmac.new(self.key, f"{body}|{fingerprint}".encode(), hashlib.sha256).digest()
        return _b64(digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")

"""Agent accounts and console sessions.

Passwords are stored as argon2id hashes (`argon2-cffi`). A console session is a row of
`agent_sessions` named by a random token in a signed cookie (`SessionSigner`), so
every app process that shares the database and `DESKBOT_SECRET_KEY` accepts it, and
ending the row (logout, revoke, disable, a password change) ends it everywhere at
once. The cookie is HttpOnly, SameSite=Strict, scoped to the console's path, and Secure
when served over HTTPS.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from deskbot.bot.core.errors import DeskbotError
from deskbot.bot.store import Agent, SqlConversationStore

logger = logging.getLogger(__name__)

SECRET_ENV = "DESKBOT_SECRET_KEY"
COOKIE_NAME = "deskbot_agent"
SESSION_SECONDS = 12 * 3600
IDLE_SECONDS = 3600
# A session's last use is written at most this often (a write a request is not needed
# to keep the idle limit to the minute).
TOUCH_S = 30
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
    teams: Sequence[str] | None = None,
) -> Agent:
    """Add an agent who can log in to the console, a member of `teams` (None: the
    store's default team, where a handoff no route takes waits).

    Raises:
        AgentAccountError: the name or password is unusable (the message says why).
        StoreError: an agent with that username exists, or a team does not.
    """
    username = username.strip()
    # No ':' either: the audit log names the command line "os:USER" and the nightly job
    # "system:nightly", so an agent named "os:root" would pass for someone else there.
    if not username or len(username) > 128 or any(c.isspace() or c == ":" for c in username):
        raise AgentAccountError(
            "the username must be 1 to 128 characters without spaces or ':', e.g. 'alice'"
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
    store.add_agent(agent, teams=teams)
    logger.info("agent %s added (role %s)", username, role)
    return agent


def authenticate(store: SqlConversationStore, username: str, password: str) -> Agent | None:
    """The agent if the username and password match, else None (in constant-ish time)."""
    agent = store.get_agent(username.strip()) if username else None
    if agent is None or agent.disabled:
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
    """Issues and checks console session cookies, each backed by a row of the
    `agent_sessions` table.

    The cookie is a random token and its HMAC-SHA256 under the secret key (a forged
    cookie is refused without a database read); the row, keyed by the token's SHA-256,
    is what makes it valid. Each check is one lookup by primary key (joined to the
    agent), with no cache in between, so a session ended on one replica (logout,
    `deskbot agents revoke` or `disable`, a password change) is refused by every
    replica at its next request. A session ends `max_age` seconds after the login, or
    after `idle_s` without a request (`last_seen_at` is written at most once every
    `TOUCH_S`, so the idle limit is kept to within that).

    Args:
        key: the signing key (`secret_key()`).
        store: where agents and their sessions live.
        max_age: seconds a session lasts at most.
        idle_s: seconds without a request that end a session.
    """

    key: bytes
    store: SqlConversationStore
    max_age: int = SESSION_SECONDS
    idle_s: float = IDLE_SECONDS

    def issue(self, agent: Agent, *, now: float | None = None, address: str | None = None) -> str:
        """Start a session for `agent`; the cookie's value."""
        when = _when(now)
        # Ended sessions are refused anyway; each login clears them out of the table.
        self.store.prune_agent_sessions(when, idle=timedelta(seconds=self.idle_s))
        token = secrets.token_urlsafe(32)
        self.store.start_agent_session(
            session_id(token),
            agent.username,
            expires_at=when + timedelta(seconds=self.max_age),
            address=address[:64] if address else None,
            now=when,
        )
        return f"{token}.{self._mac(token)}"

    def check(self, cookie: str | None, *, now: float | None = None) -> Agent | None:
        """The agent whose live session the cookie names, or None (missing, forged,
        ended, expired, idle too long, or the agent disabled)."""
        token = self._token(cookie)
        if token is None:
            return None
        found = self.store.agent_session(session_id(token))
        if found is None:
            return None
        session, agent = found
        when = _when(now)
        if (
            agent.disabled
            or _aware(session.expires_at) <= when
            or _aware(session.last_seen_at) + timedelta(seconds=self.idle_s) <= when
        ):
            return None
        if when - _aware(session.last_seen_at) >= timedelta(seconds=TOUCH_S):
            self.store.touch_agent_session(session.id, when)
        return agent

    def end(self, cookie: str | None) -> bool:
        """End the cookie's session on the server (logout); whether there was one."""
        token = self._token(cookie)
        return token is not None and self.store.end_agent_sessions(session_id=session_id(token)) > 0

    def session_of(self, cookie: str | None) -> str | None:
        """The id of the cookie's session (whatever its state), or None for a forged one."""
        token = self._token(cookie)
        return session_id(token) if token is not None else None

    def _token(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie or len(cookie) > 256:
            return None
        token, mac = cookie.rsplit(".", 1)
        return token if hmac.compare_digest(mac, self._mac(token)) else None

    def _mac(self, token: str) -> str:
        return _b64(hmac.new(self.key, token.encode("utf-8"), hashlib.sha256).digest())


def session_id(token: str) -> str:
    """The stored id of a session token (its SHA-256: the table never holds a token)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def set_password(
    store: SqlConversationStore, username: str, password: str, *, keep: str | None = None
) -> int:
    """Change `username`'s password and end their sessions but `keep` (the session
    that asked, if any); how many ended.

    Raises:
        AgentAccountError: the password is too short, or there is no such agent.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise AgentAccountError(
            f"the password must have at least {MIN_PASSWORD_CHARS} characters; choose a longer one"
        )
    if not store.update_agent(username, password_hash=hash_password(password)):
        raise AgentAccountError(f"no agent {username!r} (see `deskbot agents list`)")
    ended = store.end_agent_sessions(username, keep=keep)
    logger.info("agent %s: password changed, %d other session(s) ended", username, ended)
    return ended


def _when(now: float | None) -> datetime:
    return datetime.fromtimestamp(now if now is not None else time.time(), UTC)


def _aware(value: datetime) -> datetime:
    # SQLite gives back naive datetimes; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")

"""Custom actions over the rasa-sdk webhook protocol.

deskbot calls any rasa-sdk action server (`python -m rasa_sdk --actions MODULE`) the
way Rasa does: `POST /webhook` with `next_action`, `tracker` and `domain`; the server
answers with `events` and `responses`. Failures are told apart as Rasa tells them:

- 400: the action rejected the call (`ActionRejected`): the bot says it could not do it;
- 404: no such action on the server (`ActionNotFound`): a configuration error;
- 449: the server wants the domain: the call is repeated with it;
- 5xx, timeouts, refused connections (`ComponentUnavailable`): the server is down.

Example:
    >>> client = RasaActionClient("http://127.0.0.1:5055/webhook")            # doctest: +SKIP
    >>> result = client.run("action_freeze_card", tracker_for(...), domain)    # doctest: +SKIP
    >>> result.texts                                                           # doctest: +SKIP
    ["I've frozen your card..."]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol
from urllib.parse import quote, quote_plus

import httpx

from deskbot.bot.core.errors import ComponentUnavailable, DeskbotError
from deskbot.bot.core.types import IntentPrediction, Turn

logger = logging.getLogger(__name__)

try:  # the server warns when the caller's version differs from its own
    _RASA_SDK_VERSION = metadata.version("rasa-sdk")
except metadata.PackageNotFoundError:  # pragma: no cover
    _RASA_SDK_VERSION = "3.10.0"

__all__ = [
    "ActionClient",
    "ActionNotFound",
    "ActionRejected",
    "ActionResult",
    "RasaActionClient",
    "domain_for",
    "tracker_for",
]


class ActionRejected(DeskbotError):
    """The action server refused to run the action (HTTP 400)."""


class ActionNotFound(DeskbotError):
    """The action server has no action of that name (HTTP 404): fix `actions.intent_actions`."""


@dataclass(frozen=True)
class ActionResult:
    """What an action did: Rasa events (`slot`, `followup`, ...) and messages for the customer."""

    events: tuple[dict[str, Any], ...] = ()
    responses: tuple[dict[str, Any], ...] = ()

    @property
    def texts(self) -> list[str]:
        return [str(r["text"]) for r in self.responses if r.get("text")]

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [b for r in self.responses for b in (r.get("buttons") or []) if isinstance(b, dict)]

    def followups(self) -> list[str]:
        """Names of the actions the action asked to run next (`followup` events)."""
        return [
            str(e.get("name"))
            for e in self.events
            if e.get("event") == "followup" and e.get("name")
        ]


class ActionClient(Protocol):
    def run(
        self, action: str, tracker: Mapping[str, Any], domain: Mapping[str, Any]
    ) -> ActionResult: ...


class _HideTokens(logging.Filter):
    """Takes action tokens out of httpx's request log lines: the token travels in the
    URL's query, and httpx logs every URL it calls at INFO."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in sorted(self.secrets, key=len, reverse=True):
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


_HIDE_TOKENS = _HideTokens()


def hide_in_logs(secret: str) -> None:
    """Replace `secret` (and its URL-encoded forms) by *** in httpx's log lines."""
    _HIDE_TOKENS.secrets.update({secret, quote(secret, safe=""), quote_plus(secret)})
    httpx_logger = logging.getLogger("httpx")
    if _HIDE_TOKENS not in httpx_logger.filters:
        httpx_logger.addFilter(_HIDE_TOKENS)


class RasaActionClient:
    """Calls a rasa-sdk action server's `/webhook`.

    Args:
        url: the webhook URL, e.g. `http://127.0.0.1:5055/webhook`.
        token: sent as the `token` query parameter (as Rasa's endpoint config does).
        timeout_s: for the whole call.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 5.0) -> None:
        self.url = url
        self.token = token
        self.timeout_s = timeout_s
        if token:
            hide_in_logs(token)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self.timeout_s,
                    params={"token": self.token} if self.token else None,
                    trust_env=False,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def run(
        self, action: str, tracker: Mapping[str, Any], domain: Mapping[str, Any]
    ) -> ActionResult:
        """Run `action` and return its events and responses.

        Raises:
            ActionRejected: HTTP 400.
            ActionNotFound: HTTP 404.
            ComponentUnavailable: the server is unreachable, too slow, or failed (5xx).
        """
        payload: dict[str, Any] = {
            "next_action": action,
            "sender_id": tracker.get("sender_id"),
            "tracker": dict(tracker),
            "domain": dict(domain),
            "version": _RASA_SDK_VERSION,
        }
        started = time.perf_counter()
        try:
            response = self._http().post(self.url, json=payload)
            if response.status_code == 449:  # the server asks for the domain (Rasa resends)
                response = self._http().post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            raise ComponentUnavailable(
                f"action server {self.url} did not answer {action} within {self.timeout_s}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise ComponentUnavailable(
                f"action server {self.url} unreachable for {action}: {exc}; start it with "
                "`deskbot actions serve`"
            ) from exc
        logger.debug(
            "action %s: HTTP %s in %.1fms",
            action,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        if response.status_code == 400:
            raise ActionRejected(f"action {action} rejected the call: {_error(response)}")
        if response.status_code == 404:
            raise ActionNotFound(
                f"the action server has no action {action!r} ({_error(response)}); "
                "check actions.intent_actions against the actions module"
            )
        if response.status_code in (401, 403):
            raise ComponentUnavailable(
                f"the action server refused deskbot's token for {action} (HTTP "
                f"{response.status_code}): set the same DESKBOT_ACTIONS_TOKEN for both"
            )
        if response.status_code != 200:
            raise ComponentUnavailable(
                f"action {action} failed on the server: HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise ComponentUnavailable(f"action {action} answered with invalid JSON") from exc
        if body is None:
            return ActionResult()
        if not isinstance(body, dict):
            raise ComponentUnavailable(f"action {action} answered with a {type(body).__name__}")
        events = body.get("events") or []
        responses = body.get("responses") or []
        return ActionResult(
            events=tuple(e for e in events if isinstance(e, dict)),
            responses=tuple(r for r in responses if isinstance(r, dict)),
        )


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)[:200]


def tracker_for(
    conversation_id: str,
    *,
    slots: Mapping[str, Any],
    text: str,
    prediction: IntentPrediction | None,
    history: Sequence[Turn] = (),
    slot_names: Sequence[str] = (),
) -> dict[str, Any]:
    """A Rasa tracker state for the action server (`rasa_sdk.Tracker.from_dict` reads it)."""
    intent = {"name": prediction.intent, "confidence": prediction.confidence} if prediction else {}
    ranking = [{"name": n, "confidence": c} for n, c in prediction.ranking] if prediction else []
    events: list[dict[str, Any]] = []
    for turn in history:
        if turn.role == "user":
            events.append({"event": "user", "text": turn.text})
        elif turn.role in ("bot", "agent"):
            events.append({"event": "bot", "text": turn.text})
    all_slots = {name: None for name in slot_names}
    all_slots.update(slots)
    return {
        "sender_id": conversation_id,
        "slots": all_slots,
        "latest_message": {
            "text": text,
            "intent": intent,
            "intent_ranking": ranking,
            "entities": [{"entity": k, "value": v} for k, v in slots.items() if v is not None],
        },
        "events": events,
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
        "latest_input_channel": "deskbot",
    }


def domain_for(
    intents: Sequence[str], actions: Sequence[str], slot_names: Sequence[str]
) -> dict[str, Any]:
    """A minimal Rasa domain: the intents, the actions and the slots deskbot knows."""
    return {
        "version": "3.1",
        "intents": list(intents),
        "entities": list(slot_names),
        "slots": {
            name: {"type": "any", "influence_conversation": False, "mappings": []}
            for name in slot_names
        },
        "responses": {},
        "actions": list(actions),
        "forms": {},
    }

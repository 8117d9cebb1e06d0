"""The console's admin routes: erasing a customer's data on request (GDPR).

`DELETE {console}/admin/customers/{customer_id}` and
`DELETE {console}/admin/conversations/{conversation_id}` answer 401 without a console
session, 403 to an agent who is not an admin, and otherwise the erasure's counts. They
live under the console's path, so the session cookie (path-scoped, SameSite=Strict)
reaches them and `ConsoleGate` refuses cross-site calls.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from deskbot.bot.core.network import parse_networks
from deskbot.bot.privacy.erasure import Eraser, ErasureError, ErasureReport, check_customer_id
from deskbot.bot.server.container import Bot
from deskbot.bot.store.models import Agent
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner
from deskbot.ui.accounts.login import request_address

logger = logging.getLogger(__name__)

ADMIN = "admin"
MAX_CONVERSATION_ID_CHARS = 64  # ids are 32 hex digits; never cut one to fit


class AdminRoutes:
    """The erasure routes' work: who may call them, and the erasure itself.

    Args:
        bot: the running bot (its store and config).
        signer: checks the console session cookie.
    """

    def __init__(self, bot: Bot, signer: SessionSigner) -> None:
        self.bot = bot
        self.signer = signer
        self.proxies = parse_networks(bot.config.limits.trusted_proxies)

    def address(self, request: Request) -> str:
        """The client's address, a forwarded one only from `limits.trusted_proxies`."""
        return request_address(request, self.proxies)

    def admin(self, request: Request) -> Agent:
        """The admin of this request's session: 401 without a session, 403 for an agent."""
        agent = self.signer.check(request.cookies.get(COOKIE_NAME))
        if agent is None:
            raise HTTPException(401, "log in to the agent console first")
        if agent.role != ADMIN:
            logger.warning("agent %s was refused an admin route", agent.username)
            raise HTTPException(403, "only an admin may erase customer data")
        return agent

    def erase(
        self,
        agent: Agent,
        *,
        customer_id: str | None = None,
        conversation_ids: tuple[str, ...] = (),
        not_found: str,
        address: str | None = None,
    ) -> JSONResponse:
        """Erase as `agent` (from `address`, for the audit log); 404 with `not_found`
        when nothing was stored."""
        try:
            report: ErasureReport = Eraser(self.bot.store, self.bot.config).forget(
                customer_id=customer_id,
                conversation_ids=conversation_ids,
                requested_by=f"admin:{agent.username}",
                actor=agent.username,
                address=address,
            )
        except ErasureError as exc:
            raise HTTPException(503, str(exc), {"Retry-After": "300"}) from None
        if not report.conversations:
            raise HTTPException(404, not_found)
        return JSONResponse(report.to_dict(), headers={"Cache-Control": "no-store"})

    def erase_customer(self, customer_id: str, request: Request) -> JSONResponse:
        """`DELETE .../admin/customers/{customer_id}`."""
        agent = self.admin(request)
        try:
            check_customer_id(customer_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return self.erase(
            agent,
            customer_id=customer_id,
            not_found="nothing is stored for that customer id",
            address=self.address(request),
        )

    def erase_conversation(self, conversation_id: str, request: Request) -> JSONResponse:
        """`DELETE .../admin/conversations/{conversation_id}`."""
        agent = self.admin(request)
        if len(conversation_id) > MAX_CONVERSATION_ID_CHARS:
            raise HTTPException(
                422, f"a conversation id has at most {MAX_CONVERSATION_ID_CHARS} characters"
            )
        return self.erase(
            agent,
            conversation_ids=(conversation_id,),
            not_found="no such conversation",
            address=self.address(request),
        )


def add_admin_routes(app: FastAPI, path: str, bot: Bot, signer: SessionSigner) -> None:
    """Add the admin routes under `path` (call before mounting the console there)."""
    routes = AdminRoutes(bot, signer)
    router = APIRouter(prefix=f"{path}/admin", include_in_schema=False)
    router.add_api_route("/customers/{customer_id}", routes.erase_customer, methods=["DELETE"])
    router.add_api_route(
        "/conversations/{conversation_id}", routes.erase_conversation, methods=["DELETE"]
    )
    app.include_router(router)

"""The console's admin routes: erasing a customer's data on request (GDPR).

`DELETE {console}/admin/customers/{customer_id}` and
`DELETE {console}/admin/conversations/{conversation_id}` answer 401 without a console
session, 403 to an agent who is not an admin, and otherwise the erasure's counts. They
live under the console's path, so the session cookie (path-scoped, SameSite=Strict)
reaches them and `ConsoleGate` refuses cross-site calls.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from deskbot.bot.privacy.erasure import Eraser, ErasureError, ErasureReport, check_customer_id
from deskbot.bot.server.container import Bot
from deskbot.bot.store.models import Agent
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner

logger = logging.getLogger(__name__)

ADMIN = "admin"


def add_admin_routes(app: FastAPI, path: str, bot: Bot, signer: SessionSigner) -> None:
    """Add the admin routes under `path` (call before mounting the console there)."""

    def admin(request: Request) -> Agent:
        agent = signer.check(request.cookies.get(COOKIE_NAME))
        if agent is None:
            raise HTTPException(401, "log in to the agent console first")
        if agent.role != ADMIN:
            logger.warning("agent %s was refused an admin route", agent.username)
            raise HTTPException(403, "only an admin may erase customer data")
        return agent

    def answer(run: ErasureReport) -> JSONResponse:
        return JSONResponse(run.to_dict(), headers={"Cache-Control": "no-store"})

    def erase(
        agent: Agent, *, customer_id: str | None = None, conversation_ids: tuple[str, ...] = ()
    ) -> ErasureReport:
        try:
            return Eraser(bot.store, bot.config).forget(
                customer_id=customer_id,
                conversation_ids=conversation_ids,
                requested_by=f"admin:{agent.username}",
            )
        except ErasureError as exc:
            raise HTTPException(503, str(exc), {"Retry-After": "300"}) from None

    @app.delete(f"{path}/admin/customers/{{customer_id}}", include_in_schema=False)
    def erase_customer(customer_id: str, request: Request) -> JSONResponse:
        agent = admin(request)
        try:
            check_customer_id(customer_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        report = erase(agent, customer_id=customer_id)
        if not report.conversations:
            raise HTTPException(404, "nothing is stored for that customer id")
        return answer(report)

    @app.delete(f"{path}/admin/conversations/{{conversation_id}}", include_in_schema=False)
    def erase_conversation(conversation_id: str, request: Request) -> JSONResponse:
        agent = admin(request)
        if len(conversation_id) > 64:  # ids are 32 hex digits; never cut one to fit
            raise HTTPException(422, "a conversation id has at most 64 characters")
        report = erase(agent, conversation_ids=(conversation_id,))
        if not report.conversations:
            raise HTTPException(404, "no such conversation")
        return answer(report)

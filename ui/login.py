"""The agent console's login and logout pages, and the gate in front of the console.

The pages are plain HTML forms served by FastAPI (no script). Nothing the visitor
typed is ever written back into a page.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from deskbot.bot.store import SqlConversationStore
from deskbot.ui.auth import COOKIE_NAME, SessionSigner, authenticate

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: agent login</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
main {{ max-width: 340px; margin: 12vh auto; background: #fff; padding: 28px;
        border-radius: 10px; box-shadow: 0 2px 10px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.2rem; margin: 0 0 18px; }}
label {{ display: block; font-size: .9rem; margin: 12px 0 4px; }}
input {{ width: 100%; box-sizing: border-box; padding: 8px; font-size: 1rem; }}
button {{ margin-top: 18px; width: 100%; padding: 10px; font-size: 1rem; background: #f97316;
          color: #fff; border: 0; border-radius: 6px; cursor: pointer; }}
.error {{ color: #b91c1c; font-size: .9rem; }}
</style></head>
<body><main>
<h1>{title}: agent console</h1>
{error}
<form method="post" action="login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required maxlength="128" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required
       maxlength="1024">
<button type="submit">Log in</button>
</form>
</main></body></html>
"""


def login_page(title: str, *, failed: bool = False) -> str:
    error = '<p class="error" role="alert">Wrong username or password.</p>' if failed else ""
    return _PAGE.format(title=html.escape(title), error=error)


def add_login_routes(
    app: FastAPI, path: str, store: SqlConversationStore, signer: SessionSigner, title: str
) -> None:
    """`GET/POST {path}/login` and `GET {path}/logout`; call before mounting the console."""

    @app.get(f"{path}/login", include_in_schema=False)
    def login_form(request: Request) -> Response:
        if signer.check(request.cookies.get(COOKIE_NAME)) is not None:
            return RedirectResponse("./", status_code=303)
        failed = request.query_params.get("failed") == "1"
        return HTMLResponse(login_page(title, failed=failed), headers=_NO_STORE)

    @app.post(f"{path}/login", include_in_schema=False)
    def login(
        request: Request,
        username: str = Form(max_length=128),
        password: str = Form(max_length=1024),
    ) -> Response:
        agent = authenticate(store, username, password)
        if agent is None:
            logger.warning("failed console login")
            return RedirectResponse("login?failed=1", status_code=303)
        response = RedirectResponse("./", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            signer.issue(agent),
            max_age=signer.max_age,
            path=path,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        logger.info("agent %s logged in", agent.username)
        return response

    @app.get(f"{path}/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path=path, httponly=True, samesite="strict")
        return response


_NO_STORE = {"Cache-Control": "no-store"}


class ConsoleGate:
    """ASGI middleware: a visitor without a session who opens the console page is sent to
    the login form (Gradio itself answers 401 to everything else of the console app),
    and no page of the console may be shown in another site's frame (clickjacking).

    Args:
        app: the wrapped ASGI app.
        path: where the console is mounted, e.g. "/agent".
        signer: checks the session cookie.
    """

    def __init__(self, app: ASGIApp, path: str, signer: SessionSigner) -> None:
        self.app = app
        self.path = path.rstrip("/")
        self.signer = signer

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in ("GET", "HEAD")
            and scope.get("path") in (self.path, self.path + "/")
        ):
            request = Request(scope)
            if self.signer.check(request.cookies.get(COOKIE_NAME)) is None:
                target = f"{scope.get('root_path', '')}{self.path}/login"
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not (path == self.path or path.startswith(self.path + "/")):
            await self.app(scope, receive, send)
            return

        async def send_framing_denied(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-frame-options", b"DENY"))
                headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_framing_denied)

"""The agent console's login and logout pages, and the gate in front of the console.

The pages are plain HTML forms served by FastAPI (no script). Nothing the visitor
typed is ever written back into a page.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Form, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.concurrency import run_in_threadpool

from deskbot.bot.core.network import Network, parse_networks
from deskbot.bot.server.ratelimit import came_over_https, client_address
from deskbot.bot.store import SqlConversationStore
from deskbot.bot.store.audit import LOGIN, LOGIN_FAILED, LOGOUT, AuditEntry
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner, authenticate
from deskbot.ui.accounts.throttle import LoginThrottle

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
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; color: #111827; }}
main {{ max-width: 340px; margin: 12vh auto; background: #fff; padding: 28px;
        border-radius: 10px; box-shadow: 0 2px 10px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.2rem; margin: 0 0 18px; }}
label {{ display: block; font-size: .9rem; margin: 12px 0 4px; }}
input {{ width: 100%; box-sizing: border-box; padding: 8px; font-size: 1rem;
         border: 1px solid #6b7280; border-radius: 4px; }}
input[aria-invalid="true"] {{ border-color: #b91c1c; }}
button {{ margin-top: 18px; width: 100%; padding: 10px; font-size: 1rem; background: #c2410c;
          color: #fff; border: 0; border-radius: 6px; cursor: pointer; }}
button:hover {{ background: #9a3412; }}
input:focus-visible, button:focus-visible {{ outline: 3px solid #1d4ed8; outline-offset: 2px; }}
.error {{ color: #b91c1c; font-size: .9rem; margin: 0; }}
.error:empty {{ display: none; }}
</style></head>
<body><main>
<h1>{title}: agent console</h1>
<p id="login-error" class="error" role="alert" aria-live="assertive">{error}</p>
<form method="post" action="login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required maxlength="128" autofocus
       autocapitalize="none" spellcheck="false"{invalid}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required
       maxlength="1024"{invalid}>
<button type="submit">Log in</button>
</form>
</main></body></html>
"""
# On a failed login the fields are marked invalid and point at the error, which is read
# out when the (autofocused) username field gets focus, as well as announced (role=alert).
_INVALID = ' aria-invalid="true" aria-describedby="login-error"'


def login_page(title: str, *, failed: bool = False, retry_after: int | None = None) -> str:
    """The login form; after a failed login, with the error and the fields marked;
    while logins are throttled, with how long to wait."""
    error = "Wrong username or password." if failed else ""
    if retry_after is not None:
        error = f"Too many login attempts. Try again in {retry_after} seconds."
    return _PAGE.format(
        title=html.escape(title),
        error=error,
        invalid=_INVALID if failed or retry_after is not None else "",
    )


def request_address(request: Any, proxies: tuple[Network, ...]) -> str:
    """The client's address of a Starlette or Gradio request, as the rate limiter sees
    it: a forwarded one only from `proxies` (Gradio's has no client without a connection)."""
    client = getattr(request, "client", None)
    return client_address(
        client.host if client is not None else None,
        request.headers.get("x-forwarded-for"),
        proxies,
    )


def _secure_cookie(request: Request, secure_cookies: str, proxies: tuple[Network, ...]) -> bool:
    """Whether the session cookie is marked Secure (see `add_login_routes`)."""
    if secure_cookies != "auto":
        return secure_cookies == "always"
    return came_over_https(
        request.url.scheme,
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-proto"),
        proxies,
    )


def add_login_routes(
    app: FastAPI,
    path: str,
    store: SqlConversationStore,
    signer: SessionSigner,
    title: str,
    *,
    secure_cookies: str = "auto",
    trusted_proxies: tuple[str, ...] = (),
    throttle: LoginThrottle | None = None,
) -> None:
    """`GET/POST {path}/login` and `GET {path}/logout`; call before mounting the console.

    `secure_cookies` ("auto", "always", "never", see `ServerConfig`) decides whether the
    session cookie is marked Secure; with "auto", when the login came over HTTPS, to us
    or to one of `trusted_proxies` (`X-Forwarded-Proto`). `throttle` limits the tries
    (429 with `Retry-After` on the form once it says wait).
    """
    proxies = parse_networks(trusted_proxies)

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
        address = request_address(request, proxies)
        if throttle is not None:
            wait = throttle.wait(username, address)
            if wait > 0:
                # The same answer whether the name exists: nothing is checked.
                retry = str(max(1, math.ceil(wait)))
                logger.warning("console login throttled for %s s", retry)
                return HTMLResponse(
                    login_page(title, retry_after=int(retry)),
                    status_code=429,
                    headers={**_NO_STORE, "Retry-After": retry},
                )
        agent = authenticate(store, username, password)
        if agent is None:
            if throttle is not None:
                throttle.failed(username, address)
            logger.warning("failed console login")
            store.record_audit(_failed_login(store, username, address))
            return RedirectResponse("login?failed=1", status_code=303)
        if throttle is not None:
            throttle.succeeded(username, address)
            throttle.on_event("ok")
        cookie = signer.issue(agent, address=address)
        # Before the cookie goes out: a login the log cannot hold does not happen.
        store.record_audit(
            AuditEntry(agent.username, LOGIN, "agent", agent.username, None, address)
        )
        response = RedirectResponse("./", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            cookie,
            max_age=signer.max_age,
            path=path,
            httponly=True,
            samesite="strict",
            secure=_secure_cookie(request, secure_cookies, proxies),
        )
        logger.info("agent %s logged in", agent.username)
        return response

    @app.get(f"{path}/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        cookie = request.cookies.get(COOKIE_NAME)
        agent = signer.check(cookie)
        # Ended on the server: a copy of the cookie is worth nothing from now on.
        if signer.end(cookie) and agent is not None:
            address = request_address(request, proxies)
            store.record_audit(
                AuditEntry(agent.username, LOGOUT, "agent", agent.username, None, address)
            )
        response = RedirectResponse("login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path=path, httponly=True, samesite="strict")
        return response


_NO_STORE = {"Cache-Control": "no-store"}


def _failed_login(store: SqlConversationStore, username: str, address: str) -> AuditEntry:
    """The audit row of a failed login. It names the account only if one exists: what
    is typed into an unknown name is often a password typed into the wrong field, and
    the log keeps no string that a visitor chose."""
    if store.get_agent(username) is not None:
        return AuditEntry(username, LOGIN_FAILED, "agent", username, None, address)
    return AuditEntry(None, LOGIN_FAILED, None, None, None, address, "unknown account")


def cross_site(scope: Scope) -> bool:
    """Whether a browser sent this request from another site's page (a CSRF attempt).

    Browsers name the page's origin on every POST, PUT, PATCH and DELETE (`Origin`) and,
    in current ones, how the request relates to it (`Sec-Fetch-Site`). A request with
    neither comes from no browser, and so carries no victim's cookie. The origin's host
    is compared with the Host header (or the proxy's X-Forwarded-Host: a page cannot set
    either), without the port, which a proxy in front may leave out of Host.
    """
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    origin_host = urlsplit(origin).hostname
    hosts = {
        urlsplit("//" + value.split(",")[0].strip()).hostname
        for value in (headers.get("host", ""), headers.get("x-forwarded-host", ""))
        if value
    }
    return origin_host is None or origin_host not in hosts


class ConsoleGate:
    """ASGI middleware in front of everything under the console's path.

    - Without a valid session, nothing but the login and logout pages is served: the
      console page redirects to the login form, every other path (Gradio's config,
      queue, files, assets, any route a Gradio upgrade adds) answers 401. Gradio's own
      `auth_dependency` check stays behind it as a second lock.
    - No other site's page may send it a state-changing request (CSRF): any method but
      GET, HEAD and OPTIONS from a cross-site page is refused with 403, login included.
    - No page of the console may be shown in another site's frame (clickjacking).

    Args:
        app: the wrapped ASGI app.
        path: where the console is mounted, e.g. "/agent".
        signer: checks the session cookie.
    """

    def __init__(self, app: ASGIApp, path: str, signer: SessionSigner) -> None:
        self.app = app
        self.path = path.rstrip("/")
        self.signer = signer
        self.public = frozenset({f"{self.path}/login", f"{self.path}/logout"})

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        path = str(scope.get("path", ""))
        inside = path == self.path or path.startswith(self.path + "/")
        if scope["type"] not in ("http", "websocket") or not inside:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            if not await self._signed_in(scope):
                await send({"type": "websocket.close", "code": 4401})
                return
            await self.app(scope, receive, send)
            return
        method = scope.get("method")
        if method not in ("GET", "HEAD", "OPTIONS") and cross_site(scope):
            logger.warning("cross-site %s to the console refused", method)
            await PlainTextResponse(
                "cross-site requests to the agent console are refused", status_code=403
            )(scope, receive, send)
            return
        if path not in self.public and not await self._signed_in(scope):
            if method in ("GET", "HEAD") and path in (self.path, self.path + "/"):
                target = f"{scope.get('root_path', '')}{self.path}/login"
                response: Response = RedirectResponse(target, status_code=303)
            else:
                response = JSONResponse(
                    {"detail": "log in to the agent console first"},
                    status_code=401,
                    headers=_NO_STORE,
                )
            await self._framing_denied(response)(scope, receive, send)
            return

        async def send_framing_denied(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-frame-options", b"DENY"))
                headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_framing_denied)

    async def _signed_in(self, scope: Scope) -> bool:
        cookie = Request(scope).cookies.get(COOKIE_NAME)
        if not cookie:
            return False
        # The check reads the agent from the database: not on the event loop.
        return await run_in_threadpool(self.signer.check, cookie) is not None

    @staticmethod
    def _framing_denied(response: Response) -> Response:
        response.headers["x-frame-options"] = "DENY"
        response.headers["content-security-policy"] = "frame-ancestors 'none'"
        return response

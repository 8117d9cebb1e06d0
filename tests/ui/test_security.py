"""Security of the served app (the real app on a loopback port, Chromium for the browser
checks): every route of the agent console and of the API refuses visitors without the
right session and role (the routes are enumerated from the app, so a new one is tested
too), CSRF and clickjacking defences, XSS in both UIs, cookie flags, no secrets in logs.
"""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route, WebSocketRoute

from deskbot.bot.server.deps import session_token
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner, create_agent
from deskbot.ui.accounts.login import add_login_routes
from tests.ui.conftest import AGENT, LiveApp

CONSOLE = "/agent"
ADMIN = ("root", "root-password-long", "Root Admin")
# What anyone may call without a session: the widget's page and its embed script, the
# API's session opening, the Rasa REST channel (its own token check: test_rest_channel.py),
# probes, metrics and the API docs. A new public route must be added here on purpose.
PUBLIC_API = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/sessions"),
    ("POST", "/webhooks/rest/webhook"),
    ("GET", "/widget.js"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs"),
    ("HEAD", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("HEAD", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("HEAD", "/redoc"),
}
PUBLIC_CONSOLE = {("GET", "/agent/login"), ("POST", "/agent/login"), ("GET", "/agent/logout")}


def enumerate_routes(app: FastAPI) -> list[tuple[str, str, str, Any]]:
    """(where, method, path, route) of every route, through mounts and included routers.

    `where` is "console" (under /agent), "widget" (the customer chat's Gradio app) or
    "api" (the FastAPI app's own routes).
    """
    found: list[tuple[str, str, str, Any]] = []

    def walk(routes: list[Any], prefix: str, mount: str | None) -> None:
        for r in routes:
            if isinstance(r, Mount):
                walk(list(getattr(r.app, "routes", [])), prefix + r.path, prefix + r.path)
            elif hasattr(r, "original_router"):  # FastAPI's lazily included routers
                walk(list(r.original_router.routes), prefix + r.include_context.prefix, mount)
            elif isinstance(r, WebSocketRoute):
                found.append((where(prefix + r.path, mount), "WEBSOCKET", prefix + r.path, r))
            elif isinstance(r, APIRoute | Route):
                for method in sorted(r.methods or {"GET"}):
                    found.append((where(prefix + r.path, mount), method, prefix + r.path, r))
            else:
                raise AssertionError(f"unknown kind of route {r!r}: teach this walk about it")

    def where(path: str, mount: str | None) -> str:
        if path == CONSOLE or path.startswith(CONSOLE + "/"):
            return "console"
        return "widget" if mount == "" else "api"

    walk(list(app.routes), "", None)
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def call(http: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request; waits out the rate limiter's 429s (it counts this test's calls too)."""
    for _ in range(20):
        r = http.request(method, path, **kw)
        if r.status_code != 429:
            return r
        time.sleep(min(2.0, float(r.headers.get("retry-after", "1"))))
    return r


def needs_session(route: APIRoute) -> bool:
    def calls(dep: Any) -> Iterator[Any]:
        yield dep.call
        for sub in dep.dependencies:
            yield from calls(sub)

    # `session_conversation` depends on it; POST /api/messages takes the token alone and
    # looks it up on the turn's thread. Either way the requests below must get 401.
    return session_token in set(calls(route.dependant))


def cookie(value: str) -> dict[str, str]:
    """The console's session cookie as a request header."""
    return {"Cookie": f"{COOKIE_NAME}={value}"}


def log_in(url: str, user: str, password: str) -> str:
    with httpx.Client(base_url=url, follow_redirects=False) as http:
        r = call(http, "POST", "/agent/login", data={"username": user, "password": password})
        assert r.status_code == 303 and r.headers["location"] == "./", r.text
        return str(r.cookies[COOKIE_NAME])


@pytest.fixture
def accounts(live_app: LiveApp) -> dict[str, str]:
    """Session cookies of an agent and an admin, and a customer's session token."""
    create_agent(live_app.bot.store, ADMIN[0], ADMIN[1], display_name=ADMIN[2], role="admin")
    with httpx.Client(base_url=live_app.url) as http:
        token = call(http, "POST", "/api/sessions").json()["session_token"]
    return {
        "agent": log_in(live_app.url, AGENT[0], AGENT[1]),
        "admin": log_in(live_app.url, ADMIN[0], ADMIN[1]),
        "customer": token,
    }


def test_every_route_refuses_visitors_without_the_right_session_and_role(
    live_app: LiveApp, accounts: dict[str, str]
) -> None:
    store = live_app.bot.store
    conv, token = store.create_conversation(customer_id="cust-1", channel="api")
    secret = "my account number is 12345678"
    store.append_turn(conv.id, "user", secret)
    store.open_handoff(conv.id, "customer_request")
    routes = enumerate_routes(live_app.app)
    paths = {(m, p) for _, m, p, _ in routes}
    # The walk must see what the app really serves (else it would prove nothing).
    for expected in (
        ("POST", "/agent/gradio_api/queue/join"),
        ("GET", "/agent/config"),
        ("DELETE", "/agent/admin/customers/{customer_id}"),
        ("POST", "/api/messages"),
        ("DELETE", "/api/me"),
        ("POST", "/gradio_api/queue/join"),
    ):
        assert expected in paths, expected
    assert not [r for r in routes if r[1] == "WEBSOCKET"], "test websocket routes here too"

    forged = "YWxpY2V8OTk5OTk5OTk5OQ.AAAA"  # alice, far expiry, bad MAC
    anonymous: dict[str, dict[str, Any]] = {
        "nothing": {},
        "forged cookie": {"headers": cookie(forged)},
        "customer token": {"headers": {"Authorization": f"Bearer {accounts['customer']}"}},
    }
    checked = {"console": 0, "api": 0, "admin": 0}
    bodies: list[str] = []
    with httpx.Client(base_url=live_app.url, follow_redirects=False, timeout=15) as http:
        for where, method, template, route in routes:
            path = concrete(template)
            if where == "console" and (method, template) not in PUBLIC_CONSOLE:
                for who, kw in anonymous.items():
                    http.cookies.clear()
                    r = call(http, method, path, **kw)
                    if method in ("GET", "HEAD") and template in ("/agent", "/agent/"):
                        assert r.status_code == 303, (who, method, path)
                        assert r.headers["location"].endswith("/agent/login")
                    else:
                        assert r.status_code == 401, (who, method, path, r.status_code)
                    bodies.append(r.text)
                if "/admin/" in template:
                    http.cookies.clear()
                    agent = call(http, method, path, headers=cookie(accounts["agent"]))
                    http.cookies.clear()
                    admin = call(http, method, path, headers=cookie(accounts["admin"]))
                    assert agent.status_code == 403, (method, path)  # the wrong role
                    assert admin.status_code == 404, (method, path)  # allowed: no such id
                    checked["admin"] += 1
                checked["console"] += 1
            elif where == "api" and (method, template) not in PUBLIC_API:
                assert isinstance(route, APIRoute) and needs_session(route), (
                    f"{method} {template} neither checks the session token nor is listed "
                    "as public in PUBLIC_API"
                )
                for kw in (
                    {},
                    {"headers": {"Authorization": f"Bearer {conv.id}"}},
                    {"headers": {"Authorization": f"Bearer {accounts['agent']}"}},
                    {"headers": cookie(accounts["admin"])},
                ):
                    http.cookies.clear()
                    r = call(http, method, path, json={}, **kw)
                    assert r.status_code == 401, (method, path, kw, r.status_code)
                    bodies.append(r.text)
                checked["api"] += 1
    assert checked["console"] >= 40 and checked["admin"] == 2 and checked["api"] >= 5
    # With a session the same kind of call goes through: the 401s were the login check.
    with httpx.Client(base_url=live_app.url, headers=cookie(accounts["agent"])) as http:
        assert call(http, "GET", "/agent/config").status_code == 200
        assert call(http, "GET", "/agent/gradio_api/info").status_code == 200
    assert not any(secret in b or conv.id in b or token in b for b in bodies)
    assert store.get_conversation(conv.id) is not None  # nobody erased anything


def test_state_changing_console_calls_from_another_site_are_refused(
    live_app: LiveApp, accounts: dict[str, str]
) -> None:
    store = live_app.bot.store
    conv, _ = store.create_conversation(customer_id="cust-csrf", channel="api")
    store.append_turn(conv.id, "user", "hello")
    evil = {"Origin": "http://evil.example"}
    with httpx.Client(base_url=live_app.url, follow_redirects=False) as http:
        creds = {"username": AGENT[0], "password": AGENT[1]}
        for headers in (evil, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
            r = call(http, "POST", "/agent/login", data=creds, headers=headers)
            assert r.status_code == 403 and "set-cookie" not in r.headers, headers
        admin = cookie(accounts["admin"])
        r = call(http, "DELETE", "/agent/admin/customers/cust-csrf", headers={**admin, **evil})
        assert r.status_code == 403 and store.get_conversation(conv.id) is not None
        http.cookies.clear()
        r = call(http, "POST", "/agent/gradio_api/queue/join", json={}, headers={**admin, **evil})
        assert r.status_code == 403
        # The same calls from the console's own pages go through.
        http.cookies.clear()
        same = {"Origin": live_app.url, "Sec-Fetch-Site": "same-origin"}
        r = call(http, "POST", "/agent/login", data=creds, headers=same)
        assert r.status_code == 303 and COOKIE_NAME in r.cookies
        http.cookies.clear()
        r = call(http, "DELETE", "/agent/admin/customers/cust-csrf", headers={**admin, **same})
        assert r.status_code == 200 and r.json()["conversations"] == 1
        assert store.get_conversation(conv.id) is None
        assert store.erasures()[-1].requested_by == f"admin:{ADMIN[0]}"
        # One conversation; an id too long to be one is refused, never cut to fit.
        other, _ = store.create_conversation(channel="api")
        store.append_turn(other.id, "user", "goodbye")
        for target, status in ((other.id + "0" * 64, 422), (other.id, 200)):
            http.cookies.clear()
            r = call(
                http, "DELETE", f"/agent/admin/conversations/{target}", headers={**admin, **same}
            )
            assert r.status_code == status, r.text
        assert store.get_conversation(other.id) is None


def test_no_page_of_the_console_can_be_framed(live_app: LiveApp, accounts: dict[str, str]) -> None:
    """Clickjacking: the login page, the console itself (signed in) and its refusals all
    forbid framing; the customer widget, made to be embedded, does not."""
    with httpx.Client(base_url=live_app.url, follow_redirects=False) as http:
        for path, headers, status in (
            ("/agent/login", {}, 200),
            ("/agent/", cookie(accounts["agent"]), 200),
            ("/agent/", {}, 303),
        ):
            http.cookies.clear()
            r = call(http, "GET", path, headers=headers)
            assert r.status_code == status, (path, r.status_code)
            assert r.headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        http.cookies.clear()
        assert "x-frame-options" not in call(http, "GET", "/").headers


def test_console_cookie_flags() -> None:
    store = SqlConversationStore(create_store_engine("sqlite://"))
    migrate(store.engine)
    create_agent(store, "ann", "long-enough-password")
    signer = SessionSigner(b"k" * 32, store)
    for mode, proto, secure in (
        ("auto", "http", False),
        ("auto", "https", True),
        ("always", "http", True),
        ("never", "https", False),
    ):
        app = FastAPI()
        add_login_routes(app, CONSOLE, store, signer, "t", secure_cookies=mode)
        base = f"{proto}://testserver"
        with TestClient(app, base_url=base, follow_redirects=False) as client:
            r = client.post(
                "/agent/login", data={"username": "ann", "password": "long-enough-password"}
            )
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie, cookie
        assert "Path=/agent" in cookie and "Max-Age=" in cookie
        assert ("Secure" in cookie) is secure, (mode, proto, cookie)


def login_cookie(url: str, headers: dict[str, str] | None = None) -> str:
    with httpx.Client(base_url=url, follow_redirects=False) as http:
        creds = {"username": AGENT[0], "password": AGENT[1]}
        r = call(http, "POST", "/agent/login", data=creds, headers=headers or {})
        assert r.status_code == 303, r.text
        return str(r.headers["set-cookie"])


@pytest.fixture
def loopback_is_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment names the TLS proxy in front (here: loopback) as trusted."""
    monkeypatch.setenv("DESKBOT_TRUSTED_PROXIES", "127.0.0.1")


def test_the_cookie_is_secure_behind_a_trusted_tls_proxy(
    loopback_is_the_proxy: None, live_app: LiveApp
) -> None:
    assert "Secure" in login_cookie(live_app.url, {"X-Forwarded-Proto": "https"})
    assert "Secure" in login_cookie(live_app.url, {"X-Forwarded-Proto": "http, https"})
    assert "Secure" not in login_cookie(live_app.url)  # plain HTTP through the proxy


def test_an_untrusted_peer_cannot_claim_https(live_app: LiveApp) -> None:
    """Without trusted proxies the header is anybody's word: ignored."""
    assert "Secure" not in login_cookie(live_app.url, {"X-Forwarded-Proto": "https"})


def raw(
    url: str, method: str, path: str, *, headers: dict[str, str] | None = None, body: str = ""
) -> tuple[int, dict[str, str], str]:
    """One request with the standard library's http.client, which logs nothing, so
    that the captured logs are the app's alone. Waits out 429s."""
    parts = urlsplit(url)
    for _ in range(20):
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            conn.request(method, path, body=body.encode() or None, headers=headers or {})
            response = conn.getresponse()
            data = response.read().decode()
            found = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        if response.status != 429:
            return response.status, found, data
        time.sleep(min(2.0, float(found.get("retry-after", "1"))))
    return response.status, found, data


def test_no_secrets_in_logs(live_app: LiveApp, caplog: pytest.LogCaptureFixture) -> None:
    """Everything the app logs (any logger, DEBUG up) while agents log in and use the
    console and customers chat: no password, session token, cookie or signing key."""
    caplog.set_level(logging.DEBUG)
    url = live_app.url
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = raw(
        url, "POST", "/agent/login", headers=form, body=f"username={AGENT[0]}&password={'x' * 12}"
    )
    assert status == 303
    status, found, _ = raw(
        url, "POST", "/agent/login", headers=form, body=f"username={AGENT[0]}&password={AGENT[1]}"
    )
    assert status == 303
    cookie = found["set-cookie"].split(";")[0].split("=", 1)[1]
    assert raw(url, "GET", "/agent/config", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})[0] == 200
    status, _, body = raw(url, "POST", "/api/sessions")
    token = json.loads(body)["session_token"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    message = json.dumps({"text": "my card never arrived"})
    assert raw(url, "POST", "/api/messages", headers=auth, body=message)[0] == 200
    assert raw(url, "GET", "/api/history", headers=auth)[0] == 200
    assert raw(url, "POST", "/api/handoff", headers=auth)[0] == 200
    assert raw(url, "DELETE", "/api/me", headers=auth)[0] == 200
    assert raw(url, "GET", "/api/history", headers=auth)[0] == 401
    secrets_seen = {
        "password": AGENT[1],
        "wrong password": "x" * 12,
        "session token": token,
        "console cookie": cookie,
        "cookie MAC": cookie.rsplit(".", 1)[1],
        "signing key": "test-secret-" + "x" * 32,
    }
    logged = caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)
    assert "logged in" in logged and "erased 1 conversations" in logged  # it did log
    for what, value in secrets_seen.items():
        assert value not in logged, what


@pytest.mark.browser
def test_a_cross_site_page_cannot_log_an_agent_in_or_act_for_them(
    live_app: LiveApp, accounts: dict[str, str], new_page: Callable[..., Any]
) -> None:
    """A real browser on another site's page (localhost:PORT is another site than
    127.0.0.1): a form that logs in (login CSRF) and a form and a fetch that act with
    the agent's cookie are all refused, and no cookie is set."""
    store = live_app.bot.store
    conv, _ = store.create_conversation(customer_id="cust-victim", channel="api")
    store.append_turn(conv.id, "user", "please keep my data")
    target = live_app.url
    attack = f"""<!doctype html><html><body>
<form id="login" method="post" action="{target}/agent/login">
<input name="username" value="{AGENT[0]}"><input name="password" value="{AGENT[1]}"></form>
<script>
window.fetchResult = "pending";
fetch("{target}/agent/admin/customers/cust-victim", {{method: "DELETE", credentials: "include"}})
  .then(r => window.fetchResult = "status " + r.status)
  .catch(e => window.fetchResult = "blocked");
</script></body></html>"""

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = attack.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    evil_url = f"http://localhost:{server.server_address[1]}/"
    try:
        # An admin is logged in in this browser; the attacker's page acts with it.
        page = new_page()
        page.goto(target + "/agent/login")
        page.fill("#username", ADMIN[0])
        page.fill("#password", ADMIN[1])
        page.click("button[type=submit]")
        page.wait_for_selector("#console-header")
        page.goto(evil_url)
        page.wait_for_function("window.fetchResult !== 'pending'", timeout=10_000)
        assert page.evaluate("window.fetchResult") == "blocked"  # no CORS: preflight fails
        assert store.get_conversation(conv.id) is not None
        # A plain form post needs no preflight: the server refuses it.
        with page.expect_navigation():
            page.evaluate("document.getElementById('login').submit()")
        assert "cross-site requests to the agent console are refused" in page.content()
        # Login CSRF in a browser without a session: no cookie is set.
        fresh = new_page()
        fresh.goto(evil_url)
        with fresh.expect_navigation():
            fresh.evaluate("document.getElementById('login').submit()")
        assert "refused" in fresh.content()
        assert not [c for c in fresh.context.cookies() if c["name"] == COOKIE_NAME]
    finally:
        server.shutdown()
    assert store.get_conversation(conv.id) is not None


def test_tokens_cannot_be_guessed(live_app: LiveApp) -> None:
    store = live_app.bot.store
    made = [store.create_conversation() for _ in range(300)]
    tokens = [t for _, t in made]
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in tokens)  # 256 bits
    assert all(t not in c.id and c.id not in t for c, t in made)
    # No structure to guess from: 300 tokens use the whole URL-safe alphabet.
    assert len(set("".join(tokens))) == 64
    # The database holds hashes only: reading it gives no session away.
    with store.engine.connect() as conn:
        rows = " ".join(str(r) for r in conn.exec_driver_sql("SELECT * FROM conversations"))
    assert not any(t in rows for t in tokens)
    # A near miss is a stranger: one character off a real token gets nothing.
    real = tokens[0]
    near = real[:-1] + ("A" if real[-1] != "A" else "B")
    with httpx.Client(base_url=live_app.url) as http:
        ok = call(http, "GET", "/api/history", headers={"Authorization": f"Bearer {real}"})
        assert ok.status_code == 200
        miss = call(http, "GET", "/api/history", headers={"Authorization": f"Bearer {near}"})
        assert miss.status_code == 401


XSS_NAME = '<img src=x onerror="window.__xss=3">Mal'
XSS_TEXT = (
    '<script>window.__xss=4</script><img src=y onerror="window.__xss=5">'
    " [click](javascript:window.__xss=6) **bold**"
)


@pytest.mark.browser
def test_what_agents_and_customers_write_is_shown_as_text_in_both_uis(
    live_app: LiveApp, new_page: Callable[..., Any]
) -> None:
    """An agent's display name and reply, and a customer's message, full of markup:
    both UIs show the characters, run no script and load nothing."""
    from tests.ui.test_browser import _last_bot_turn, ask, open_widget, wait_until

    store = live_app.bot.store
    create_agent(store, "mallory", "mallory-password", display_name=XSS_NAME)
    customer = open_widget(new_page, live_app.url)
    ask(customer, f"{XSS_TEXT} my card never arrived")
    wait_until(lambda: _last_bot_turn(live_app))
    customer.get_by_role("button", name="Talk to a person").click()
    customer.get_by_text("Waiting for a person").wait_for()
    handoff = wait_until(lambda: store.handoff_queue())[0]

    agent = new_page(1280, 1000)
    agent.goto(live_app.url + "/agent/login")
    agent.fill("#username", "mallory")
    agent.fill("#password", "mallory-password")
    agent.click("button[type=submit]")
    header = agent.locator("#console-header")
    header.get_by_text("Signed in as").wait_for()
    assert XSS_NAME in header.inner_text()
    queue = agent.locator("#console-queue")
    queue.get_by_text("Customer asked for a person").filter(visible=True).first.click()
    transcript = agent.locator("#console-transcript")
    transcript.get_by_text("my card never arrived").wait_for()
    assert XSS_TEXT in transcript.inner_text()
    agent.get_by_role("button", name="Claim").click()
    agent.get_by_text(f"You claimed conversation #{handoff.id}").wait_for()
    agent.fill("#console-reply textarea", XSS_TEXT)
    agent.get_by_role("button", name="Send reply").click()

    chat = customer.locator("#deskbot-chat")
    chat.get_by_text("(support agent)").wait_for()
    wait_until(lambda: chat.inner_text().count("**bold**") >= 2)
    shown = chat.inner_text()
    assert f"{XSS_NAME} (support agent)" in shown and XSS_TEXT in shown
    assert XSS_NAME in customer.locator("#deskbot-status").inner_text()
    transcript.get_by_text(f"{XSS_NAME}:").wait_for()
    for page in (customer, agent):
        assert page.evaluate("window.__xss") is None
        assert page.locator('img[src="x"], img[src="y"]').count() == 0
        assert page.locator('a[href^="javascript"]').count() == 0
        assert page.locator("script:not([src])", has_text="__xss").count() == 0

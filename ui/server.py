"""The web app: the bot's API with the customer widget and the agent console mounted on it.

| path | what |
|---|---|
| `/` | customer chat widget (Gradio) |
| `/widget.js` | script tag that embeds the widget in another site |
| `/agent/` | agent console (Gradio, login required) |
| `/agent/login`, `/agent/logout` | console login form |
| `/agent/admin/...` | erasing a customer's data (admins only) |
| `/api/...`, `/docs` | HTTP API |
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import Response

from deskbot.bot.core.config import BotConfig
from deskbot.bot.server.api import create_api
from deskbot.bot.server.container import Bot, build_bot
from deskbot.ui.accounts.admin import add_admin_routes
from deskbot.ui.accounts.auth import COOKIE_NAME, SessionSigner, secret_key
from deskbot.ui.accounts.login import ConsoleGate, add_login_routes
from deskbot.ui.accounts.throttle import LoginThrottle
from deskbot.ui.console.page import CONSOLE_CSS, build_console
from deskbot.ui.widget.chat import CHAT_CSS, build_chat
from deskbot.ui.widget.client import HEAD as CHAT_HEAD

CONSOLE_PATH = "/agent"


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: an embedded widget fetches nothing
    from a font CDN (no third-party request, nothing to wait for offline)."""
    return gr.themes.Default(
        primary_hue="orange",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )


# The embed script: a round button in the page's corner that opens the widget in an
# iframe. It learns the widget's address from its own src, so it needs no settings. It
# tells the widget who the customer is (deskbot.bot.server.identity): the site's
# data-customer-id, data-customer-hash and data-customer-name, the page (without its
# query and fragment, which may hold tokens) and the language (data-language, else the
# page's lang, else the browser's).
WIDGET_JS = """(function () {
  var me = document.currentScript;
  var origin = new URL(me.src).origin;
  var title = me.getAttribute("data-title") || %(title)s;
  var query = new URLSearchParams();
  ["customer-id", "customer-hash", "customer-name"].forEach(function (name) {
    var value = me.getAttribute("data-" + name);
    if (value) query.set(name.replace("-", "_"), value);
  });
  if (/^https?:$/.test(location.protocol)) {
    query.set("customer_page", (location.origin + location.pathname).slice(0, 512));
  }
  var lang = me.getAttribute("data-language") || document.documentElement.lang ||
    navigator.language;
  if (lang) query.set("customer_language", lang);
  var frame = document.createElement("iframe");
  frame.src = origin + "/" + (query.toString() ? "?" + query.toString() : "");
  frame.title = title;
  frame.id = "deskbot-frame";
  frame.style.cssText = "position:fixed;bottom:84px;right:16px;width:min(400px,calc(100vw - 32px));" +
    "height:min(640px,calc(100vh - 110px));border:0;border-radius:12px;" +
    "box-shadow:0 6px 24px rgba(0,0,0,.2);display:none;z-index:2147483000;background:#fff";
  var button = document.createElement("button");
  button.id = "deskbot-open";
  button.type = "button";
  button.setAttribute("aria-label", title);
  button.textContent = "?";
  button.style.cssText = "position:fixed;bottom:16px;right:16px;width:56px;height:56px;" +
    "border-radius:50%%;border:0;background:#f97316;color:#fff;font-size:26px;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000";
  button.onclick = function () {
    var open = frame.style.display === "none";
    frame.style.display = open ? "block" : "none";
    button.textContent = open ? "\\u00d7" : "?";
  };
  document.body.appendChild(frame);
  document.body.appendChild(button);
})();
"""


def mount_ui(api: FastAPI, bot: Bot, *, signer: SessionSigner | None = None) -> FastAPI:
    """Add the widget, the embed script and the agent console to `api`."""
    signer = signer or SessionSigner(
        secret_key(),
        bot.store,
        max_age=int(bot.config.server.console_session_hours * 3600),
        idle_s=bot.config.server.console_idle_minutes * 60,
    )
    throttle = LoginThrottle(
        bot.config.limits, on_event=lambda outcome: bot.metrics.logins.labels(outcome).inc()
    )

    @api.get("/widget.js", include_in_schema=False)
    def widget_js() -> Response:
        body = WIDGET_JS % {"title": json.dumps(f"{bot.config.name} help")}
        return Response(
            body,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=300"},
        )

    def console_user(request: Request) -> str | None:
        agent = signer.check(request.cookies.get(COOKIE_NAME))
        return agent.username if agent is not None else None

    add_login_routes(
        api,
        CONSOLE_PATH,
        bot.store,
        signer,
        bot.config.name,
        secure_cookies=bot.config.server.secure_cookies,
        trusted_proxies=bot.config.limits.trusted_proxies,
        throttle=throttle,
    )
    add_admin_routes(api, CONSOLE_PATH, bot, signer)
    api.add_middleware(ConsoleGate, path=CONSOLE_PATH, signer=signer)
    # The console first: a mount at "/" would take every path.
    gr.mount_gradio_app(
        api,
        build_console(bot, signer),
        path=CONSOLE_PATH,
        auth_dependency=console_user,
        ssr_mode=False,
        css=CONSOLE_CSS,
        footer_links=[],
        pwa=False,
        theme=theme(),
    )
    gr.mount_gradio_app(
        api,
        build_chat(bot),
        path="/",
        ssr_mode=False,
        footer_links=[],
        css=CHAT_CSS,
        head=CHAT_HEAD,
        pwa=False,
        theme=theme(),
    )
    return api


# An idle keep-alive connection stays open longer than the proxy in front keeps its end
# (nginx's upstream keepalive and most load balancers: 60 s). Closing it first races the
# request the proxy or client is sending on it: a 502, or a reset, for that message
# (uvicorn's default is 5 s; benchmarks/performance/load.py lost messages so).
KEEP_ALIVE_S = 75


def server_config(app: FastAPI, host: str, port: int) -> Any:
    """How `deskbot serve` runs `app` under uvicorn (the UI tests run it the same way).

    uvicorn's own proxy handling is off: X-Forwarded-For and X-Forwarded-Proto are
    believed only from `limits.trusted_proxies`, by the rate limiter and the login."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


def create_app(config: BotConfig) -> FastAPI:
    """The whole web app for `config`: models loaded, API, widget and console mounted."""
    bot = build_bot(config)
    bot.warm_up()
    # A replica without traffic follows promotions too (and /readyz says which version).
    watch = getattr(bot.classifier, "watch", None)
    if watch is not None:
        watch()
    return mount_ui(create_api(bot), bot)

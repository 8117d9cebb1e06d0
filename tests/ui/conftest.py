"""The real app on a loopback port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deskbot.bot.server.container import Bot
from deskbot.bot.store import SqlConversationStore, create_store_engine, migrate
from tests.bot.actions.action_server import free_port

CHROMIUM = os.environ.get("DESKBOT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
AGENT = ("alice", "correct-horse-battery", "Alice Martin")
# axe-core, installed from npm by `make axe` (a dependency of `make test`) into an ignored folder.
AXE_JS = Path(
    os.environ.get(
        "DESKBOT_AXE_JS",
        Path(__file__).resolve().parents[2] / ".cache/npm/node_modules/axe-core/axe.min.js",
    )
)


@dataclass
class LiveApp:
    """The running app: its base URL and the bot object behind it (same store)."""

    url: str
    bot: Bot
    app: Any = None  # the ASGI app (its routes are enumerated by the security tests)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlConversationStore]:
    """A migrated store on SQLite, and on PostgreSQL where one runs."""
    engine = create_store_engine(database_url)
    migrate(engine)
    try:
        yield SqlConversationStore(engine)
    finally:
        engine.dispose()


@contextlib.contextmanager
def serving(bot: Bot) -> Iterator[LiveApp]:
    """`deskbot serve` of `bot` (its API and UI) on a free loopback port until the block ends."""
    import uvicorn

    from deskbot.bot.server.api import close_api, create_api
    from deskbot.ui.server import mount_ui, server_config

    app = mount_ui(create_api(bot), bot)
    port = free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))  # as `deskbot serve`
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    try:
        yield LiveApp(f"http://127.0.0.1:{port}", bot, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        close_api(app)


@pytest.fixture
def live_app(bot_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveApp]:
    """`deskbot serve` of the test project (real model, real index, SQLite) on a free port."""
    from deskbot.bot.core.config import load_config
    from deskbot.bot.server.container import build_bot
    from deskbot.ui.accounts.auth import create_agent

    monkeypatch.setenv("DESKBOT_SECRET_KEY", "test-secret-" + "x" * 32)
    bot = build_bot(load_config(bot_project))
    bot.warm_up()
    create_agent(bot.store, AGENT[0], AGENT[1], display_name=AGENT[2])
    with serving(bot) as live:
        yield live


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium (never a downloaded one), headless."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).is_file():
        message = (
            f"{CHROMIUM} is missing: run tests/ui/ensure_chromium.sh "
            "(apt-get install chromium chromium-driver)"
        )
        if os.environ.get("DESKBOT_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Any]:
    """Open pages in fresh browser contexts (each one a separate browser profile)."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        ctx = chromium.new_context(viewport={"width": width, "height": height})
        ctx.set_default_timeout(15_000)
        # A Gradio page's first load is the slowest step on 2 busy cores (it timed out at
        # 15 s under a load of 8): loading is not what these tests measure.
        ctx.set_default_navigation_timeout(60_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("dialog", lambda d: d.dismiss())
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def require_axe() -> str:
    """axe.min.js's source; fails (DESKBOT_REQUIRE_BROWSER=1) or skips when it is missing."""
    if not AXE_JS.is_file():
        message = f"{AXE_JS} is missing: run `make axe` (npm install of the pinned axe-core)"
        if os.environ.get("DESKBOT_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe.min.js's source (see require_axe): request it before starting the app."""
    return require_axe()


# Runs axe on the whole document and keeps what a report needs (JSON-serialisable).
_RUN_AXE = """async (impacts) => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter((v) => impacts.includes(v.impact))
    .map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
}"""


def axe_violations(
    page: Any, impacts: tuple[str, ...] = ("serious", "critical"), *, source: str | None = None
) -> list[dict[str, Any]]:
    """The axe-core violations of `impacts` on `page`: id, impact, help and target nodes.

    axe is evaluated through the DevTools protocol (not a <script> tag), so the app's
    Content-Security-Policy does not block it. `source` is axe.min.js's text (the
    `axe_source` fixture); without it require_axe reads it, skipping or failing the test
    when it is missing."""
    if source is None:
        source = require_axe()
    # Judge the page at rest: Gradio dims the outputs of an event still running (class
    # "pending") and fades components in; a contrast measured then is the animation's.
    page.wait_for_function(_SETTLED, timeout=30_000)
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    violations: list[dict[str, Any]] = page.evaluate(_RUN_AXE, list(impacts))
    return violations


_SETTLED = """() => !document.querySelector('.pending') &&
  document.getAnimations().every(a => a.playState !== 'running')"""

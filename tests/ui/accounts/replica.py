"""One console replica for the cross-process session test: the real login routes,
`ConsoleGate` and `SessionSigner` over a shared database, and `/agent/ping` behind the
gate standing in for the console. Run as `python -m tests.ui.accounts.replica URL PORT`."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from deskbot.bot.store import SqlConversationStore, create_store_engine
from deskbot.ui.accounts.auth import SessionSigner
from deskbot.ui.accounts.login import ConsoleGate, add_login_routes

KEY = b"replica-test-key-" * 2


def replica_app(database_url: str) -> FastAPI:
    store = SqlConversationStore(create_store_engine(database_url))
    signer = SessionSigner(KEY, store)
    app = FastAPI()
    add_login_routes(app, "/agent", store, signer, "Replica", secure_cookies="never")

    @app.get("/agent/ping")
    def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @app.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    app.add_middleware(ConsoleGate, path="/agent", signer=signer)
    return app


if __name__ == "__main__":
    url, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(replica_app(url), host="127.0.0.1", port=port, log_level="warning")

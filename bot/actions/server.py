"""The rasa-sdk action server, with the token check rasa-sdk leaves to the deployment.

Rasa (and deskbot's `RasaActionClient`) sends the action endpoint's token as the
`token` query parameter; rasa-sdk's server does not look at it. Run this module instead
of `python -m rasa_sdk` (`deskbot actions serve` does) and, when `DESKBOT_ACTIONS_TOKEN`
is set, every request but `GET /health` without that token is refused with 401 before
any action runs. It takes rasa-sdk's own command-line arguments.

Example:
    $ DESKBOT_ACTIONS_TOKEN=... python -m deskbot.bot.actions.server --actions actions
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
import sys
import threading
import time
from functools import partial
from typing import Any

from deskbot.bot.core.config import ACTIONS_TOKEN_ENV

logger = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/health"})
# Set by `deskbot actions serve` to its pid: the server goes when that command dies.
PARENT_ENV = "DESKBOT_ACTIONS_PARENT_PID"


def token_matches(given: str | None, token: str) -> bool:
    """Whether `given` is `token` (in constant time)."""
    return hmac.compare_digest((given or "").encode("utf-8"), token.encode("utf-8"))


def create_app(action_executor: Any, *, token: str | None, **serve_kwargs: Any) -> Any:
    """rasa-sdk's app (its routes, plug-ins and tracing) behind the token check.

    Module-level so that Sanic's `AppLoader` can rebuild it in each worker process.
    """
    from rasa_sdk.endpoint import create_app_for_serve
    from sanic import response
    from sanic.request import Request

    app = create_app_for_serve(action_executor, **serve_kwargs)
    if token:

        async def check_token(request: Request) -> Any:
            if request.path in PUBLIC_PATHS or token_matches(request.args.get("token"), token):
                return None
            logger.warning("action server: request without the right token refused")
            return response.json(
                {"error": "missing or wrong token", "action_name": None}, status=401
            )

        app.register_middleware(check_token, "request")
    return app


def exit_with_parent(parent: int, interval_s: float = 0.5) -> threading.Thread | None:
    """Kill this server's process group once `parent` is gone.

    `deskbot actions serve` runs the server in a process group of its own and stops that
    group when it is stopped, but a SIGKILLed command cannot: the server (Sanic's main
    process and workers) would keep running, holding the port, and the command could not
    be started again. Only a process that leads its own group watches (never kills a
    group it merely belongs to)."""
    if os.getpgrp() != os.getpid():
        return None

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        logger.error("deskbot actions serve (pid %d) is gone: stopping the server", parent)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def endpoints_file(given: str | None) -> str | None:
    """The endpoints file rasa-sdk reads its tracing settings from.

    The one given with --endpoints (rasa-sdk logs an error when it is missing), else
    rasa-sdk's default `endpoints.yml` where the working folder has one, else none:
    tracing is off and rasa-sdk does not log "ERROR Failed to read endpoint
    configuration" for a file that nobody asked for (on every start, before)."""
    from rasa_sdk.constants import DEFAULT_ENDPOINTS_PATH

    if given is not None:
        return given
    return DEFAULT_ENDPOINTS_PATH if os.path.isfile(DEFAULT_ENDPOINTS_PATH) else None


def run(args: Any, token: str | None) -> None:
    """Serve `args.actions` as `rasa_sdk.endpoint.run` does, with `create_app`."""
    from rasa_sdk import utils
    from rasa_sdk.endpoint import create_ssl_config
    from rasa_sdk.executor import ActionExecutor
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    executor = ActionExecutor()
    executor.register_package(args.actions_module or args.actions)
    loader = AppLoader(
        factory=partial(
            create_app,
            executor,
            token=token,
            # A browser never calls an action server: no CORS (rasa-sdk's default is "*").
            cors_origins=args.cors,
            auto_reload=args.auto_reload,
            endpoints=endpoints_file(args.endpoints),
        )
    )
    app = loader.load()
    ssl = create_ssl_config(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    host = os.environ.get("SANIC_HOST", "0.0.0.0")  # rasa-sdk's default: a container's port
    # No access log: the query string carries the token.
    workers = utils.number_of_sanic_workers()
    # One worker (the default) is served in this process: Sanic's multi-process manager
    # hangs on SIGTERM (measured: still running 30 s later), so every restart or deploy
    # waited for the SIGKILL after the grace period.
    app.prepare(
        host=host,
        port=args.port,
        ssl=ssl,
        workers=workers,
        single_process=workers == 1,
        access_log=False,
    )
    if os.environ.get(PARENT_ENV, "").isdigit():
        exit_with_parent(int(os.environ[PARENT_ENV]))
    if workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)


def main(argv: list[str] | None = None) -> None:
    """`python -m deskbot.bot.actions.server` with rasa-sdk's arguments."""
    from rasa_sdk import utils
    from rasa_sdk.endpoint import create_argument_parser

    parser = create_argument_parser()
    parser.set_defaults(endpoints=None)  # told apart from an explicit --endpoints endpoints.yml
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    utils.configure_colored_logging(args.loglevel)
    utils.update_sanic_log_level()
    token = os.environ.get(ACTIONS_TOKEN_ENV) or None
    if token is None:
        logger.warning(
            "%s is not set: the action server runs any action for anyone who reaches it",
            ACTIONS_TOKEN_ENV,
        )
    run(args, token)


if __name__ == "__main__":
    main()

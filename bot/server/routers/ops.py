"""Routes for operators: liveness, readiness and Prometheus metrics (never rate limited:
a probe must see a busy server as alive)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from deskbot.bot.core.metrics import CONTENT_TYPE
from deskbot.bot.server.deps import BotDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Models are loaded (status ready, or degraded)")
def readyz(bot: BotDep) -> JSONResponse:
    if not bot.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    # Degraded is still 200: the bot answers (it clarifies and hands off instead of
    # answering from the FAQ), so a load balancer should keep sending customers.
    degraded = bot.degraded
    body: dict[str, object] = {
        "status": "degraded" if degraded else "ready",
        "intent_model": bot.classifier.version,
        # The generator's live LoRA adapter version (null: the base model, or no generator).
        "generator_adapter": bot.generator_adapter,
        "faq_index": bot.retriever.version,
        "actions": bot.config.actions.url is not None,
    }
    if degraded:
        body["degraded"] = degraded
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics")
def metrics(bot: BotDep) -> Response:
    return Response(bot.metrics.render(), media_type=CONTENT_TYPE)

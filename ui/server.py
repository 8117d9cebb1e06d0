"""The web app: the bot's API with the Gradio pages mounted on it."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

from deskbot.bot.api import create_api
from deskbot.bot.app import build_bot
from deskbot.bot.config import BotConfig
from deskbot.ui.chat import build_chat


def create_app(config: BotConfig) -> FastAPI:
    bot = build_bot(config)
    bot.warm_up()
    api = create_api(bot)
    app: FastAPI = gr.mount_gradio_app(api, build_chat(bot), path="/")
    return app

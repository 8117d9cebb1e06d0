"""Actions for the action-server tests: the demo bank's, plus ones that misbehave."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.interfaces import ActionExecutionRejection

from deskbot.bot.demo.actions import (  # noqa: F401  (registered with the server)
    ActionCardOrderStatus,
    ActionFreezeCard,
    ActionReportCompromisedCard,
)

Events = list[dict[str, Any]]
Run = Callable[[CollectingDispatcher, Tracker, dict[str, Any]], Events]


def action(action_name: str) -> Callable[[Run], type[Action]]:
    """Makes the function below a rasa-sdk `Action` named `action_name`, the function its
    `run` (the server registers every subclass of `Action` that its module defines)."""

    def make(function: Run) -> type[Action]:
        def name(_self: Action) -> str:
            return action_name

        def run(
            _self: Action, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any
        ) -> Events:
            return function(dispatcher, tracker, domain)

        body = {"name": name, "run": run, "__doc__": function.__doc__, "__module__": __name__}
        # Named as the function is, so that the server's workers find it by pickle.
        return type(function.__name__, (Action,), body)

    return make


@action("action_rejects")
def action_rejects(dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
    raise ActionExecutionRejection("action_rejects", "not today")


@action("action_crashes")
def action_crashes(dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
    raise RuntimeError("the bank's system is down")


@action("action_stalls")
def action_stalls(dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
    time.sleep(3)
    return []


@action("action_echo_tracker")
def action_echo_tracker(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
) -> Events:
    """Says what it received, so tests can check the tracker deskbot sends."""
    intent = tracker.latest_message.get("intent", {}).get("name")
    dispatcher.utter_message(
        text=f"sender={tracker.sender_id} intent={intent} "
        f"order={tracker.get_slot('order_number')} text={tracker.latest_message.get('text')} "
        f"events={len(tracker.events)} domain_actions={len(domain.get('actions', []))}",
        buttons=[{"title": "Yes", "payload": "/affirm"}],
    )
    return [SlotSet("email", None)]


@action("action_record_run")
def action_record_run(dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
    """Appends a line to the file named by DESKBOT_TEST_ACTION_LOG each time it runs:
    what a test counts to know whether an action ran (a side effect, as real ones have)."""
    with open(os.environ["DESKBOT_TEST_ACTION_LOG"], "a", encoding="utf-8") as fh:
        fh.write(f"{tracker.sender_id}\n")
    dispatcher.utter_message(text="done")
    return []

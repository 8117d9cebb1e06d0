"""Actions for the action-server tests: the demo bank's, plus ones that misbehave."""

from __future__ import annotations

import os
import time
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


class ActionRejects(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_rejects"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        raise ActionExecutionRejection("action_rejects", "not today")


class ActionCrashes(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_crashes"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        raise RuntimeError("the bank's system is down")


class ActionStalls(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_stalls"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        time.sleep(3)
        return []


class ActionEchoTracker(Action):  # type: ignore[misc]
    """Says what it received, so tests can check the tracker deskbot sends."""

    def name(self) -> str:
        return "action_echo_tracker"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        intent = tracker.latest_message.get("intent", {}).get("name")
        dispatcher.utter_message(
            text=f"sender={tracker.sender_id} intent={intent} "
            f"order={tracker.get_slot('order_number')} text={tracker.latest_message.get('text')} "
            f"events={len(tracker.events)} domain_actions={len(domain.get('actions', []))}",
            buttons=[{"title": "Yes", "payload": "/affirm"}],
        )
        return [SlotSet("email", None)]


class ActionRecordRun(Action):  # type: ignore[misc]
    """Appends a line to the file named by DESKBOT_TEST_ACTION_LOG each time it runs:
    what a test counts to know whether an action ran (a side effect, as real ones have)."""

    def name(self) -> str:
        return "action_record_run"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        with open(os.environ["DESKBOT_TEST_ACTION_LOG"], "a", encoding="utf-8") as fh:
            fh.write(f"{tracker.sender_id}\n")
        dispatcher.utter_message(text="done")
        return []

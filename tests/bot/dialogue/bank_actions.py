"""The test bank's actions with side effects, served by a real rasa-sdk action server
(`bank_server.py`): each run of an action that changes something is written to the file
named by DESKBOT_TEST_SIDE_EFFECTS_LOG, so a test counts what really ran.

Standalone on purpose: importing the demo's module would register a second
`action_freeze_card` on the same server.
"""

from __future__ import annotations

import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

Events = list[dict[str, Any]]


def record(action: str, tracker: Tracker) -> None:
    with open(os.environ["DESKBOT_TEST_SIDE_EFFECTS_LOG"], "a", encoding="utf-8") as fh:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        fh.write(f"{action} {tracker.sender_id} {tracker.get_slot('card_last4')} {intent}\n")


def cards(dispatcher: CollectingDispatcher, last4s: tuple[str, ...]) -> Events:
    if len(last4s) == 1:
        return [SlotSet("card_last4", last4s[0])]
    buttons = [
        {"title": f"Card ending {n}", "payload": f'/choose{{"card_last4": "{n}"}}'} for n in last4s
    ]
    dispatcher.utter_message(text="Which card do you mean?", buttons=buttons)
    return []


class ActionCustomerCards(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_customer_cards"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
        return cards(dispatcher, ("1234",))


class ActionCustomerTwoCards(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_customer_two_cards"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
        return cards(dispatcher, ("1234", "5678"))


class ActionFreezeCard(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_freeze_card"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
        record(self.name(), tracker)
        last4 = tracker.get_slot("card_last4")
        dispatcher.utter_message(text=f"I've frozen your card ending {last4}.")
        return [SlotSet("card_frozen", True)]


class ActionReportCompromisedCard(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_report_compromised_card"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Any) -> Events:
        record(self.name(), tracker)
        dispatcher.utter_message(text="I've frozen your card; our fraud team will call you.")
        return [FollowupAction("action_handoff")]

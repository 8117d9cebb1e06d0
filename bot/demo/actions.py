"""Custom actions of the demo bank, written against rasa-sdk (they run unchanged under Rasa).

deskbot starts the action server with `deskbot actions serve -c PROJECT`, which runs
`python -m rasa_sdk --actions actions` in the project folder.

deskbot collects the slots an action needs before it calls it (`actions.required_slots`
in deskbot.yaml), so `run` finds them in the tracker; an action that needs a person
returns `FollowupAction("action_handoff")` and deskbot queues the conversation for one.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

# A fictional order book: a real deployment would call the bank's systems here.
CARD_ORDERS = {
    "NW123456": "dispatched on 18 November by Royal Mail, tracking RM482913GB",
    "NW654321": "being printed; it will be dispatched within 2 working days",
}


class ActionCardOrderStatus(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_card_order_status"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        order = (tracker.get_slot("order_number") or "").upper()
        if not order:
            dispatcher.utter_message(text="What is your card order number? It starts with NW.")
            return []
        status = CARD_ORDERS.get(order)
        if status is None:
            dispatcher.utter_message(
                text=f"I can't find card order {order}. Please check the number."
            )
            return [SlotSet("order_number", None)]
        dispatcher.utter_message(text=f"Card order {order} is {status}.")
        return []


class ActionFreezeCard(Action):  # type: ignore[misc]
    def name(self) -> str:
        return "action_freeze_card"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(
            text="I've frozen your card: no payments or withdrawals will go through until you unfreeze "
            "it in the app under Cards > Unfreeze."
        )
        return [SlotSet("card_frozen", True)]


class ActionReportCompromisedCard(Action):  # type: ignore[misc]
    """Freezes the card, then needs a person: fraud cases are handled by the fraud team."""

    def name(self) -> str:
        return "action_report_compromised_card"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(
            text="I've frozen your card so that nobody can use it. A member of our fraud team "
            "will go through the recent payments with you."
        )
        return [SlotSet("card_frozen", True), FollowupAction("action_handoff")]

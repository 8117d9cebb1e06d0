"""Custom actions of the demo bank, written against rasa-sdk (they run unchanged under Rasa).

Start the action server with: python -m rasa_sdk --actions actions
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
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

"""Custom actions of the demo bank, written against rasa-sdk (they run unchanged under Rasa).

deskbot starts the action server with `deskbot actions serve -c PROJECT`, which runs
`python -m rasa_sdk --actions actions` in the project folder.

deskbot collects the slots an action needs before it calls it (`actions.required_slots`
in deskbot.yaml), so `run` finds them in the tracker; an action that needs a person
returns `FollowupAction("action_handoff")` and deskbot queues the conversation for one.
Freezing a card is asked first (`actions.confirm`): `action_customer_cards` fills
`card_last4` for the question, or offers one button per card when there are several.
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


# The customer's cards (type, last 4 digits): a real deployment would look up the
# customer of the conversation in the bank's systems here.
CUSTOMER_CARDS: tuple[tuple[str, str], ...] = (("Debit card", "1234"),)


def card_choices(cards: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    """One button per card; its payload sets `card_last4` (Rasa's `/intent{slots}`)."""
    return [
        {"title": f"{kind} ending {last4}", "payload": f'/choose{{"card_last4": "{last4}"}}'}
        for kind, last4 in cards
    ]


def list_cards(
    dispatcher: CollectingDispatcher, cards: tuple[tuple[str, str], ...]
) -> list[dict[str, Any]]:
    """`card_last4` when there is one card; with several, the question which one."""
    if len(cards) == 1:
        return [SlotSet("card_last4", cards[0][1])]
    if not cards:
        dispatcher.utter_message(text="I can't find a card on your account.")
        return []
    dispatcher.utter_message(text="Which card do you mean?", buttons=card_choices(cards))
    return []


class ActionCustomerCards(Action):  # type: ignore[misc]
    """Read-only: which card an action on "your card" is about."""

    def name(self) -> str:
        return "action_customer_cards"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return list_cards(dispatcher, CUSTOMER_CARDS)


def _card(tracker: Tracker) -> str:
    last4 = tracker.get_slot("card_last4")
    return f"your card ending {last4}" if last4 else "your card"


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
            text=f"I've frozen {_card(tracker)}: no payments or withdrawals will go through "
            "until you unfreeze it in the app under Cards > Unfreeze."
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
            text=f"I've frozen {_card(tracker)} so that nobody can use it. A member of our "
            "fraud team will go through the recent payments with you."
        )
        return [SlotSet("card_frozen", True), FollowupAction("action_handoff")]

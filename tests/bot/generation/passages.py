"""FAQ passages that generation tests ground their replies on (the demo bank's, shortened)."""

from __future__ import annotations

from deskbot.bot.core.types import Passage

DELIVERY = Passage(
    id="card-delivery-estimate",
    text=(
        "With free standard delivery, cards are posted within 2 working days of ordering and "
        "arrive 3 to 5 working days later in the UK. If you need it sooner, choose express "
        "delivery for £10 when you order."
    ),
    score=0.8,
    source="faq",
)

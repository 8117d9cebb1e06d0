"""Writes pii_examples.jsonl: labelled customer messages for measuring PII redaction.

Each line is ``{"text": ..., "pii": [{"kind": ..., "value": ...}], "keep": [...]}``:
`pii` lists the personal values that must disappear, `keep` the values that look alike
but must stay (amounts, dates, order numbers). The values are made here (Luhn-valid
card numbers, mod-97-valid IBANs) independently of the redactor under test.

Run from the repository root: ``python tests/data/pii_examples.py``.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

rng = random.Random(20261122)

DOUBLED = "0246813579"


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    # The body's last digit (left of the check digit) is doubled, then every other one;
    # DOUBLED[d] is the digit sum of 2 * d.
    total = sum(
        int(DOUBLED[int(ch)]) if i % 2 == 0 else int(ch) for i, ch in enumerate(reversed(body))
    )
    return body + str(-total % 10)


def not_luhn(prefix: str, length: int) -> str:
    good = luhn_complete(prefix, length)
    return good[:-1] + str((int(good[-1]) + 3) % 10)


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, pos = [], 0
    for s in sizes:
        out.append(digits[pos : pos + s])
        pos += s
    return sep.join(out)


def make_iban(country: str, length: int) -> str:
    bban = "".join(
        rng.choice(
            string.digits if i >= 4 or country not in ("GB", "NL") else string.ascii_uppercase
        )
        for i in range(length - 4)
    )
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def spaced(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


FIRST = [
    "Sarah",
    "James",
    "Priya",
    "Tomasz",
    "Aoife",
    "Mohammed",
    "Chloe",
    "Daniel",
    "Olena",
    "Kwame",
    "Lucia",
    "Hiroshi",
    "Fatima",
    "Liam",
    "Ingrid",
    "Mateo",
    "Grace",
    "Arjun",
    "Noor",
    "Ewan",
]
LAST = [
    "Thompson",
    "Okafor",
    "Kowalski",
    "Murphy",
    "Patel",
    "Fernandes",
    "Nakamura",
    "Schmidt",
    "Haddad",
    "Walsh",
    "Novak",
    "Andersson",
    "Rossi",
    "Campbell",
    "Mensah",
]
DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "northwind-mail.net",
    "proton.me",
    "btinternet.com",
    "uni.ac.uk",
    "example.org",
]

examples: list[dict[str, object]] = []


def add(text: str, pii: list[tuple[str, str]] = (), keep: list[str] = ()) -> None:  # type: ignore[assignment]
    for _, v in pii:
        assert v in text, (v, text)
    for v in keep:
        assert v in text, (v, text)
    examples.append(
        {"text": text, "pii": [{"kind": k, "value": v} for k, v in pii], "keep": list(keep)}
    )


# -- cards ---------------------------------------------------------------------------------
card_templates = [
    "my card number is {}",
    "Card {} was declined at the shop",
    "please block {} it was stolen",
    "I typed {} into the website and it failed",
    "the number on my card is {} but the app shows something else",
    "{} is the card I lost",
    "can you check card no. {}?",
    "charged twice on {} yesterday",
]
for i in range(34):
    prefix, length, sizes = rng.choice(
        [
            ("4", 16, [4, 4, 4, 4]),
            ("5", 16, [4, 4, 4, 4]),
            ("37", 15, [4, 6, 5]),
            ("6011", 16, [4, 4, 4, 4]),
        ]
    )
    digits = luhn_complete(prefix, length)
    style = i % 3
    value = digits if style == 0 else group(digits, sizes, " " if style == 1 else "-")
    add(card_templates[i % len(card_templates)].format(value), [("card", value)])
for _ in range(8):  # a typo in a grouped number: still a card number
    value = group(not_luhn("4", 16), [4, 4, 4, 4], " ")
    add(f"is {value} the right card number? it keeps getting rejected", [("card", value)])

# -- IBANs -----------------------------------------------------------------------------------
iban_templates = [
    "send it to IBAN {}",
    "my IBAN is {} can you confirm the transfer",
    "the transfer to {} has not arrived",
    "Beneficiary account {} rejected the payment",
    "refund to {} please",
]
iban_lengths = {"GB": 22, "DE": 22, "FR": 27, "ES": 24, "NL": 18, "IE": 22, "IT": 27, "PL": 28}
countries = list(iban_lengths.items())
for i in range(32):
    c, n = countries[i % len(countries)]
    iban = make_iban(c, n)
    value = spaced(iban) if i % 2 else iban
    add(iban_templates[i % len(iban_templates)].format(value), [("iban", value)])

# -- e-mails ---------------------------------------------------------------------------------
email_templates = [
    "you can reach me at {}",
    "my email is {} and I never got the code",
    "please send the statement to {}.",
    "{} is not receiving your emails",
    "change my e-mail to {} please",
    "contact: {}",
]
for i in range(36):
    first, last = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}{rng.randint(1, 99)}",
            f"{first[0]}{last}",
            f"{first}_{last}+bank",
        ]
    )
    value = f"{local}@{rng.choice(DOMAINS)}"
    add(email_templates[i % len(email_templates)].format(value), [("email", value)])


# -- phone numbers ---------------------------------------------------------------------------
def uk_mobile() -> str:
    n = "7" + "".join(rng.choice(string.digits) for _ in range(9))
    return rng.choice(
        [f"0{n[:4]} {n[4:]}", f"+44 {n[:4]} {n[4:]}", f"0{n}", f"+44{n}", f"+44 (0){n[:4]} {n[4:]}"]
    )


def uk_landline() -> str:
    n = "".join(rng.choice(string.digits) for _ in range(8))
    return rng.choice(
        [
            f"020 {n[:4]} {n[4:]}",
            f"0161 {n[:3]} {n[3:7]}",
            f"(0131) {n[:3]} {n[3:7]}",
            f"+44 20 {n[:4]} {n[4:]}",
        ]
    )


def intl() -> str:
    d = lambda k: "".join(rng.choice(string.digits) for _ in range(k))  # noqa: E731
    return rng.choice(
        [
            f"+1 415 {d(3)} {d(4)}",
            f"+1 (212) {d(3)}-{d(4)}",
            f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+49 30 {d(8)}",
            f"+353 87 {d(3)} {d(4)}",
            f"0044 7{d(3)} {d(6)}",
            f"+34 6{d(2)} {d(3)} {d(3)}",
            f"+91 98{d(3)} {d(5)}",
            f"(415) {d(3)}-{d(4)}",
        ]
    )


phone_templates = [
    "call me on {}",
    "my phone number is {} and I did not get the text",
    "I changed my number to {}",
    "ring {} after 5pm",
    "the verification code never came to {}",
    "is {} the number you have for me?",
]
for i in range(54):
    value = (uk_mobile, uk_landline, intl)[i % 3]()
    add(phone_templates[i % len(phone_templates)].format(value), [("phone", value)])

# -- names -----------------------------------------------------------------------------------
name_templates = [
    ("my name is {}", 2),
    ("Hi, this is {} and my card is stuck", 2),
    ("I'm {} and I need help with a transfer", 1),
    ("the account holder is {}", 2),
    ("I sent money to {} but it bounced", 2),
    ("Thanks, {}", 1),
    ("please speak to Mrs {} about this", 1),
    ("Dr {} asked me to call", 1),
    ("the payment from {} never arrived", 2),
    ("Regards, {}", 2),
]
for i in range(30):
    template, words = name_templates[i % len(name_templates)]
    value = rng.choice(FIRST) if words == 1 else f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if "Mrs" in template or "Dr" in template:
        value = rng.choice(LAST)
    add(template.format(value), [("name", value)])

# -- several kinds at once -------------------------------------------------------------------
for _ in range(8):
    card = group(luhn_complete("4", 16), [4, 4, 4, 4], " ")
    email = f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@{rng.choice(DOMAINS)}"
    phone = uk_mobile()
    add(
        f"card {card} was charged £{rng.randint(5, 900)}.{rng.randint(10, 99)} twice, email {email} or call {phone}",
        [("card", card), ("email", email), ("phone", phone)],
    )

# -- harder cases: no cue, lower case, unusual formatting (some are expected misses) -------
hard = [
    ("{} here, my card is not working", "name", lambda: f"{rng.choice(FIRST)} {rng.choice(LAST)}"),
    ("my name is {} and I want to close my account", "name", lambda: rng.choice(FIRST).lower()),
    (
        "text me at 7{} please",
        "phone",
        lambda: "".join(rng.choice(string.digits) for _ in range(9)),
    ),
    ("card 4{} expired", "card", lambda: luhn_complete("4", 16)[1:]),
    (
        "my email is {} (at work)",
        "email",
        lambda: f"{rng.choice(FIRST).lower()} at {rng.choice(DOMAINS)}",
    ),
    ("IBAN {} please check", "iban", lambda: make_iban("DE", 22).lower()),
]
for i in range(12):
    template, kind, make = hard[i % len(hard)]
    value = make()
    text = template.format(value)
    if kind == "phone":
        value = "7" + value
    if kind == "card":
        value = "4" + value
    add(text, [(kind, value)])

# -- look-alikes that must stay --------------------------------------------------------------
keep_templates = [
    ("I was charged £{a} twice", lambda: f"{rng.randint(1, 999)}.{rng.randint(10, 99)}"),
    (
        "the payment of €{a} is still pending",
        lambda: f"{rng.randint(1, 9)},{rng.randint(100, 999)}.00",
    ),
    (
        "I tried to withdraw {a} EUR at the ATM",
        lambda: str(rng.choice([20, 50, 100, 250, 400, 1000])),
    ),
    ("order number {a} hasn't shipped", lambda: str(rng.randint(1000000, 99999999))),
    ("my order #{a} was refunded", lambda: str(rng.randint(100000, 9999999))),
    (
        "reference ORD-{a} shows as failed",
        lambda: f"{rng.randint(2019, 2026)}-{rng.randint(10000, 999999)}",
    ),
    (
        "the transfer on {a} never arrived",
        lambda: f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2020, 2026)}",
    ),
    (
        "since {a} my card doesn't work",
        lambda: f"{rng.randint(2020, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    ),
    (
        "I made the payment at {a} today",
        lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
    ),
    ("the card ending in {a} was declined", lambda: f"{rng.randint(0, 9999):04d}"),
    (
        "transaction id {a} is wrong",
        lambda: "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(10)),
    ),
    ("I topped up {a} pounds on 01.03.2025 at 10:30", lambda: str(rng.randint(5, 500))),
    ("I have {a} transactions I don't recognise", lambda: str(rng.randint(2, 40))),
    ("exchange rate for {a} USD to GBP?", lambda: f"{rng.randint(100, 100000):,}"),
    (
        "tracking number {a}",
        lambda: (
            "1Z" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        ),
    ),
]
for i in range(75):
    template, make = keep_templates[i % len(keep_templates)]
    value = make()
    add(template.format(a=value), keep=[value])

out = Path(__file__).with_name("pii_examples.jsonl")
with open(out, "w", encoding="utf-8") as fh:
    for ex in examples:
        fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
print(f"{len(examples)} examples, {sum(len(e['pii']) for e in examples)} PII values -> {out}")  # type: ignore[arg-type]

"""Mask personal data (e-mail addresses, IBANs, card numbers, phone numbers) before a message is stored.

Each kind is found by a pattern and confirmed by a check where one exists (IBAN mod-97, card Luhn, phone numbers by
Google's libphonenumber metadata), so ordinary numbers (prices, dates, order numbers, product codes such as XR-200)
are left alone.
"""
from __future__ import annotations

import re

import phonenumbers
from django.conf import settings

# Any script: the local part and domain labels are word characters (\w is Unicode-aware) plus the usual punctuation.
EMAIL = re.compile(r"(?<![\w.%+!#$&'*/=?^`{|}~-])[\w.%+!#$&'*/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
# Country code, check digits, then 11-30 letters/digits, optionally grouped by single spaces or dashes.
IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}")
# 13-19 digits in any grouping (spaces, dashes, dots; one separator between digits); masked when the Luhn check passes.
CARD = re.compile(r"(?<![\w.+-])(?<!\d[ .-])\d(?:[ .-]?\d){12,18}(?![ .-]?\d)(?!\w)")
# International numbers (a leading + or 00) of any country: 7-15 digits after the sign.
PHONE_INTL = re.compile(r"(?<![\w+])(?:\+|\b00)\s?\(?\d(?:[\s.\-()]{0,2}\d){6,14}(?![\w-])(?![\s.-]?\d)")
# North-American shaped numbers, "(555) 123-4567", "555.123.4567": the shape alone says phone (libphonenumber
# would refuse a fictional 555 area code); dates (4-2-2) and product codes never have it.
PHONE_SHAPED = re.compile(r"(?<![\w.+-])(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])(?!\.\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters → 10..35, the number mod 97 is 1."""
    iban = re.sub(r"[ -]", "", iban).upper()
    if not (15 <= len(iban) <= 34) or not iban[:2].isalpha() or not iban.isalnum():
        return False
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


def _iban_mask(match: re.Match[str]) -> str:
    """The longest prefix of the candidate (ending on a whole word) that passes mod-97; the rest stays."""
    found = match.group(0)
    for end in range(len(found), 14, -1):
        head = found[:end]
        if head[-1] in " -" or (end < len(found) and found[end].isalnum()):
            continue  # only cut between words, never inside one
        if iban_valid(head):
            return "[iban]" + found[end:]
    return found


def _card_mask(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if luhn_valid(digits) else match.group(0)


def _phones_mask(text: str) -> str:
    """Numbers libphonenumber finds valid (and grouped as that country groups them) for the default region or, with a
    +, any region; then the shapes above. Grouping matters: "invoice 2024-000123" is a valid US number read loosely."""
    spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(
        text, settings.SUPPORT_PHONE_REGION, leniency=phonenumbers.Leniency.STRICT_GROUPING)]
    for start, end in reversed(spans):
        text = text[:start] + "[phone]" + text[end:]
    text = PHONE_INTL.sub("[phone]", text)
    return PHONE_SHAPED.sub("[phone]", text)


def text_mask(*, text: str) -> str:
    """The text with e-mails → [email], IBANs → [iban], card numbers → [card], phone numbers → [phone].

    1. E-mails first (their digits must not read as phone numbers).
    2. IBANs (mod-97), then card numbers (Luhn): both before phones, whose patterns would take their digits.
    3. Phone numbers last.
    """
    text = EMAIL.sub("[email]", text)
    text = IBAN.sub(_iban_mask, text)
    text = CARD.sub(_card_mask, text)
    return _phones_mask(text)

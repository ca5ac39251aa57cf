"""Mask personal data (e-mail addresses, card numbers, phone numbers) before a message is stored."""
from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes; masked only when the Luhn check passes.
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# A phone number: optional +, then 8-15 digits with spaces, dots, dashes or brackets between them.
# Product codes such as XR-200 (few digits) are left alone; a long bare order number would be masked too (safe side).
PHONE = re.compile(r"(?<![\w+])(?<!\d[\s.-])\+?\(?\d(?:[\s.\-()]{0,2}\d){7,14}(?!\w)(?![\s.-]\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_mask(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if luhn_valid(digits) else match.group(0)


def text_mask(*, text: str) -> str:
    """The text with e-mails → [email], card numbers → [card], phone numbers → [phone]."""
    text = EMAIL.sub("[email]", text)
    text = CARD.sub(_card_mask, text)
    return PHONE.sub("[phone]", text)

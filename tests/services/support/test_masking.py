from __future__ import annotations

from services.support.masking import text_mask


def test_emails_card_numbers_and_phone_numbers_are_masked() -> None:
    masked = text_mask(text="I am bob.smith@example.org, card 4111 1111 1111 1111, call me on +44 20 7946 0958.")
    assert masked == "I am [email], card [card], call me on [phone]."


def test_product_codes_short_numbers_and_non_card_digit_runs_are_kept() -> None:
    text = "My XR-200 broke after 12 days, order 2024-17, card-like 1234 5678 9012 3456 fails Luhn."
    assert text_mask(text=text) == text.replace("1234 5678 9012 3456", "1234 5678 9012 3456")
    assert text_mask(text="call (555) 123-4567 now") == "call [phone] now"

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from services.support.masking import iban_valid, luhn_valid, text_mask


def test_emails_card_numbers_and_phone_numbers_are_masked() -> None:
    masked = text_mask(text="I am bob.smith@example.org, card 4111 1111 1111 1111, call me on +44 20 7946 0958.")
    assert masked == "I am [email], card [card], call me on [phone]."


def test_product_codes_short_numbers_and_non_card_digit_runs_are_kept() -> None:
    text = "My XR-200 broke after 12 days, order 2024-17, card-like 1234 5678 9012 3456 fails Luhn."
    assert text_mask(text=text) == text.replace("1234 5678 9012 3456", "1234 5678 9012 3456")
    assert text_mask(text="call (555) 123-4567 now") == "call [phone] now"


@pytest.mark.parametrize("card", ["4111.1111.1111.1111", "4111-1111-1111-1111", "4111 1111 1111 1111", "4111111111111111",
                                  "3782 822463 10005", "5500-0000-0000-0004", "4111 1111.1111-1111"])
def test_card_numbers_in_any_grouping_are_masked(card: str) -> None:
    assert text_mask(text=f"my card is {card}.") == "my card is [card]."


@pytest.mark.parametrize("iban", ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "GB82 WEST 1234 5698 7654 32",
                                  "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300"])
def test_ibans_with_a_valid_checksum_are_masked_and_the_words_after_them_kept(iban: str) -> None:
    assert text_mask(text=f"pay to {iban} thanks") == "pay to [iban] thanks"
    assert text_mask(text=f"IBAN: {iban}.") == "IBAN: [iban]."


def test_an_iban_shape_with_a_wrong_checksum_is_kept() -> None:
    assert not iban_valid("DE88 3704 0044 0532 0130 00")
    assert text_mask(text="ref DE88370400440532013000 ok") == "ref DE88370400440532013000 ok"


@pytest.mark.parametrize("phone", ["+44 20 7946 0958", "+4915112345678", "0049 30 1234567", "(415) 555-2671", "415-555-2671",
                                   "415.555.2671", "415 555 2671", "+1 (415) 555-2671", "555.123.4567", "+33 1 42 68 53 00"])
def test_phone_numbers_in_common_formats_are_masked(phone: str) -> None:
    assert text_mask(text=f"call me on {phone} please") == "call me on [phone] please"


def test_national_numbers_follow_the_default_region(settings) -> None:  # noqa: ANN001
    settings.SUPPORT_PHONE_REGION = "GB"
    assert text_mask(text="ring 020 7946 0958 today") == "ring [phone] today"
    settings.SUPPORT_PHONE_REGION = "DE"
    assert text_mask(text="ring 0151 12345678 today") == "ring [phone] today"


@pytest.mark.parametrize("email", ["jürgen.müller@bücher.de", "用户@例子.广告", "δοκιμή@παράδειγμα.δοκιμή",
                                   "o'brien+shop@mail.example.co.uk", "иван@почта.рф"])
def test_email_addresses_in_any_script_are_masked(email: str) -> None:
    assert text_mask(text=f"write to {email} soon") == "write to [email] soon"


@pytest.mark.parametrize("text", [
    "The XR-200 costs 1299.00 EUR (was 1,499.99).",
    "Order 12345678 and order #20240117 arrived on 2026-12-02 at 10:30.",
    "Invoice 2024-000123, ticket 123-456-789, ref 12 34 56 78, SKU 4006381333931.",
    "Model QZ-77 v2.4.1 firmware 3.10.2026, 4 x 250 ml.",
])
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert text_mask(text=text) == text


# --- generated cases (Hypothesis, seeded): every grouping of a real card number is masked; ordinary numbers never ---


def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@hsettings(max_examples=150, derandomize=True, deadline=None)
@given(body=st.text("0123456789", min_size=15, max_size=15), prefix=st.sampled_from("3456"),
       seps=st.lists(st.sampled_from(["", " ", "-", "."]), min_size=15, max_size=15))
def test_any_grouping_of_a_luhn_valid_card_number_is_masked(body: str, prefix: str, seps: list[str]) -> None:
    digits = _luhn_complete(prefix + body[:14])
    card = "".join(d + s for d, s in zip(digits, seps + [""]))
    assert text_mask(text=f"card {card} thanks") == "card [card] thanks"


ORDINARY = st.one_of(
    st.builds(lambda a, b: f"{a}.{b:02d} EUR", st.integers(0, 99999), st.integers(0, 99)),  # prices
    st.builds(lambda y, m, d: f"{y}-{m:02d}-{d:02d}", st.integers(1990, 2100), st.integers(1, 12), st.integers(1, 28)),
    st.builds(lambda n: f"order #{n}", st.integers(1, 10**8)),  # order numbers up to 9 digits
    st.builds(lambda c, n: f"{c}-{n}", st.sampled_from(["XR", "QZ", "AB", "SKU"]), st.integers(1, 99999)),  # codes
    st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59)),  # times
)


@hsettings(max_examples=200, derandomize=True, deadline=None)
@given(words=st.lists(ORDINARY, min_size=1, max_size=4))
def test_prices_dates_order_numbers_and_product_codes_are_never_masked(words: list[str]) -> None:
    text = "Note: " + ", ".join(words) + "."
    assert text_mask(text=text) == text

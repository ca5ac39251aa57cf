"""Answer shaping: the sentences of a passage that answer the question."""
from __future__ import annotations

from services.support.shaping import passage_excerpt, sentences_split

GUIDE = ("The XR-200 is our compact travel speaker. It weighs 480 grams and fits in a jacket pocket. "
         "The battery lasts about 10 hours per charge at medium volume. A full charge takes 3 hours with the "
         "supplied USB-C cable. The speaker is splash-proof but should not be submerged. Pair it by holding the "
         "Bluetooth button for 5 seconds until the light blinks blue. Up to two phones can be paired at once, "
         "and the speaker remembers the last eight devices it was paired with.")


def test_a_passage_answer_is_the_sentences_that_answer() -> None:
    excerpt, cut = passage_excerpt(question="How long does the XR-200 battery last?", text=GUIDE, specific={"xr200"})
    assert cut and "10 hours per charge" in excerpt and "Bluetooth" not in excerpt
    assert len(excerpt.split()) < len(GUIDE.split()) / 2


def test_the_chosen_sentences_keep_the_passage_order() -> None:
    excerpt, _ = passage_excerpt(question="how do I pair the bluetooth button", text=GUIDE)
    assert excerpt.startswith("Pair it by holding the Bluetooth button")


def test_a_short_passage_is_its_own_answer() -> None:
    text = "Hold the reset button for 12 seconds. The light blinks amber."
    assert passage_excerpt(question="reset", text=text) == (text, False)


def test_sentences_split_at_ends_and_line_breaks_not_at_decimals() -> None:
    assert sentences_split(text="Version 2.5 is out. It is faster!\nNew line here") == [
        "Version 2.5 is out.", "It is faster!", "New line here"]

""""Add to knowledge base" in Chromium: the agent sees a pre-masked question and title to edit, and must confirm."""
from __future__ import annotations

import pytest

from tests.browser.conftest import SCREENSHOTS, login

pytestmark = pytest.mark.browser

QUESTION = "Hi I am Jo Smith, card 4111.1111.1111.1111 was charged twice, call +44 20 7946 0958"


def test_the_agent_edits_a_masked_question_and_title_and_must_confirm(asgi_server: str, browser_page, role_users) -> None:  # noqa: ANN001
    from apps.support.models import FaqEntry, KnowledgeBase, KnowledgeGap

    kb = KnowledgeBase.objects.create(name="default")
    gap = KnowledgeGap.objects.create(kb=kb, question=QUESTION, reason="low_confidence")
    page = browser_page
    login(page, asgi_server, "agent", "pw-agent")
    page.goto(asgi_server + "/support/")
    page.wait_for_selector("#console[data-state=live]")
    page.locator(f"#gaps li[data-id='{gap.pk}'] button.gap-open").click()
    form = page.locator("form.gap-add")
    question = form.locator("textarea[name=question]")
    assert question.input_value() == "Hi I am Jo Smith, card [card] was charged twice, call [phone]"
    assert "4111" not in page.locator("#gaps").inner_text()  # the list shows the gap masked again too
    assert "4111" not in form.locator("input[name=title]").input_value()

    question.fill("Why was my card charged twice?")
    form.locator("input[name=title]").fill("Charged twice")
    form.locator("textarea[name=answer]").fill("Double charges are refunded within 3 days.")
    form.locator("button[type=submit]").click()  # not confirmed yet
    error = form.locator(".gap-error")
    error.wait_for()
    page.wait_for_function("document.querySelector('.gap-error').textContent.includes('confirmed')")
    page.screenshot(path=str(SCREENSHOTS / "support-gap-add.png"), full_page=True)
    assert not FaqEntry.objects.exists()
    assert form.locator("textarea[name=question]").input_value() == "Why was my card charged twice?"  # nothing lost

    form.locator("button.secondary").click()  # cancel: the list is back, the gap still open
    page.locator(f"#gaps li[data-id='{gap.pk}'] button.gap-open").wait_for()
    gap.refresh_from_db()
    assert gap.status == KnowledgeGap.OPEN

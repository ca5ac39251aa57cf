"""The support desk live, in two browsers: a customer writes in the widget, an agent sees it, takes over and replies."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, login

pytestmark = pytest.mark.browser


@pytest.fixture
def two_pages() -> Iterator[tuple[object, object]]:
    """(agent page, customer page) in separate browser contexts: separate cookies, like two people."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium is not installed at {CHROMIUM}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pages = []
        for _ in range(2):
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(30000)
            pages.append(page)
        yield pages[0], pages[1]
        browser.close()


def test_a_customer_message_appears_live_in_the_console_and_the_agent_reply_reaches_the_widget(
        asgi_server: str, two_pages, role_users) -> None:  # noqa: ANN001
    agent, customer = two_pages
    login(agent, asgi_server, "agent", "pw-agent")
    agent.goto(asgi_server + "/support/")
    agent.wait_for_selector("#console[data-state=live]")

    customer.goto(asgi_server + "/support/widget/")
    customer.fill("#chat-text", "My QZ-77 router keeps blinking amber")
    customer.click("#chat-send")
    customer.wait_for_selector("#chat-messages li.bot")  # an empty KB: the bot says it hands over
    customer.wait_for_selector("#chat[data-state=live]")

    item = agent.locator("#conversations li", has_text="QZ-77 router keeps blinking")
    item.wait_for()  # pushed over the WebSocket, no reload
    item.click()
    agent.wait_for_selector("#detail:not([hidden]) #messages li.customer")
    agent.click("#take-over")
    agent.wait_for_selector("#detail[data-state=agent]")
    agent.fill("#reply-text", "Hello, this is Alex: hold the reset button for 12 seconds.")
    agent.click("#reply-send")

    reply = customer.locator("#chat-messages li.agent", has_text="hold the reset button for 12 seconds")
    reply.wait_for()
    agent.screenshot(path=str(SCREENSHOTS / "support-console.png"), full_page=True)
    customer.screenshot(path=str(SCREENSHOTS / "support-widget.png"), full_page=True)


def test_the_talk_to_a_person_button_hands_the_chat_to_the_agents(asgi_server: str, two_pages, role_users) -> None:  # noqa: ANN001
    agent, customer = two_pages
    login(agent, asgi_server, "agent", "pw-agent")
    agent.goto(asgi_server + "/support/")
    agent.wait_for_selector("#console[data-state=live]")
    customer.goto(asgi_server + "/support/widget/")
    customer.click("#chat-person")
    customer.locator("#chat-messages li.bot", has_text="connecting you with a member of our team").wait_for()
    agent.locator("#conversations li", has_text="talk to a person").wait_for()  # queued for the agents, live
    agent.locator("#conversations li", has_text="talk to a person").click()
    agent.locator("#detail-summary", has_text="Asked before a person got involved").wait_for()
    agent.fill("#detail-labels", "vip, billing")
    agent.click("#labels-save")
    agent.locator("#conversations li", has_text="billing, vip").wait_for()
    agent.fill("#conv-search", "talk to a person")
    agent.locator("#conversations li", has_text="talk to a person").wait_for()

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.core.live import heartbeat_publish
from tests.browser.conftest import SCREENSHOTS, login

pytestmark = pytest.mark.browser


def test_the_home_page_shows_heartbeats_pushed_over_the_websocket(asgi_server: str, browser_page, role_users) -> None:  # noqa: ANN001
    page = browser_page
    login(page, asgi_server, "analyst", "pw-analyst")
    page.wait_for_selector("#system-status[data-state=live]")
    page.wait_for_selector("#status-services li.ok")
    assert "Redis is reachable" in page.inner_text("#status-services")

    with ThreadPoolExecutor(1) as pool:  # outside Playwright's event-loop thread
        pool.submit(heartbeat_publish, sender="browser-test").result()
    page.wait_for_function("document.querySelector('#status-heartbeat').textContent.includes('browser-test')")
    assert page.get_attribute("#system-status", "data-heartbeats") == "1"
    # The analyst sees the sentiment app but not the support desk.
    assert page.locator("a[href='/sentiment/']").count() >= 1
    assert page.locator("a[href='/support/']").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)

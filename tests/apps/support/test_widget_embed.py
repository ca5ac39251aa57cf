"""The widget on the shop's own site: framed only by the allowed origins; the embed script points at the desk."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db


def test_without_allowed_origins_the_widget_cannot_be_framed(client, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_WIDGET_ORIGINS = []
    response = client.get("/support/widget/")
    assert response.status_code == 200 and response["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" not in response


def test_allowed_origins_may_frame_the_widget_and_no_other(client, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_WIDGET_ORIGINS = ["https://shop.example.com", "http://localhost:8080"]
    response = client.get("/support/widget/?embed=1&kb=shop")
    assert "X-Frame-Options" not in response
    assert response["Content-Security-Policy"] == "frame-ancestors 'self' https://shop.example.com http://localhost:8080"
    assert b'data-kb="shop"' in response.content and b"body > header" in response.content  # the embedded look


def test_the_embed_script_opens_the_desks_own_widget_page() -> None:
    script = (Path(__file__).resolve().parents[3] / "apps/support/static/support/embed.js").read_text(encoding="utf-8")
    assert '"/support/widget/?embed=1&kb="' in script and "new URL(script.src).origin" in script


def test_a_bad_origin_setting_is_refused_naming_the_variable(monkeypatch) -> None:  # noqa: ANN001
    import subprocess
    import sys

    env = {"SUPPORT_WIDGET_ORIGINS": "shop.example.com/path", "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], capture_output=True, text=True,
                         env={**__import__("os").environ, **env}, cwd=Path(__file__).resolve().parents[3])
    assert out.returncode != 0 and "SUPPORT_WIDGET_ORIGINS" in out.stderr

"""Support desk fixtures: a tiny base encoder registered as the default, and a small fixture knowledge base."""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.services.conftest import tiny_base_write

FAQ_CSV = """question,answer,intent,url,title
How do I reset my password?,Open Settings > Security and choose Reset password.,password_reset,https://help.example.com/password,Reset your password
What is your refund policy?,Refunds are paid within 30 days of the return arriving.,refund,https://help.example.com/refunds,Refunds
How long does the XR-200 battery last?,The XR-200 battery lasts about 10 hours per charge.,battery,https://help.example.com/xr200,XR-200 battery
Do you ship abroad?,We ship to 40 countries; see the shipping page.,shipping,https://help.example.com/shipping,Shipping
"""

MANUAL_MD = """# Router manual

Unpack the router and connect the power cable.

## Factory reset

Hold the reset button of the QZ-77 router for 12 seconds until the light blinks amber.

## Warranty

The warranty covers manufacturing defects for 24 months.
"""


def run_json(*args: str, **opts: object) -> dict:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **opts)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture
def tiny_encoder(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    """A 2-layer random BERT registered as the default base; support indexes go under tmp_path."""
    from services.registry.serving import serving_reset

    settings.REGISTRY_DIR = tmp_path / "registry"
    settings.VAR_DIR = tmp_path / "var"
    settings.SUPPORT_EMBED_TASK = ""
    base = tiny_base_write(tmp_path / "tiny-base")
    run_json("registry_add_base", name="tiny-bert", path=str(base), default=True)
    serving_reset()
    yield base
    serving_reset()


@pytest.fixture
def kb_files(tmp_path: Path) -> dict[str, Path]:
    faq = tmp_path / "faq.csv"
    faq.write_text(FAQ_CSV, encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "router.md").write_text(MANUAL_MD, encoding="utf-8")
    (docs / "terms.txt").write_text("Terms of service.\n\nOrders above 50 euros ship free of charge.\n", encoding="utf-8")
    return {"faq": faq, "docs": docs}


@pytest.fixture
def fixture_kb(tiny_encoder: Path, kb_files: dict[str, Path]) -> dict[str, Path]:
    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    return kb_files

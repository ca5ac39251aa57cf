"""Schemathesis over every API of /api/schema/, as each role, the shop's token and an anonymous customer."""
from __future__ import annotations

import json

import pytest

from pipelines.fuzz_http import error_shape_problem, http_campaign, schema_load, world_create

pytestmark = pytest.mark.django_db


def test_no_fuzzed_request_answers_a_5xx_or_breaks_the_schema_or_the_error_shape(identities: dict) -> None:
    known = world_create(identities=identities)
    schema = schema_load(client=identities["admin"].client)
    report = http_campaign(identities=identities, schema=schema, cases=240, seed=0, known=known)
    assert report["failures"] == [], json.dumps(report["failures"], indent=1, ensure_ascii=False)[:20000]
    assert report["http_5xx"] == 0 and report["by_status"].get("5xx", 0) == 0
    # every operation was reached by someone let in, and the fuzz really got past validation sometimes
    assert report["cases"] >= 300 and report["by_status"]["2xx"] >= 50 and report["by_status"]["4xx"] >= 100
    assert report["queued"] >= 1  # a retrain or rebuild was asked for, and recorded instead of sent


def test_a_word_where_a_route_wants_an_id_answers_404_in_the_one_error_shape(identities: dict) -> None:
    path = "/api/sentiment/alerts/abc/acknowledge"
    answer = identities["analyst"].client.post(path, {}, content_type="application/json")
    assert answer.status_code == 404 and answer["Content-Type"] == "application/json"
    assert answer.json() == {"error": "not_found", "detail": f"No API endpoint at {path}."}
    page = identities["analyst"].client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")  # pages keep Django's page


@pytest.mark.parametrize(("status", "content_type", "body", "wrong"), [
    (404, "text/html; charset=utf-8", b"<h1>Not Found</h1>", "not JSON"),
    (400, "application/json", b"{\"detail\": \"bad\"}", "not {error, detail"),
    (400, "application/json", b"{\"error\": \"invalid\", \"detail\": \"x\", \"field\": \"a\"}", "without the list"),
    (400, "application/json", b"{\"error\": \"invalid\", \"detail\": \"x\", \"trace\": \"...\"}", "not {error, detail"),
    (403, "application/json", b"[1]", "not {error, detail"),
])
def test_the_error_shape_check_flags_what_is_not_the_one_shape(status: int, content_type: str, body: bytes,
                                                                wrong: str) -> None:
    assert wrong in error_shape_problem(status=status, content_type=content_type, body=body)


def test_the_error_shape_check_passes_the_one_shape_and_non_errors() -> None:
    good = json.dumps({"error": "invalid", "detail": "k: bad", "field": "k",
                       "errors": [{"field": "k", "detail": "bad"}]})
    assert error_shape_problem(status=400, content_type="application/json", body=good.encode()) is None
    assert error_shape_problem(status=200, content_type="text/html", body=b"<p>fine</p>") is None

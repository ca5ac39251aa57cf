"""support_eval on the small fixture KB: the last-line JSON contract, nulls for missing gold, bad rows named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from tests.helpers import run_json

pytestmark = pytest.mark.django_db


def test_the_eval_prints_recall_mrr_intent_accuracy_and_handoff_rate(fixture_kb, settings, tmp_path: Path) -> None:  # noqa: ANN001
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    data = tmp_path / "eval.jsonl"
    rows = [
        {"question": "What is your refund policy?", "answer": "Refunds are paid within 30 days of the return arriving.",
         "intent": "refund"},
        {"question": "xr200 battery life", "answer": "The XR-200 battery lasts about 10 hours per charge.", "intent": "battery"},
        {"question": "Can I pay with bitcoin?", "intent": "payment"},
        {"question": "no gold here"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = run_json("support_eval", data=str(data))
    assert set(result) == {"recall_at_1", "recall_at_3", "mrr", "intent_accuracy", "in_scope_accuracy", "oos_recall",
                           "handoff_rate", "n"}
    assert result["n"] == 3
    assert result["recall_at_1"] == result["recall_at_3"] == result["mrr"] == 1.0
    assert result["intent_accuracy"] == pytest.approx(2 / 3, abs=1e-3)  # no FAQ has the intent "payment"
    assert result["handoff_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert result["in_scope_accuracy"] == pytest.approx(2 / 3, abs=1e-3) and result["oos_recall"] is None


def test_out_of_scope_questions_are_caught_when_handed_off(fixture_kb, settings, tmp_path: Path) -> None:  # noqa: ANN001
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    data = tmp_path / "clinc.csv"
    data.write_text("question,intent\n"
                    "What is your refund policy?,refund\n"
                    "How do I reset my password?,refund\n"  # in scope, wrong intent
                    "Can I pay with bitcoin?,oos\n"  # nothing in the KB: handed off, caught
                    "What is your refund policy please?,oos\n"  # answered: an out-of-scope question missed
                    "Can I talk to a person?,oos\n",  # a handoff of any kind counts as caught
                    encoding="utf-8")
    result = run_json("support_eval", data=str(data))
    assert result["in_scope_accuracy"] == 0.5
    assert result["oos_recall"] == pytest.approx(2 / 3, abs=1e-3)


def test_metrics_without_gold_are_null_and_unusable_files_are_refused(fixture_kb, tmp_path: Path) -> None:  # noqa: ANN001
    data = tmp_path / "eval.csv"
    data.write_text("question,intent\nHow do I reset my password?,password_reset\n", encoding="utf-8")
    result = run_json("support_eval", data=str(data), kb="default")
    assert result["recall_at_1"] is None and result["mrr"] is None and result["intent_accuracy"] == 1.0 and result["n"] == 1
    (tmp_path / "bad.csv").write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(CommandError, match="bad.csv:1"):
        run_json("support_eval", data=str(tmp_path / "bad.csv"))
    with pytest.raises(CommandError, match="No knowledge base"):
        run_json("support_eval", data=str(data), kb="nosuch")

"""`bench support`'s cross-encoder paths (pipelines/bench_support.py) on the tiny base: what its figures stand for."""
from __future__ import annotations

import pytest
import torch

from services.support.answering import question_answer
from tests.apps.support.test_rerank import shop_kb  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)  # the runtimes resolve the champion on their batchers' threads

QUESTIONS = ["How do I replace the screen?", "Is the battery under warranty?", "screen warranty please"]


def test_the_bench_scores_the_same_candidates_served_merged_and_as_before_and_keeps_the_plain_path_plain(
        shop_kb, settings) -> None:  # noqa: ANN001, F811
    from pipelines.bench_support import _CrossEncoderPaths

    settings.SUPPORT_RERANK_TOP = 4
    settings.SUPPORT_AMBIGUITY_MARGIN = 0.0
    ce = _CrossEncoderPaths(kb=shop_kb, quiet=True)  # registers a quickly trained `rerank` version: the champion
    try:
        assert ce.adapter.startswith("rerank v1: lora r16 + 2-label head, quickly trained")
        for question in QUESTIONS:
            ce.answer(question, before=False)
            ce.answer(question, before=True)
        out = ce.results()
        # The plain path (the bench's existing keys) has no learned signal, as without a champion.
        with ce.without():
            plain = question_answer(kb=shop_kb, text=QUESTIONS[0])
        settings.SUPPORT_RERANK_TOP = 0
        unlearned = question_answer(kb=shop_kb, text=QUESTIONS[0])
        assert [(h.item.id, h.score) for h in plain.hits] == [(h.item.id, h.score) for h in unlearned.hits]
    finally:
        ce.close()
    assert len(ce.times["after"]) == len(ce.times["before"]) == len(ce.times["after_call"]) == len(QUESTIONS)
    assert out["cross_encoder_pairs"] == 4 and out["cross_encoder_pair_tokens_mean"] > 5
    engine = "torch" if torch.cuda.is_available() else "onnxruntime"  # ONNX Runtime is the CPU's default engine
    assert out["cross_encoder_serving"] == f"merged copy, float32, {engine}"
    # Served from the merged copy, the champion scores the same candidates as on the shared base.
    assert out["cross_encoder_top1_agreement"] == 1.0 and out["cross_encoder_max_abs_diff"] < 1e-4
    assert 0 < out["cross_encoder_call_p50_ms"] <= out["cross_encoder_p99_ms"]
    settings.SUPPORT_RERANK_TOP = 4
    again = _CrossEncoderPaths(kb=shop_kb, quiet=True)  # a later run reuses the registered version
    again.close()
    assert again.adapter == ce.adapter

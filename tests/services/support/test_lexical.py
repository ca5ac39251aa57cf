from __future__ import annotations

from services.support.lexical import LexicalIndex, ranks_fuse, text_tokens


def test_product_codes_match_with_or_without_their_dash() -> None:
    index = LexicalIndex(ids=[1, 2], texts=["The XR-200 battery lasts 10 hours", "Refund policy"])
    assert index.search(text="xr200", k=2)[0][0] == 1
    assert index.search(text="XR 200 battery", k=2)[0][0] == 1
    assert index.search(text="unknown words", k=2) == []
    assert "xr200" in text_tokens(text="XR-200")


def test_reciprocal_rank_fusion_rewards_items_both_rankings_agree_on() -> None:
    fused = ranks_fuse(rankings=[[1, 2, 3], [2, 3]])
    assert [doc for doc, _ in fused] == [2, 3, 1]

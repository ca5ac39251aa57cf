"""Behaviour sources, merged candidates and the learned ranker on small fixtures (Django-free, rows are the keys)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.errors import SuiteError
from services.recommender.behaviour import FEATURES, SourceConfig, behaviour_fit, meta_from_arrays
from services.recommender.learned import MatrixText, Ranker, RankerConfig, ranker_fit, rank_candidates, user_candidates
from services.recommender.ranking import Interaction

DAY = 86400.0
A, B, A_TWIN, POPULAR, TENT, NEW_TENT = 0, 1, 2, 3, 4, 5
PAIRS = 30  # text-twin pairs: items 10 + 2i and 11 + 2i have nearly the same text
FILLER = 10 + 2 * PAIRS  # 20 items each bought once, after A and B
N_ITEMS = FILLER + 20


def text_matrix() -> np.ndarray:
    """Unit vectors: A and B unrelated, A_TWIN near A, NEW_TENT near TENT, each pair's two items near each other."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(N_ITEMS, 64))
    base[A_TWIN] = base[A] + 0.1 * rng.normal(size=64)
    base[NEW_TENT] = base[TENT] + 0.1 * rng.normal(size=64)
    for i in range(PAIRS):
        base[11 + 2 * i] = base[10 + 2 * i] + 0.1 * rng.normal(size=64)
    return (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)


def histories() -> dict[str, list[Interaction]]:
    """Users who buy A then B (half go on to an item of their own), users who view a popular item, buy one item then its text twin."""
    out: dict[str, list[Interaction]] = {}
    for u in range(20):
        out[f"ab{u}"] = [Interaction(A, "purchase", 100 * DAY + u), Interaction(B, "purchase", 101 * DAY + u)]
        out[f"abx{u}"] = [Interaction(A, "purchase", 100 * DAY + u), Interaction(B, "purchase", 101 * DAY + u),
                          Interaction(FILLER + u, "purchase", 102 * DAY + u)]
    for i in range(PAIRS):
        out[f"twin{i}"] = [Interaction(POPULAR, "view", 90 * DAY + i), Interaction(10 + 2 * i, "purchase", 100 * DAY + i),
                           Interaction(11 + 2 * i, "purchase", 101 * DAY + i)]
    out["a-twin-fan"] = [Interaction(A_TWIN, "view", 50 * DAY)]
    return out


def meta_of():  # noqa: ANN201
    categories = ["gifts"] * N_ITEMS
    created = np.full(N_ITEMS, 0.0)
    created[NEW_TENT] = 105 * DAY  # created after every event: a brand-new item
    return meta_from_arrays(categories=categories, prices=np.full(N_ITEMS, 10.0), created=created), created


def test_next_item_transitions_point_from_a_to_b_and_decay_with_age() -> None:
    model = behaviour_fit(histories=histories(), keys=range(N_ITEMS))
    assert model.cooc_ids[A][0] == B and model.cooc_scores[A][0] > 0
    assert model.popular_rows[0] in (A, B)  # bought by 40 users each
    old = {"u": [Interaction(A, "purchase", 0.0), Interaction(B, "purchase", 1.0)],
           "v": [Interaction(A, "purchase", 300 * DAY), Interaction(A_TWIN, "purchase", 300 * DAY + 1)]}
    decayed = behaviour_fit(histories=old, keys=range(N_ITEMS), config=SourceConfig(half_life_days=30))
    b_score = decayed.cooc_scores[A][list(decayed.cooc_ids[A]).index(B)]
    twin_score = decayed.cooc_scores[A][list(decayed.cooc_ids[A]).index(A_TWIN)]
    assert twin_score > 100 * b_score  # ten half-lives older


def test_ease_finds_items_bought_by_the_same_users_and_is_skipped_for_big_catalogues() -> None:
    model = behaviour_fit(histories=histories(), keys=range(N_ITEMS))
    assert B in model.ease_ids[A][:2]
    skipped = behaviour_fit(histories=histories(), keys=range(N_ITEMS), config=SourceConfig(ease_max_items=10))
    assert skipped.ease_ids.shape == (N_ITEMS, 0)


def test_trending_follows_recent_events_and_new_follows_creation() -> None:
    hist = {"old": [Interaction(A, "purchase", 0.0)] * 1 + [Interaction(A, "purchase", 1.0 + n) for n in range(9)],
            "now": [Interaction(B, "view", 100 * DAY)]}
    created = np.full(N_ITEMS, np.nan)
    created[NEW_TENT] = 100 * DAY + 10  # after B's first event
    model = behaviour_fit(histories=hist, keys=range(N_ITEMS), created=created)
    assert model.popular_rows[0] == A and model.trending_rows[0] == B
    assert model.new_rows[0] == NEW_TENT


def test_not_interested_events_are_no_history() -> None:
    model = behaviour_fit(histories={"u": [Interaction(A, "not_interested", 1.0), Interaction(B, "not_interested", 2.0)]},
                          keys=range(N_ITEMS))
    assert model.n_events == 0 and model.cooc_ids[A][0] == -1


def test_the_config_names_a_bad_field() -> None:
    with pytest.raises(SuiteError) as caught:
        SourceConfig(window=0)
    assert caught.value.field == "window"
    with pytest.raises(SuiteError) as caught:
        RankerConfig(valid_share=1.5)
    assert caught.value.field == "valid_share"


@pytest.fixture(scope="module")
def trained() -> tuple:
    meta, created = meta_of()
    text = MatrixText(text_matrix())
    ranker = ranker_fit(histories=histories(), keys=range(N_ITEMS), text=text, meta_of=meta, created=created,
                        config=RankerConfig(min_rows_leaf=2, valid_share=0.3))
    model = behaviour_fit(histories=histories(), keys=range(N_ITEMS), created=created)
    return ranker, model, text, meta


def ranked(trained: tuple, history: list[Interaction], ranker: Ranker | None = "trained") -> list[int]:  # type: ignore[assignment]
    r, model, text, meta = trained
    scored = user_candidates(model=model, history=history, text=text, meta_of=meta, now=106 * DAY,
                             exclude={i.item for i in history})
    scores = rank_candidates(scored=scored, ranker=r if ranker == "trained" else ranker)
    return [int(scored.keys[n]) for n in np.lexsort((scored.keys, -scores))]


def test_behaviour_beats_text_when_users_buy_a_then_b(trained: tuple) -> None:
    history = [Interaction(A, "purchase", 105 * DAY)]
    assert ranked(trained, history)[0] == B
    assert ranked(trained, history, ranker=None)[0] == A_TWIN  # the old formula only sees the text


def test_text_beats_behaviour_for_a_new_item(trained: tuple) -> None:
    history = [Interaction(TENT, "purchase", 105 * DAY)]  # nobody else bought the tent: no behaviour to follow
    assert ranked(trained, history)[0] == NEW_TENT


def test_the_ranker_learns_from_both_signals_and_beats_the_formula_on_held_out_users(trained: tuple) -> None:
    ranker = trained[0]
    assert ranker.metrics["ndcg_at_k"] >= ranker.metrics["formula_ndcg_at_k"]
    assert ranker.metrics["importance"]["text"] > 0 and ranker.metrics["importance"]["cooc"] + \
        ranker.metrics["importance"]["ease"] > 0


def test_the_ranker_saved_and_reloaded_scores_the_same_and_a_tampered_file_is_refused(trained: tuple,
                                                                                   tmp_path: Path) -> None:
    ranker, model, text, meta = trained
    ranker.save(tmp_path / "r")
    again = Ranker.load(tmp_path / "r")
    scored = user_candidates(model=model, history=[Interaction(A, "purchase", 105 * DAY)], text=text, meta_of=meta,
                             now=106 * DAY)
    assert np.allclose(ranker.scores(scored.features), again.scores(scored.features))
    assert again.metrics == ranker.metrics and scored.features.shape[1] == len(FEATURES)
    (tmp_path / "r" / "model.txt").write_text("tree\n", encoding="utf-8")
    with pytest.raises(SuiteError):
        Ranker.load(tmp_path / "r")


def test_reasons_name_the_strongest_feature(trained: tuple) -> None:
    ranker, model, text, meta = trained
    scored = user_candidates(model=model, history=[Interaction(A, "purchase", 105 * DAY)], text=text, meta_of=meta,
                             now=106 * DAY, exclude={A})
    reasons = dict(zip(scored.keys.tolist(), ranker.reasons(scored.features)))
    assert reasons[B] == "together"
    assert scored.via["cooc"][list(scored.keys).index(B)] == A

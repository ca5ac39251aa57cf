"""recommender_eval with the packaged MiniLM: on shoppers with one theme each, the tuned pipeline beats popularity."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from tests.helpers import run_json

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

THEMES = {
    "outdoor": ["tent", "sleeping bag", "camping stove", "head torch", "hiking boots", "rain jacket", "trekking poles",
                "water filter", "camping chair", "backpack", "compass", "insect repellent"],
    "kitchen": ["frying pan", "chef knife", "cutting board", "saucepan", "kettle", "toaster", "blender", "oven gloves",
                "mixing bowl", "whisk", "colander", "coffee grinder"],
    "baby": ["baby bottle", "nappies", "pram", "baby monitor", "cot mattress", "teething ring", "bibs", "baby wipes",
             "high chair", "changing mat", "baby sling", "rattle"],
}


def shopper_files(folder: Path, *, users: int = 45, seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    items_path, events_path = folder / "items.csv", folder / "interactions.csv"
    with items_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "title", "description"])
        for theme, names in THEMES.items():
            for n, name in enumerate(names):
                writer.writerow([f"{theme}-{n}", name.title(), f"A {name} from our {rng.choice(['new', 'classic', 'budget'])} range"])
    with events_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "event", "timestamp"])
        for u in range(users):
            theme = list(THEMES)[u % 3]
            for day, n in enumerate(rng.sample(range(12), 5)):
                writer.writerow([f"u{u}", f"{theme}-{n}", "purchase", f"2026-10-{day + 1:02d}T09:00:00Z"])
    return items_path, events_path


def test_the_tuned_minilm_pipeline_beats_popularity(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from services.registry.serving import serving_reset
    from services.registry.versions import base_default_ensure

    settings.VAR_DIR = tmp_path / "var"
    settings.REGISTRY_DIR = tmp_path / "registry"
    assert base_default_ensure().name == "all-minilm-l6-v2"
    serving_reset()
    items, interactions = shopper_files(tmp_path)
    result = run_json("recommender_eval", items=str(items), interactions=str(interactions), k=5, epochs=1, no_progress=True)
    print("EVAL-MINILM", result)
    assert result["n_users"] == 45
    assert result["ndcg_at_k"] > result["popularity_ndcg_at_k"] + 0.1
    assert result["recall_at_k"] > result["popularity_recall_at_k"]

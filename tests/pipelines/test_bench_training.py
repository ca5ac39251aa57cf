"""python -m pipelines.bench training: both recipes on the same rows, a tiny BERT on a tiny devdata folder."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipelines.bench_training import csv_rows_write, training_bench
from tests.pipelines.test_quality import devdata_write
from tests.services.conftest import ITEM_WORDS, tiny_base_write

RETAIL_HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]


def retail_write(root: Path, customers: int = 40) -> None:
    """Invoices shaped as UCI Online Retail: each customer buys products in a chain (k, k+1, ...), one per invoice."""
    rng = random.Random(3)
    start = datetime(2011, 1, 3, 9, 0)
    rows, invoice = [], 536365
    for customer in range(customers):
        k = rng.randrange(len(ITEM_WORDS))
        for step in range(6):
            code = str(85000 + (k + step) % len(ITEM_WORDS))
            title = f"{ITEM_WORDS[(k + step) % len(ITEM_WORDS)].upper()} GIFT SET"
            at = start + timedelta(days=customer, hours=step)
            rows.append([str(invoice), code, title, "2", at.strftime("%Y-%m-%d %H:%M:%S"), "1.25", str(12000 + customer), "UK"])
            invoice += 1
    csv_rows_write(root / "online_retail" / "online_retail.csv", RETAIL_HEADER, rows)


@pytest.mark.django_db
def test_both_recipes_train_on_the_same_rows_and_the_figures_compare(tmp_path: Path) -> None:
    base = tiny_base_write(tmp_path / "base")
    devdata = devdata_write(tmp_path / "devdata")
    retail_write(devdata)
    result = training_bench(rows=80, pairs=150, epochs=1, base=str(base), devdata=devdata, quiet=True)
    assert result["rows"] == 80 and 20 <= result["pairs_n"] <= 150 and result["epochs"] == 1
    for kind, key in (("classification", "macro_f1"), ("pairs", "mrr")):
        runs = result[kind]
        current, new = runs["current"], runs["new"]
        for run in (current, new):
            assert run["examples_per_second"] > 0 and run["steps"] >= 1 and run["wall_seconds"] > 0
            assert 0.0 <= run[key] <= 1.0
        assert current["adapted_from_layer"] == 0 and current["cached_lower_layers"] is False  # every layer, as before
        assert runs["speedup"] == round(new["examples_per_second"] / current["examples_per_second"], 2)
        assert runs["wall_ratio"] == round(current["wall_seconds"] / new["wall_seconds"], 2)
    assert "base_mrr" in result["pairs"]["new"] and result["pairs"]["current"]["pairs_per_epoch"] >= 1


def test_it_skips_with_a_message_when_the_devdata_is_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = training_bench(rows=80, pairs=150, epochs=1, base=None, devdata=tmp_path / "nowhere", quiet=False)
    assert "skipped" in result and str(tmp_path / "nowhere") in result["skipped"]
    assert capsys.readouterr().out.startswith("skipped: ")

"""Turn UCI "Online Retail" invoice lines into the recommender's items and interactions files (for recommender_eval).

    python -m pipelines.recommender_retail ../shared/devdata/online_retail/online_retail.csv --out var/retail
    python manage.py recommender_eval --items var/retail/items.csv --interactions var/retail/interactions.csv --no-tune

Items: StockCode as id, Description (underscores as spaces) as title, the median UnitPrice as price, no category (the
file has none). Interactions: one purchase per (customer, product, invoice) with the invoice's time; lines without
a customer, cancellations (invoice C...) and non-positive quantities are left out.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path


def retail_convert(*, source: Path, out: Path) -> dict[str, int]:
    """Write out/items.csv and out/interactions.csv; returns counts."""
    titles: dict[str, str] = {}
    prices: dict[str, list[float]] = {}
    events: dict[tuple[str, str, str], str] = {}
    with source.open(newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            invoice, code, customer = row["InvoiceNo"].strip(), row["StockCode"].strip(), row["CustomerID"].strip()
            try:
                quantity, price = float(row["Quantity"]), float(row["UnitPrice"])
            except ValueError:
                continue
            title = row["Description"].replace("_", " ").strip()
            if title and code not in titles:
                titles[code] = title
            if price > 0:
                prices.setdefault(code, []).append(price)
            if not customer or invoice.startswith("C") or quantity <= 0 or not code:
                continue
            at = datetime.strptime(row["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
            events.setdefault((customer, code, invoice), at.isoformat())
    out.mkdir(parents=True, exist_ok=True)
    used = {code for _, code, _ in events}
    with (out / "items.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "title", "price"])
        for code in sorted(used):
            writer.writerow([code, titles.get(code, code), statistics.median(prices[code]) if code in prices else ""])
    with (out / "interactions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "event", "timestamp"])
        for (customer, code, _), at in sorted(events.items(), key=lambda kv: (kv[1], kv[0])):
            writer.writerow([customer, code, "purchase", at])
    return {"items": len(used), "interactions": len(events), "users": len({c for c, _, _ in events})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="online_retail.csv")
    parser.add_argument("--out", type=Path, required=True, help="folder for items.csv and interactions.csv")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"{args.source}: no such file", file=sys.stderr)
        return 2
    print(json.dumps(retail_convert(source=args.source, out=args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

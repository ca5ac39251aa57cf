"""Catalogue and interaction files (CSV with a header row, or JSONL): rows with their line numbers, Django-free.

items: item_id (or id),title[,description,category,tags,price,in_stock,updated_at]
interactions: user_id,item_id[,event (or type)][,timestamp][,event_id]
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from services.errors import SuiteError

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


def rows_read(*, path: Path) -> Iterator[tuple[int, object]]:
    """(line number, row) for each data row; a row that cannot be parsed comes as (line, error message)."""
    if not path.is_file():
        raise SuiteError(f"{path}: no such file.", field="path")
    with path.open(encoding="utf-8-sig", newline="") as f:
        if path.suffix.lower() in JSONL_SUFFIXES:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, f"not valid JSON ({exc.msg})"
            return
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise SuiteError(f"{path}: empty file (a header row is required).", field="path")
        for row in reader:
            if None in row:  # more cells than header columns
                yield reader.line_num, f"{len(reader.fieldnames) + len(row[None])} cells for {len(reader.fieldnames)} columns"
                continue
            yield reader.line_num, {k.strip(): (v if v is None else v.strip()) for k, v in row.items() if k}


def lines_count(*, path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)

"""Labelled texts and (query, item) pairs for training, read by the shared tabular reader (services.tabular)."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.tabular import STOP, Row, Table, TabularError, table_open

# A data file that cannot be used as it is: the reader's error, so that every message names the file and line alike.
DatasetError = TabularError


@dataclass(frozen=True)
class LabelledData:
    texts: list[str]
    labels: list[str]
    path: str


@dataclass(frozen=True)
class PairData:
    queries: list[str]
    items: list[str]
    path: str


def _cell(table: Table, row: Row, column: str) -> str:
    """The row's value in `column` as stripped text; an empty or non-text value is refused (STOP: raised)."""
    value = row.values.get(column.strip().lower())
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        if value is not None:
            table.refuse(row.line, f"{column!r} must be text or a number, found {type(value).__name__}.")
        value = ""
    text = str(value).strip()
    if not text:
        table.refuse(row.line, f"empty {column!r}.")
    return text


def _columns_read(path: str | Path, columns: tuple[str, str]) -> Iterator[tuple[int, str, str]]:
    """(line, first value, second value) of every row, by the shared reader's rules with the STOP policy."""
    table = table_open(path=path, policy=STOP, required=columns)
    for row in table:
        yield row.line, _cell(table, row, columns[0]), _cell(table, row, columns[1])


def dataset_read(*, path: str | Path, text_col: str = "text", label_col: str = "label") -> LabelledData:
    """Read labelled texts from a tabular file (services.tabular: .csv, .tsv, .jsonl, .ndjson).

    1. Read every row; the first bad one (missing column, empty value, bad line) raises, naming file and line.
    2. Refuse a file without rows, and any label seen only once (it can be neither learned nor validated).
    """
    file = Path(path)
    texts: list[str] = []
    labels: list[str] = []
    first_line: dict[str, int] = {}
    for line, text, label in _columns_read(file, (text_col, label_col)):
        texts.append(text)
        labels.append(label)
        first_line.setdefault(label, line)
    if not texts:
        raise DatasetError(f"{file.name}: a header but no rows.", field="file")
    counts = Counter(labels)
    singles = [label for label, count in counts.items() if count == 1]
    if singles:
        label = min(singles, key=first_line.__getitem__)
        raise DatasetError(
            f"{file.name}:{first_line[label]}: label {label!r} occurs only once; "
            "each label needs at least two examples (add more or remove it).",
            field="file",
        )
    if len(counts) < 2:
        raise DatasetError(f"{file.name}: only one label ({labels[0]!r}); a classifier needs at least two.",
                           field="file")
    return LabelledData(texts=texts, labels=labels, path=str(file))


def pairs_read(*, path: str | Path, query_col: str = "query", item_col: str = "item") -> PairData:
    """Read (query, item) pairs from a tabular file, with the same checks per line as `dataset_read`."""
    file = Path(path)
    queries: list[str] = []
    items: list[str] = []
    for _, query, item in _columns_read(file, (query_col, item_col)):
        queries.append(query)
        items.append(item)
    if not queries:
        raise DatasetError(f"{file.name}: a header but no rows.", field="file")
    return PairData(queries=queries, items=items, path=str(file))


def data_fingerprint(*, texts: list[str], labels: list[str]) -> str:
    """A sha256 of the rows that ignores their order: the same data always gives the same fingerprint."""
    if len(texts) != len(labels):
        raise DatasetError(f"{len(texts)} texts but {len(labels)} labels; they must pair up one to one.")
    rows = sorted(json.dumps([text, str(label)], ensure_ascii=False) for text, label in zip(texts, labels))
    digest = hashlib.sha256(f"rows={len(rows)}\n".encode())
    for row in rows:
        digest.update(row.encode("utf-8") + b"\n")
    return digest.hexdigest()

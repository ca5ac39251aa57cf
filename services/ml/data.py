"""Reading labelled texts and (query, item) pairs from CSV or JSON Lines, with errors that name file and line."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.errors import SuiteError

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".json-lines")


class DatasetError(SuiteError):
    """A data file that cannot be used as it is; the message names the file and, where it can, the line."""


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


def _decode(path: Path) -> str:
    """The file's text; non-UTF-8 bytes are reported with the line they are on."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, offset) + 1
        raise DatasetError(
            f"{path.name}, line {line}: bytes that are not UTF-8 ({raw[offset:offset + 4]!r}); save the file as UTF-8.",
            field="file",
        ) from None


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, {column: non-empty string}) for each row; every problem raises a DatasetError.

    1. Pick the format from the suffix (.csv, .jsonl, .json-lines).
    2. Decode as UTF-8; refuse an empty file.
    3. Check the columns (CSV header, or each JSON object) and that no value is empty.
    """
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise DatasetError(f"{path.name}: unsupported file type {suffix or '(none)'!r}; use .csv or .jsonl.", field="file")
    if not path.is_file():
        raise DatasetError(f"{path}: no such file.", field="file")
    text = _decode(path)
    if not text.strip():
        raise DatasetError(f"{path.name} is empty; it needs a header (CSV) or JSON objects, one per line.", field="file")
    if suffix in CSV_SUFFIXES:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        present = [name for name in (reader.fieldnames or []) if name]
        for column in columns:
            if column not in present:
                raise DatasetError(
                    f"{path.name}, line 1: no column {column!r} in the header (columns present: {', '.join(present) or 'none'}).",
                    field="file",
                )
        last_line = reader.line_num
        for record in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any((value or "").strip() for key, value in record.items() if isinstance(value, str)):
                continue  # a blank line
            yield line, {column: _value(path, line, column, record.get(column)) for column in columns}
        return
    for line, raw_line in enumerate(text.splitlines(), start=1):
        if not raw_line.strip():
            continue
        try:
            record = json.loads(raw_line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path.name}, line {line}: not valid JSON ({exc.msg} at column {exc.colno}).", field="file") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path.name}, line {line}: expected a JSON object, found {type(record).__name__}.", field="file")
        for column in columns:
            if column not in record:
                raise DatasetError(
                    f"{path.name}, line {line}: no key {column!r} (keys present: {', '.join(map(str, record)) or 'none'}).",
                    field="file",
                )
        yield line, {column: _value(path, line, column, record[column]) for column in columns}


def _value(path: Path, line: int, column: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        if value is not None:
            raise DatasetError(f"{path.name}, line {line}: {column!r} must be text or a number, found {type(value).__name__}.", field="file")
        value = ""
    text = str(value).strip()
    if not text:
        raise DatasetError(f"{path.name}, line {line}: empty {column!r}.", field="file")
    return text


def dataset_read(*, path: str | Path, text_col: str = "text", label_col: str = "label") -> LabelledData:
    """Read labelled texts from a .csv or .jsonl file.

    1. Read every row (see `_rows` for the checks made on each line).
    2. Refuse a file without rows, and any label seen only once (it can be neither learned nor validated).
    """
    file = Path(path)
    texts: list[str] = []
    labels: list[str] = []
    first_line: dict[str, int] = {}
    for line, row in _rows(file, (text_col, label_col)):
        texts.append(row[text_col])
        labels.append(row[label_col])
        first_line.setdefault(row[label_col], line)
    if not texts:
        raise DatasetError(f"{file.name} has a header but no rows.", field="file")
    counts = Counter(labels)
    singles = [label for label, count in counts.items() if count == 1]
    if singles:
        label = min(singles, key=first_line.__getitem__)
        raise DatasetError(
            f"{file.name}, line {first_line[label]}: label {label!r} occurs only once; "
            "each label needs at least two examples (add more or remove it).",
            field="file",
        )
    if len(counts) < 2:
        raise DatasetError(f"{file.name}: only one label ({labels[0]!r}); a classifier needs at least two.", field="file")
    return LabelledData(texts=texts, labels=labels, path=str(file))


def pairs_read(*, path: str | Path, query_col: str = "query", item_col: str = "item") -> PairData:
    """Read (query, item) pairs from a .csv or .jsonl file, with the same checks per line as `dataset_read`."""
    file = Path(path)
    queries: list[str] = []
    items: list[str] = []
    for _, row in _rows(file, (query_col, item_col)):
        queries.append(row[query_col])
        items.append(row[item_col])
    if not queries:
        raise DatasetError(f"{file.name} has a header but no rows.", field="file")
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

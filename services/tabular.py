"""The one reader of tabular files (CSV, TSV, JSON Lines) behind every import, with one set of rules (Django-free).

Every caller gets the same rules:
- Suffixes: `.csv` (comma-separated) and `.tsv` (tab-separated) have a header row; `.jsonl`, `.ndjson`,
  `.json-lines` and `.json` hold one JSON object per line.
- Encoding: UTF-8, with or without a byte order mark. Other bytes stop the read: `file:line: bytes that are not UTF-8`.
- Size: at most the `TABULAR_MAX_BYTES` setting (default 512 MiB); the file is read line by line, never whole.
- Names: CSV header names and JSON keys are stripped and lowercased (`Question ` is `question`), and so are the
  column names a caller asks for. Columns with an empty name are ignored; a name given twice is refused.
- A required column missing from the header stops the read: `file:1: no column 'x' in the header (columns
  present: ...)`; in JSON Lines the object without the key is a bad row (`no key 'x' (keys present: ...)`).
- Values: CSV cells are stripped strings ("" for cells a short row leaves out); JSON values are kept as they are.
- Rows: blank lines (and CSV rows whose cells are all empty) are skipped silently: they hold nothing. More cells
  than the header names, invalid JSON and a line that is not a JSON object are bad rows; so is whatever a caller
  refuses with `Table.refuse`. Empty extra cells (spreadsheets' trailing commas) are ignored. A CSV quote that is
  never closed (it would swallow every later line into one cell) refuses its line; the lines after it are read again.
- Messages: `file:line: what is wrong`, or `file: what is wrong` for the whole file; always a `TabularError`.
- Policy, chosen once per caller: STOP raises at the first bad row; KEEP yields the good rows and lists the bad
  ones in `Table.errors`, which the caller reports (a command never skips a row without saying so).
"""
from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from services.errors import SuiteError

DELIMITERS = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json-lines", ".json")
SUFFIXES = (*DELIMITERS, *JSONL_SUFFIXES)
DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # generous: an interactions log of a few million rows
BOM = b"\xef\xbb\xbf"
EMPTY = "empty file; it needs a header row (CSV) or one JSON object per line."

Policy = Literal["stop", "keep"]
STOP: Policy = "stop"  # the first bad row raises: training data, where a half-read file would train the wrong model
KEEP: Policy = "keep"  # good rows are used, bad ones listed: bulk imports, where one typo must not block the rest
Required = Sequence[str | tuple[str, ...]]  # each entry a column name, or alternatives (("headline", "text"))


class TabularError(SuiteError):
    """A tabular file, or one of its rows under STOP, that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Row:
    line: int  # the record's first line (a quoted newline makes a CSV record span several)
    values: dict[str, Any]  # lowercased column name -> stripped text (CSV) or the JSON value


@dataclass(frozen=True)
class Refusal:
    file: str
    line: int
    reason: str
    text: str = ""  # the record as read, for callers that pass bad records on (news_replay --send-invalid)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def max_bytes_setting() -> int:
    """TABULAR_MAX_BYTES from Django's settings once they are loaded; the default in a plain script."""
    from django.conf import settings  # here, not at import: the reader runs without Django too

    return int(getattr(settings, "TABULAR_MAX_BYTES", DEFAULT_MAX_BYTES)) if settings.configured else DEFAULT_MAX_BYTES


def _named(names: str | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.strip().lower() for n in ((names,) if isinstance(names, str) else names))


def _described(names: tuple[str, ...]) -> str:
    return repr(names[0]) + "".join(f" (or {n!r})" for n in names[1:])


class Table:
    """One tabular file, read once by iterating over it; `errors` lists the rows refused under the KEEP policy."""

    def __init__(self, *, path: str | Path, policy: Policy, required: Required = (), field: str = "file",
                 kind: str = "file", max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.policy = policy
        self.field = field
        self.required = [_named(names) for names in required]
        self.columns: list[str] | None = None  # the CSV header once read (normalized); None for JSON Lines
        self.refused: list[Refusal] = []
        suffix = self.path.suffix.lower()
        if policy not in (STOP, KEEP):
            raise ValueError(f"policy must be {STOP!r} or {KEEP!r}, not {policy!r}")
        if suffix not in SUFFIXES:
            self.fail(None, f"unsupported {kind} type {suffix or '(none)'!r}; use .csv, .tsv, .jsonl or .ndjson.")
        if not self.path.is_file():
            raise TabularError(f"{self.path}: no such file.", field=field)
        limit = max_bytes if max_bytes is not None else max_bytes_setting()
        size = self.path.stat().st_size
        if size > limit:
            self.fail(None, f"{size} bytes, more than TABULAR_MAX_BYTES ({limit}); split the file or raise the limit.")
        self.delimiter = DELIMITERS.get(suffix)  # None: JSON Lines

    @property
    def errors(self) -> list[str]:
        """The refused rows as "file:line: reason", in the order they were met."""
        return [str(refusal) for refusal in self.refused]

    def fail(self, line: int | None, reason: str) -> NoReturn:
        """Stop the read whatever the policy: the whole file is unusable."""
        raise TabularError(f"{self.name}:{line}: {reason}" if line else f"{self.name}: {reason}", field=self.field)

    def refuse(self, line: int, reason: str, *, text: str = "") -> None:
        """One bad row: raise under STOP, else remember it for `errors` (callers refuse rows their own rules reject)."""
        refusal = Refusal(file=self.name, line=line, reason=reason, text=text)
        if self.policy == STOP:
            raise TabularError(str(refusal), field=self.field)
        self.refused.append(refusal)

    def lines_total(self) -> int:
        """About how many records the file holds (its lines, less the header): a progress bar's total."""
        with self.path.open("rb") as f:
            lines = sum(1 for _ in f)
        return max(lines - (1 if self.delimiter else 0), 0)

    def __iter__(self) -> Iterator[Row]:
        return self._csv_rows() if self.delimiter else self._jsonl_rows()

    def _lines(self) -> Iterator[tuple[int, str]]:
        """(line number, text) of each physical line, decoded; a line that is not UTF-8 stops the read."""
        with self.path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start:exc.start + 4]
                    self.fail(number, f"bytes that are not UTF-8 ({bad!r}); save the file as UTF-8.")

    def _header(self, line: int, cells: list[str]) -> list[str]:
        names = [cell.strip().lower() for cell in cells]
        present = [name for name in names if name]
        for name in present:
            if present.count(name) > 1:
                self.fail(line, f"column {name!r} appears twice in the header.")
        for wanted in self.required:
            if not any(name in present for name in wanted):
                listed = ", ".join(present) or "none"
                self.fail(line, f"no column {_described(wanted)} in the header (columns present: {listed}).")
        return names

    def _csv_rows(self) -> Iterator[Row]:
        consumed: list[tuple[int, str]] = []  # the lines of the record being parsed
        pending: deque[tuple[int, str]] = deque()  # lines to parse again (after a quote that is never closed)
        lines = self._lines()
        last = 0  # the number of the last line handed to the csv module
        ended = False  # the file's last line has been handed over

        def feed() -> Iterator[str]:
            nonlocal last, ended
            while True:
                if pending:
                    number, text = pending.popleft()
                else:
                    number, text = next(lines, (0, ""))
                    if not number:
                        ended = True
                        return
                last = number
                consumed.append((number, text))
                yield text

        reader = csv.reader(feed(), delimiter=self.delimiter)
        header: list[str] | None = None
        while True:
            start = last + 1
            consumed.clear()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if header is None:
                    self.fail(start, f"the header is not valid CSV ({exc}).")
                self.refuse(start, f"not valid CSV ({exc})", text="".join(t for _, t in consumed).rstrip("\r\n"))
                continue
            if ended and len(consumed) > 1 and not pending:
                # A quote opened on `start` and never closed swallowed every line to the end of the file: refuse
                # that line and read the ones after it again, so that one stray quote loses no later row.
                if header is None:
                    self.fail(start, 'a quote (") in the header is never closed.')
                self.refuse(start, 'a quote (") is never closed', text=consumed[0][1].rstrip("\r\n"))
                pending.extend(consumed[1:])
                last, ended = start, False
                reader = csv.reader(feed(), delimiter=self.delimiter)
                continue
            if not any(cell.strip() for cell in cells):
                continue  # a blank line holds nothing
            if header is None:
                header = self.columns = self._header(start, cells)
                continue
            if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header):]):
                text = "".join(t for _, t in consumed).rstrip("\r\n")
                self.refuse(start, f"{len(cells)} cells, the header has {len(header)}", text=text)
                continue
            cells = [*cells[:len(header)], *[""] * (len(header) - len(cells))]
            yield Row(line=start, values={name: cell.strip() for name, cell in zip(header, cells) if name})
        if header is None:
            self.fail(None, EMPTY)

    def _jsonl_rows(self) -> Iterator[Row]:
        seen = False
        for number, text in self._lines():
            if not text.strip():
                continue
            seen = True
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                self.refuse(number, f"not valid JSON ({exc.msg} at column {exc.colno})", text=text.rstrip("\r\n"))
                continue
            if not isinstance(data, dict):
                self.refuse(number, f"expected a JSON object, found {type(data).__name__}", text=text.rstrip("\r\n"))
                continue
            values = self._keys(number, data, text)
            if values is not None:
                yield Row(line=number, values=values)
        if not seen:
            self.fail(None, EMPTY)

    def _keys(self, line: int, data: dict[str, Any], text: str) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = key.strip().lower()
            if name in values:
                self.refuse(line, f"key {name!r} given twice", text=text.rstrip("\r\n"))
                return None
            if name:
                values[name] = value
        for wanted in self.required:
            if not any(name in values for name in wanted):
                listed = ", ".join(values) or "none"
                self.refuse(line, f"no key {_described(wanted)} (keys present: {listed})", text=text.rstrip("\r\n"))
                return None
        return values


def table_open(*, path: str | Path, policy: Policy, required: Required = (), field: str = "file", kind: str = "file",
               max_bytes: int | None = None) -> Table:
    """A Table over `path`, checked for type, existence and size; iterate over it for its rows.

    `required` names the columns every row needs (a tuple entry lists alternatives); `field` is the SuiteError field
    of every error (the form field or option that named the file); `kind` names the file in the unsupported-type
    message ("FAQ file"); `max_bytes` overrides the TABULAR_MAX_BYTES setting.
    """
    return Table(path=path, policy=policy, required=required, field=field, kind=kind, max_bytes=max_bytes)

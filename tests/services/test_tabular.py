"""The one tabular reader: encodings, header rules, size limit, file:line messages and the two policies."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.tabular import KEEP, STOP, TabularError, table_open
from services.timeparse import time_parse


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _rows(path: Path, **kwargs) -> list[tuple[int, dict]]:  # noqa: ANN003
    return [(row.line, row.values) for row in table_open(path=path, policy=STOP, **kwargs)]


def test_a_byte_order_mark_is_not_part_of_the_first_name_in_csv_or_jsonl(tmp_path: Path) -> None:
    assert _rows(_write(tmp_path, "bom.csv", "\ufeffquestion,answer\nQ?,A.\n")) == [(2, {"question": "Q?", "answer": "A."})]
    assert _rows(_write(tmp_path, "bom.jsonl", '\ufeff{"question": "Q?"}\n')) == [(1, {"question": "Q?"})]


def test_bytes_that_are_not_utf8_stop_the_read_naming_file_and_line_whatever_the_policy(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin.csv", b"text,label\nfine,1\nna\xefve caf\xe9,1\n")
    for policy in (STOP, KEEP):
        with pytest.raises(TabularError, match=r"^latin\.csv:3: bytes that are not UTF-8"):
            list(table_open(path=path, policy=policy))
    with pytest.raises(TabularError, match=r"^latin\.jsonl:2: bytes that are not UTF-8"):
        list(table_open(path=_write(tmp_path, "latin.jsonl", b'{"a": 1}\n{"a": "\xe9"}\n'), policy=KEEP))


def test_header_names_are_stripped_and_lowercased_and_a_missing_column_names_those_present(tmp_path: Path) -> None:
    path = _write(tmp_path, "faq.csv", " Question ,ANSWER\nQ?,A.\n")
    assert _rows(path, required=("question", "Answer")) == [(2, {"question": "Q?", "answer": "A."})]
    with pytest.raises(TabularError, match=r"^faq\.csv:1: no column 'intent' in the header \(columns present: question, answer\)\.$"):
        _rows(path, required=("question", "intent"))
    with pytest.raises(TabularError, match=r"^faq\.csv:1: no column 'headline' \(or 'text'\) in the header"):
        _rows(path, required=(("headline", "text"),))
    with pytest.raises(TabularError, match=r"^twice\.csv:1: column 'a' appears twice"):
        _rows(_write(tmp_path, "twice.csv", "a,A\n1,2\n"))
    with pytest.raises(TabularError) as caught:
        _rows(path, required=("intent",), field="faq")
    assert caught.value.field == "faq"


def test_too_many_cells_is_a_bad_row_but_empty_extra_cells_and_short_rows_are_not(tmp_path: Path) -> None:
    path = _write(tmp_path, "cells.csv", "a,b\n1,2,\n3,4,5\n6\n")
    with pytest.raises(TabularError, match=r"^cells\.csv:3: 3 cells, the header has 2$"):
        _rows(path)
    table = table_open(path=path, policy=KEEP)
    assert [(row.line, row.values) for row in table] == [(2, {"a": "1", "b": "2"}), (4, {"a": "6", "b": ""})]
    assert table.errors == ["cells.csv:3: 3 cells, the header has 2"] and table.refused[0].text == "3,4,5"


def test_keep_lists_every_bad_row_and_stop_raises_at_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path, "mixed.jsonl", '{"q": "a"}\n{oops\n[1, 2]\n{"x": 1}\n{"Q": "b"}\n')
    table = table_open(path=path, policy=KEEP, required=("q",))
    assert [(row.line, row.values) for row in table] == [(1, {"q": "a"}), (5, {"q": "b"})]
    assert [error.split(":", 2)[1] for error in table.errors] == ["2", "3", "4"]
    assert table.errors[1] == "mixed.jsonl:3: expected a JSON object, found list"
    assert table.errors[2] == "mixed.jsonl:4: no key 'q' (keys present: x)"
    assert table.errors[0].startswith("mixed.jsonl:2: not valid JSON (") and table.refused[0].text == "{oops"
    with pytest.raises(TabularError, match=r"^mixed\.jsonl:2: not valid JSON"):
        list(table_open(path=path, policy=STOP, required=("q",)))


def test_a_caller_refuses_rows_by_its_own_rules_under_its_policy(tmp_path: Path) -> None:
    path = _write(tmp_path, "rows.csv", "n\n1\nx\n3\n")
    table = table_open(path=path, policy=KEEP)
    good = []
    for row in table:
        if row.values["n"].isdigit():
            good.append(int(row.values["n"]))
        else:
            table.refuse(row.line, "`n` must be a number")
    assert good == [1, 3] and table.errors == ["rows.csv:3: `n` must be a number"]
    strict = table_open(path=path, policy=STOP)
    with pytest.raises(TabularError, match=r"^rows\.csv:3: `n` must be a number$"):
        for row in strict:
            if not row.values["n"].isdigit():
                strict.refuse(row.line, "`n` must be a number")


def test_blank_lines_are_skipped_and_line_numbers_count_them_and_quoted_newlines(tmp_path: Path) -> None:
    csv_path = _write(tmp_path, "gaps.csv", '\ntext,label\n\n"two\nlines",1\n , \nlast,0\n')
    assert _rows(csv_path) == [(4, {"text": "two\nlines", "label": "1"}), (7, {"text": "last", "label": "0"})]
    jsonl_path = _write(tmp_path, "gaps.ndjson", '\n{"a": 1}\n   \n{"a": 2}\n')
    assert _rows(jsonl_path) == [(2, {"a": 1}), (4, {"a": 2})]


def test_empty_files_and_unknown_suffixes_are_refused_and_every_documented_suffix_is_read(tmp_path: Path) -> None:
    for name, content in (("empty.csv", ""), ("blank.jsonl", "\n \n"), ("blank.csv", "\n,\n")):
        with pytest.raises(TabularError, match=rf"^{name.replace('.', r'[.]')}: empty file"):
            _rows(_write(tmp_path, name, content))
    with pytest.raises(TabularError, match=r"^data\.xlsx: unsupported FAQ file type '\.xlsx'"):
        table_open(path=_write(tmp_path, "data.xlsx", "x"), policy=STOP, kind="FAQ file")
    with pytest.raises(TabularError, match="no such file"):
        table_open(path=tmp_path / "nope.csv", policy=STOP)
    assert _rows(_write(tmp_path, "t.tsv", "a\tb\n1,5\t2\n")) == [(2, {"a": "1,5", "b": "2"})]
    for suffix in (".jsonl", ".ndjson", ".json-lines", ".json"):
        assert _rows(_write(tmp_path, f"x{suffix}", '{"a": [1]}\n')) == [(1, {"a": [1]})]


def test_a_file_over_the_size_limit_is_refused_naming_the_setting(tmp_path: Path, settings) -> None:  # noqa: ANN001
    path = _write(tmp_path, "big.csv", "a\n" + "x\n" * 20)
    settings.TABULAR_MAX_BYTES = 10
    with pytest.raises(TabularError, match=r"^big\.csv: 42 bytes, more than TABULAR_MAX_BYTES \(10\)"):
        table_open(path=path, policy=KEEP)
    assert len(_rows(path, max_bytes=42)) == 20
    settings.TABULAR_MAX_BYTES = 42
    assert len(_rows(path)) == 20


def test_a_bad_tabular_max_bytes_stops_the_settings_naming_the_variable() -> None:
    env = {**os.environ, "TABULAR_MAX_BYTES": "lots", "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "TABULAR_MAX_BYTES='lots' is not an integer" in done.stderr


def test_times_are_iso_8601_or_unix_seconds_as_a_number_or_as_text() -> None:
    moment = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert time_parse("1700000000") == time_parse(1700000000) == time_parse(" 1700000000.0 ") == moment
    assert time_parse("2023-11-14T22:13:20Z") == time_parse("2023-11-14T22:13:20") == moment
    assert time_parse("2023-11-14T23:13:20+01:00") == moment
    # Offsets come back applied, in UTC: PostgreSQL refuses to store one beyond ±15:59 (a fuzzed "-23:26" was a 500).
    far = time_parse("2023-11-14T22:13:20-23:26")
    assert far.utcoffset().total_seconds() == 0 and far == moment + timedelta(hours=23, minutes=26)
    with pytest.raises(ValueError, match="out of range"):
        time_parse("0001-01-01T00:00:00+05:00")
    for bad in ("yesterday", "", None, True, float("nan"), "1e400", [1700000000]):
        with pytest.raises(ValueError):
            time_parse(bad)

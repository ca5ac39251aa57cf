"""Hostile FAQ, catalogue, interaction and replay files: rows or errors naming file:line, never a crash or a lost row."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.fuzz_files import KINDS, check_read, files_campaign


def test_no_hostile_file_crashes_a_reader_or_loses_a_good_row() -> None:
    report = files_campaign(cases=160, seed=0)
    assert report["failures"] == [], "\n".join(report["failures"])
    assert report["cases"] >= 120 and report["rows"] >= 300


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_quote_never_closed_loses_no_later_row_and_names_its_line(kind: str, tmp_path: Path) -> None:
    reader = KINDS[kind]
    good = [reader.good(f"row-{i}") for i in range(3)]
    cells = [",".join(str(row.get(c, "")) for c in reader.columns) for row in good]
    path = tmp_path / f"{kind}.csv"
    path.write_text("\n".join([",".join(reader.columns), cells[0], 'x,"never closed', cells[1], "", cells[2]]) + "\n",
                    encoding="utf-8")
    keys, errors = reader.read(path)
    assert {str(row[reader.key]) for row in good} <= set(keys)  # before: the quote swallowed rows 1 and 2 silently
    assert f'{kind}.csv:3: a quote (") is never closed' in errors
    assert check_read(kind=reader, path=path, good_keys=[str(row[reader.key]) for row in good]) == []


def test_the_check_names_a_crash_and_a_lost_row(tmp_path: Path) -> None:
    from dataclasses import replace

    path = tmp_path / "faq.csv"
    path.write_text("question,answer\nq,a\n", encoding="utf-8")

    def crashes(_: Path) -> tuple[list[str], list[str]]:
        raise OverflowError("1e999")

    assert check_read(kind=replace(KINDS["faq"], read=crashes), path=path, good_keys=["q"]) == [
        "faq: OverflowError: 1e999"]
    assert check_read(kind=replace(KINDS["faq"], read=lambda _: ([], ["faq.csv:2: no"])), path=path,
                      good_keys=["q"]) == ["faq: good rows lost: ['q'] (errors: ['faq.csv:2: no'])"]
    assert check_read(kind=replace(KINDS["faq"], read=lambda _: (["q"], ["somewhere: no"])), path=path,
                      good_keys=["q"]) == ["faq: an error not naming file:line: somewhere: no"]


@pytest.mark.django_db
def test_the_imports_that_store_rows_keep_every_good_row_of_a_hostile_file(stand_in_encoder: None) -> None:
    from pipelines.fuzz_files import DB_KINDS

    report = files_campaign(cases=36, seed=0, kinds=sorted(DB_KINDS))
    assert report["failures"] == [], "\n".join(report["failures"])
    assert report["cases"] >= 30

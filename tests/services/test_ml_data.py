from __future__ import annotations

from pathlib import Path

import pytest

from services.errors import SuiteError
from services.ml.data import DatasetError, data_fingerprint, dataset_read, pairs_read


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_it_reads_labelled_texts_from_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = _write(tmp_path, "d.csv", 'text,label\n"Shares rise, a lot",1\nShares fall,0\nFlat day,1\nDown again,0\n')
    jsonl_file = _write(tmp_path, "d.jsonl", '{"text": "Up", "label": 1}\n\n{"text": "Down", "label": 0}\n'
                                            '{"text": "Up more", "label": 1}\n{"text": "Down more", "label": 0}\n')
    data = dataset_read(path=csv_file)
    assert data.texts[0] == "Shares rise, a lot" and data.labels == ["1", "0", "1", "0"] and data.path == str(csv_file)
    assert dataset_read(path=jsonl_file).labels == ["1", "0", "1", "0"]


def test_it_reads_custom_column_names_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "\ufeffbody,intent\na,x\nb,x\nc,y\nd,y\n")
    assert dataset_read(path=path, text_col="body", label_col="intent").labels == ["x", "x", "y", "y"]


def test_it_names_the_file_and_line_of_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin.csv", b"text,label\nfine,1\nalso fine,0\nna\xefve caf\xe9,1\n")
    with pytest.raises(DatasetError, match=r"latin\.csv:4: bytes that are not UTF-8"):
        dataset_read(path=path)


def test_it_names_the_missing_column_and_the_columns_present(tmp_path: Path) -> None:
    path = _write(tmp_path, "cols.csv", "sentence,label\na,1\n")
    with pytest.raises(DatasetError, match=r"cols\.csv:1: no column 'text' in the header \(columns present: sentence, label\)"):
        dataset_read(path=path)
    jsonl = _write(tmp_path, "cols.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "sentiment": 0}\n')
    with pytest.raises(DatasetError, match=r"cols\.jsonl:2: no key 'label' \(keys present: text, sentiment\)"):
        dataset_read(path=jsonl)


def test_it_refuses_an_empty_file_and_a_file_without_rows(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"empty\.csv: empty file"):
        dataset_read(path=_write(tmp_path, "empty.csv", ""))
    with pytest.raises(DatasetError, match=r"header\.csv: a header but no rows"):
        dataset_read(path=_write(tmp_path, "header.csv", "text,label\n"))
    with pytest.raises(DatasetError, match=r"blank\.jsonl: empty file"):
        dataset_read(path=_write(tmp_path, "blank.jsonl", "\n\n"))


def test_it_names_the_line_of_an_empty_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "gaps.csv", "text,label\na,1\nb,0\n  ,1\n")
    with pytest.raises(DatasetError, match=r"gaps\.csv:4: empty 'text'"):
        dataset_read(path=path)


def test_it_counts_lines_of_multiline_quoted_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "multi.csv", 'text,label\n"two\nlines",1\nb,0\n"",1\n')
    with pytest.raises(DatasetError, match=r"multi\.csv:5: empty 'text'"):
        dataset_read(path=path)


def test_it_names_the_line_of_a_malformed_json_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not valid JSON"):
        dataset_read(path=path)
    with pytest.raises(DatasetError, match=r"list\.jsonl:1: expected a JSON object, found list"):
        dataset_read(path=_write(tmp_path, "list.jsonl", '["a", 1]\n'))


def test_it_names_a_label_seen_only_once_and_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "rare.csv", "text,label\na,pos\nb,neg\nc,pos\nd,meh\ne,neg\n")
    with pytest.raises(DatasetError, match=r"rare\.csv:5: label 'meh' occurs only once"):
        dataset_read(path=path)


def test_it_refuses_an_unknown_file_type_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data\.xlsx: unsupported file type '\.xlsx'"):
        dataset_read(path=_write(tmp_path, "data.xlsx", "x"))
    with pytest.raises(DatasetError, match="no such file"):
        dataset_read(path=tmp_path / "nope.csv")


def test_dataset_errors_are_suite_errors_about_the_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as caught:
        dataset_read(path=_write(tmp_path, "empty.jsonl", ""))
    assert caught.value.field == "file"


def test_it_reads_pairs_and_names_the_line_of_an_empty_item(tmp_path: Path) -> None:
    path = _write(tmp_path, "pairs.jsonl", '{"query": "red shoes", "item": "Shoe A"}\n{"query": "blue hat", "item": "Hat B"}\n')
    data = pairs_read(path=path)
    assert data.queries == ["red shoes", "blue hat"] and data.items == ["Shoe A", "Hat B"]
    with pytest.raises(DatasetError, match=r"pairs\.csv:3: empty 'item'"):
        pairs_read(path=_write(tmp_path, "pairs.csv", "query,item\nred shoes,Shoe A\nblue hat,\n"))


def test_the_fingerprint_ignores_row_order_but_not_content() -> None:
    first = data_fingerprint(texts=["a", "b"], labels=["1", "0"])
    assert first == data_fingerprint(texts=["b", "a"], labels=["0", "1"])
    assert first != data_fingerprint(texts=["a", "b"], labels=["0", "1"])
    assert first != data_fingerprint(texts=["a", "b", "b"], labels=["1", "0", "0"])
    assert len(first) == 64

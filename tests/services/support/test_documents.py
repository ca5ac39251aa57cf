"""Documents split into passages with their title and location; FAQ files read with line-numbered errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.errors import SuiteError
from services.support.documents import document_split, faq_read


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text (Helvetica), offsets computed so the xref table is valid."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_html_is_split_at_headings_without_scripts_or_navigation(tmp_path: Path) -> None:
    page = tmp_path / "help.html"
    page.write_text("<html><head><title>Help centre</title><script>var x = 1;</script></head><body><nav>Home</nav>"
                    "<h1>Orders</h1><p>Orders ship in 2 days.</p><h2>Returns</h2><p>Return the ZX-9 within 30 days &amp; "
                    "keep the receipt.</p></body></html>", encoding="utf-8")
    title, chunks = document_split(path=page)
    assert title == "Help centre"
    assert [(c.title, c.location) for c in chunks] == [("Help centre — Orders", "section Orders"),
                                                        ("Help centre — Returns", "section Returns")]
    assert chunks[1].text == "Return the ZX-9 within 30 days & keep the receipt." and "var x" not in chunks[0].text


def test_a_pdf_gives_one_passage_per_page_located_by_page_number(tmp_path: Path) -> None:
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(minimal_pdf("Hold the QZ-77 reset button for 12 seconds."))
    title, chunks = document_split(path=pdf)
    assert title == "manual" and chunks[0].location == "page 1" and "QZ-77" in chunks[0].text
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(SuiteError, match="broken.pdf"):
        document_split(path=tmp_path / "broken.pdf")


def test_long_sections_are_cut_into_numbered_parts(tmp_path: Path) -> None:
    doc = tmp_path / "long.md"
    doc.write_text("# Guide\n\n" + " ".join(f"word{i}" for i in range(500)) + "\n", encoding="utf-8")
    _, chunks = document_split(path=doc)
    assert [c.location for c in chunks] == ["section Guide, part 1", "section Guide, part 2", "section Guide, part 3"]


def test_faq_files_keep_good_rows_and_name_bad_lines(tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    faq.write_text('question,answer,intent\n"Multi\nline?",Yes,a\n,missing,b\nOk?,Fine,c\n', encoding="utf-8")
    result = faq_read(path=faq)
    assert [r.question for r in result.rows] == ["Multi\nline?", "Ok?"]
    assert result.errors == ["faq.csv:4: empty or missing question"]  # line numbers count the quoted newline
    (tmp_path / "bad.csv").write_bytes(b"question,answer\nok,\xff\xfe\n")
    with pytest.raises(SuiteError, match="bad.csv:2"):
        faq_read(path=tmp_path / "bad.csv")


def test_a_nul_character_is_refused_by_line_in_a_faq_and_anywhere_in_a_text_document(tmp_path: Path) -> None:
    faq = tmp_path / "faq.csv"
    faq.write_text("question,answer\nGood?,Yes.\nBad\x00one?,No.\nAlso good?,Yes.\n", encoding="utf-8")
    read = faq_read(path=faq)
    assert [row.question for row in read.rows] == ["Good?", "Also good?"]
    assert read.errors == ["faq.csv:3: a NUL character (\\x00) in question"]
    doc = tmp_path / "late.txt"
    doc.write_bytes(b"Plain text.\n" * 500 + b"then a \x00 far past the first 4 KiB\n")
    with pytest.raises(SuiteError, match="late.txt: binary content"):
        document_split(path=doc)

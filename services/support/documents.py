"""Read FAQ files and split documents into passages (Django-free).

FAQ: a tabular file (CSV, TSV, JSON Lines: services.tabular) with `question`, `answer`, optional `intent`, `url`,
`title`.
Documents: Markdown (split at headings), HTML (split at h1-h3), PDF (one passage per page part), plain text
(split at blank lines); long sections are cut into windows of about `PASSAGE_WORDS` words.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from services.errors import SuiteError
from services.tabular import KEEP, table_open

DOC_SUFFIXES = {".md", ".markdown", ".html", ".htm", ".pdf", ".txt", ".text"}
PASSAGE_WORDS = 180  # a passage is about one answer's worth of text: short enough to cite, long enough to match
FAQ_FIELDS = ("question", "answer", "intent", "url", "title")


@dataclass(frozen=True)
class FaqRow:
    question: str
    answer: str
    intent: str = ""
    url: str = ""
    title: str = ""

    @property
    def key(self) -> str:
        return text_hash(" ".join(self.question.lower().split()))

    @property
    def content_hash(self) -> str:
        return text_hash(json.dumps([self.question, self.answer, self.intent, self.url, self.title]))


@dataclass(frozen=True)
class PassageChunk:
    title: str
    location: str
    text: str

    @property
    def content_hash(self) -> str:
        return text_hash(json.dumps([self.title, self.location, self.text]))


@dataclass
class ReadResult:
    rows: list = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "file:line: what is wrong"; the good rows are still returned


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _faq_row(values: dict) -> FaqRow:
    texts = {name: str(values.get(name) or "").strip() for name in FAQ_FIELDS}
    missing = [name for name in ("question", "answer") if not texts[name]]
    if missing:
        raise ValueError(f"empty or missing {' and '.join(missing)}")
    nul = [name for name in FAQ_FIELDS if "\x00" in texts[name]]
    if nul:  # PostgreSQL cannot store it in a text column, and no FAQ means it
        raise ValueError(f"a NUL character (\\x00) in {' and '.join(nul)}")
    return FaqRow(**texts)


def faq_read(*, path: Path) -> ReadResult:
    """FAQ rows from a tabular file (services.tabular); bad rows are skipped and reported as "file:line: reason"."""
    table = table_open(path=path, policy=KEEP, required=("question", "answer"), field="faq", kind="FAQ file")
    result = ReadResult()
    for row in table:
        try:
            result.rows.append(_faq_row(row.values))
        except ValueError as exc:
            table.refuse(row.line, str(exc))
    result.errors = table.errors
    return result


# --- documents -------------------------------------------------------------------------------------------

def _windows(text: str, *, title: str, location: str) -> list[PassageChunk]:
    """Cut one section into passages of about PASSAGE_WORDS words (a long section gets "part N")."""
    words = text.split()
    if not words:
        return []
    if len(words) <= PASSAGE_WORDS * 1.3:
        return [PassageChunk(title=title, location=location, text=" ".join(words))]
    chunks = []
    for part, start in enumerate(range(0, len(words), PASSAGE_WORDS), start=1):
        chunks.append(PassageChunk(title=title, location=f"{location}, part {part}", text=" ".join(words[start:start + PASSAGE_WORDS])))
    return chunks


def _sections_split(sections: list[tuple[str, str]], *, doc_title: str) -> list[PassageChunk]:
    chunks = []
    for heading, body in sections:
        title = f"{doc_title} — {heading}" if heading and heading != doc_title else doc_title
        chunks += _windows(body, title=title, location=f"section {heading}" if heading else "start")
    return chunks


def markdown_split(*, text: str, fallback_title: str) -> tuple[str, list[PassageChunk]]:
    """(document title, passages): the first heading titles the document; each heading starts a section."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    doc_title = ""
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            doc_title = doc_title or heading.group(1)
            sections.append((heading.group(1), []))
        else:
            sections[-1][1].append(line)
    doc_title = doc_title or fallback_title
    return doc_title, _sections_split([(h, "\n".join(lines)) for h, lines in sections], doc_title=doc_title)


class _HtmlSections(HTMLParser):
    SKIP = {"script", "style", "nav", "footer", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[tuple[str, list[str]]] = [("", [])]
        self._skip = 0
        self._in: str | None = None  # "title" or a heading tag while inside one
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: ARG002
        if tag in self.SKIP and tag != "head":
            self._skip += 1
        elif tag in ("title", "h1", "h2", "h3"):
            self._in, self._buffer = tag, []

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and tag != "head":
            self._skip = max(0, self._skip - 1)
        elif tag == self._in:
            text = " ".join("".join(self._buffer).split())
            if tag == "title":
                self.title = text
            else:
                self.title = self.title or text
                self.sections.append((text, []))
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in:
            self._buffer.append(data)
        else:
            self.sections[-1][1].append(data)


def html_split(*, text: str, fallback_title: str) -> tuple[str, list[PassageChunk]]:
    parser = _HtmlSections()
    parser.feed(text)
    doc_title = parser.title or fallback_title
    return doc_title, _sections_split([(h, " ".join(parts)) for h, parts in parser.sections], doc_title=doc_title)


def text_split(*, text: str, fallback_title: str) -> tuple[str, list[PassageChunk]]:
    """Plain text: paragraphs (blank-line separated) gathered into passages, located by line numbers."""
    chunks: list[PassageChunk] = []
    lines = text.splitlines()
    start, words = None, []
    for number, line in enumerate([*lines, ""], start=1):
        if line.strip():
            start = start or number
            words += line.split()
        if words and (len(words) >= PASSAGE_WORDS or not line.strip() and len(words) >= PASSAGE_WORDS // 3 or number == len(lines) + 1):
            chunks.append(PassageChunk(title=fallback_title, location=f"lines {start}-{number - (0 if line.strip() else 1)}",
                                       text=" ".join(words)))
            start, words = None, []
    return fallback_title, chunks


def pdf_split(*, path: Path, fallback_title: str) -> tuple[str, list[PassageChunk]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        title = str((reader.metadata.title if reader.metadata else None) or fallback_title).replace("\x00", "")
        chunks = []
        for number, page in enumerate(reader.pages, start=1):  # a PDF's text may carry NULs that no database stores
            chunks += _windows((page.extract_text() or "").replace("\x00", " "), title=title, location=f"page {number}")
    except (PdfReadError, ValueError, KeyError) as exc:
        raise SuiteError(f"{path.name}: not a readable PDF ({exc}).", field="docs") from None
    return title, chunks


def document_split(*, path: Path) -> tuple[str, list[PassageChunk]]:
    """(title, passages) of one document file; SuiteError names the file when its type or content is unusable."""
    suffix = path.suffix.lower()
    fallback = path.stem.replace("_", " ").replace("-", " ").strip() or path.name
    if suffix not in DOC_SUFFIXES:
        raise SuiteError(f"{path.name}: unsupported document type {suffix or '(none)'}; "
                         f"use {', '.join(sorted(DOC_SUFFIXES))}.", field="docs")
    if suffix == ".pdf":
        return pdf_split(path=path, fallback_title=fallback)
    raw = path.read_bytes()
    if b"\x00" in raw:  # anywhere: a text file holds none (and PostgreSQL could not store it)
        raise SuiteError(f"{path.name}: binary content, not text.", field="docs")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SuiteError(f"{path.name}:{line}: not UTF-8 text.", field="docs") from None
    if suffix in (".md", ".markdown"):
        return markdown_split(text=text, fallback_title=fallback)
    if suffix in (".html", ".htm"):
        return html_split(text=text, fallback_title=fallback)
    return text_split(text=text, fallback_title=fallback)

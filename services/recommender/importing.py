"""Bulk import of catalogue and interaction files: good rows are stored, bad ones reported as "file:line: reason"."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.errors import SuiteError
from services.recommender import catalog
from services.recommender.files import lines_count, rows_read
from services.recommender.vectors import index_update

Progress = Callable[[str, int, int], None]  # (stage, done, total)
CHUNK = 2000


def _rows_import(*, path: Path, clean: Callable[[object], dict[str, Any]], store: Callable[[list[dict[str, Any]]], catalog.WriteReport],
                 stage: str, progress: Progress | None) -> catalog.WriteReport:
    total = max(lines_count(path=path) - (0 if path.suffix.lower() in {".jsonl", ".ndjson", ".json"} else 1), 0)
    report, batch, done = catalog.WriteReport(), [], 0

    def flush() -> None:
        if batch:
            part = store(batch)
            report.added += part.added
            report.updated += part.updated
            report.unchanged += part.unchanged
            report.reembed += part.reembed
            batch.clear()

    for line_no, row in rows_read(path=path):
        done += 1
        if isinstance(row, str):
            report.errors.append(f"{path.name}:{line_no}: {row}")
            continue
        if stage == "interactions" and isinstance(row, dict) and not row.get("event_id"):
            row = {**row, "event_id": f"{path.name}:{line_no}"}  # re-importing the same file stores nothing twice
        try:
            batch.append(clean(row))
        except SuiteError as exc:
            report.errors.append(f"{path.name}:{line_no}: {exc.message}")
        if len(batch) >= CHUNK:
            flush()
            if progress:
                progress(stage, done, total)
    flush()
    if progress:
        progress(stage, done, max(total, done))
    return report


def files_import(*, items: Path | None, interactions: Path | None, progress: Progress | None = None) -> dict[str, Any]:
    """Import items first (embedding new or changed texts), then interactions; return both reports."""
    out: dict[str, Any] = {}
    if items is not None:
        report = _rows_import(path=items, clean=catalog.item_clean, store=lambda rows: catalog.items_upsert(rows=rows),
                              stage="items", progress=progress)
        for start in range(0, len(report.reembed), 1024):
            index_update(pks=report.reembed[start:start + 1024])
            if progress:
                progress("embed", min(start + 1024, len(report.reembed)), len(report.reembed))
        out["items"] = {**report.as_dict(), "embedded": len(report.reembed)}
    if interactions is not None:
        report = _rows_import(path=interactions, clean=catalog.event_clean, store=lambda rows: catalog.events_record(rows=rows),
                              stage="interactions", progress=progress)
        out["interactions"] = report.as_dict()
    return out

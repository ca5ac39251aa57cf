"""Bulk import of catalogue and interaction files: good rows are stored, bad ones reported as "file:line: reason"."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.errors import SuiteError
from services.recommender import catalog
from services.recommender.vectors import items_embed
from services.tabular import KEEP, table_open

Progress = Callable[[str, int, int], None]  # (stage, done, total)
CHUNK = 2000


def _rows_import(*, path: Path, clean: Callable[[object], dict[str, Any]], store: Callable[[list[dict[str, Any]]], catalog.WriteReport],
                 stage: str, progress: Progress | None) -> catalog.WriteReport:
    """Read `path` by services.tabular's rules (KEEP: good rows stored in chunks, every refused row in `errors`)."""
    table = table_open(path=path, policy=KEEP, field="path")
    total = table.lines_total()
    report, batch, done = catalog.WriteReport(), [], 0

    def flush() -> None:
        if batch:
            part = store(batch)
            report.added += part.added
            report.updated += part.updated
            report.unchanged += part.unchanged
            report.reembed += part.reembed
            batch.clear()

    for row in table:
        done += 1
        values = row.values
        if stage == "interactions" and not values.get("event_id") and not values.get("timestamp"):
            # No id and no time: the line is its identity, so re-importing the same file stores nothing twice (with a
            # time, catalog.event_id_derive makes the id, the same one the API gives the same event)
            values = {**values, "event_id": f"{path.name}:{row.line}"}
        try:
            batch.append(clean(values))
        except SuiteError as exc:
            table.refuse(row.line, exc.message)
        if len(batch) >= CHUNK:
            flush()
            if progress:
                progress(stage, done, total)
    flush()
    report.errors = table.errors  # the reader's refusals and the cleaners', in the order they were met
    if progress:
        progress(stage, max(total, done), max(total, done))
    return report


def files_import(*, items: Path | None, interactions: Path | None, progress: Progress | None = None) -> dict[str, Any]:
    """Import items first (embedding new or changed texts), then interactions; return both reports."""
    out: dict[str, Any] = {}
    if items is not None:
        report = _rows_import(path=items, clean=catalog.item_clean, store=lambda rows: catalog.items_upsert(rows=rows),
                              stage="items", progress=progress)
        # A batch job: embedded here with a progress bar, not one worker task per chunk (services/vectors/store.py)
        embedded = items_embed(pks=report.reembed, progress=(lambda done, total: progress("embed", done, total)) if progress else None)
        out["items"] = {**report.as_dict(), "embedded": embedded}  # vectors written: unchanged texts are not embedded again
    if interactions is not None:
        report = _rows_import(path=interactions, clean=catalog.event_clean, store=lambda rows: catalog.events_record(rows=rows),
                              stage="interactions", progress=progress)
        out["interactions"] = report.as_dict()
    return out

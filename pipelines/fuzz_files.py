"""File fuzzing: hostile FAQ, catalogue, interaction and replay files through the readers behind every import.

Used by `python -m pipelines.fuzz files` (pipelines/fuzz.py) and tests/fuzz/test_fuzz_files.py. Hypothesis draws
files of two kinds, for each reader (all of them read through services/tabular.py):

- good rows (each with its own key) mixed with hostile lines (random text, wrong JSON types, cells too many,
  broken encodings, a quote never closed): every good row must be read, every hostile line that is not read must
  be named `file:line: reason`, and nothing else may happen;
- arbitrary bytes under a tabular name (.csv, .tsv, .jsonl): rows, or a SuiteError whose message names the file.

A reader is a function of the file's path returning (keys of the rows it read, its "file:line: reason" errors).
"""
from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

Reader = Callable[[Path], tuple[list[str], list[str]]]


@dataclass(frozen=True)
class Kind:
    """One kind of file: its columns, a good row for key k, the reader under test."""

    name: str
    columns: tuple[str, ...]
    good: Callable[[str], dict[str, Any]]
    read: Reader
    key: str  # the column whose value the reader gives back for each row it read


def _faq(path: Path) -> tuple[list[str], list[str]]:
    from services.support.documents import faq_read

    result = faq_read(path=path)
    return [row.question for row in result.rows], result.errors


def _catalogue(path: Path) -> tuple[list[str], list[str]]:
    from services.recommender.evaluation import catalogue_read

    skipped: list[str] = []
    ids, _ = catalogue_read(path=path, skipped=skipped)
    return ids, skipped


def _interactions(path: Path) -> tuple[list[str], list[str]]:
    from services.recommender.evaluation import interactions_read

    skipped: list[str] = []
    history = interactions_read(path=path, rows_of={"item-a": 0, "item-b": 1}, skipped=skipped)
    return sorted(history), skipped  # each good row has its own user: the users are the keys


def _replay(path: Path) -> tuple[list[str], list[str]]:
    from pipelines.news_replay import replay_lines

    lines = replay_lines(path)
    return [line.value["headline"] for line in lines if line.value is not None], [l.error for l in lines if l.error]


def _faq_import(path: Path) -> tuple[list[str], list[str]]:
    from apps.support.models import FaqEntry
    from services.support.knowledge import kb_import

    report = kb_import(kb_name="fuzz", faq=path)
    return list(FaqEntry.objects.filter(kb__name="fuzz").values_list("question", flat=True)), report.errors


def _items_import(path: Path) -> tuple[list[str], list[str]]:
    from apps.recommender.models import Item
    from services.recommender.importing import files_import

    report = files_import(items=path, interactions=None)["items"]
    return list(Item.objects.values_list("external_id", flat=True)), report["errors"]


def _interactions_import(path: Path) -> tuple[list[str], list[str]]:
    from apps.recommender.models import Event, Item
    from services.recommender.importing import files_import

    Item.objects.get_or_create(external_id="item-a", defaults={"title": "item a"})
    report = files_import(items=None, interactions=path)["interactions"]
    return list(Event.objects.values_list("user_id", flat=True)), report["errors"]


KINDS = {
    "faq": Kind("faq", ("question", "answer", "intent"),
                lambda k: {"question": f"question {k}?", "answer": f"answer {k}.", "intent": "billing"}, _faq,
                "question"),
    "catalogue": Kind("catalogue", ("id", "title", "price"),
                      lambda k: {"id": k, "title": f"title {k}", "price": "9.5"}, _catalogue, "id"),
    "interactions": Kind("interactions", ("user_id", "item_id", "type", "timestamp"),
                         lambda k: {"user_id": k, "item_id": "item-a", "type": "view",
                                    "timestamp": "2026-11-10T10:00:00Z"}, _interactions, "user_id"),
    "replay": Kind("replay", ("headline", "source", "tickers"),
                   lambda k: {"headline": f"headline {k} rises", "source": "wire"}, _replay, "headline"),
}
# The same files through the imports that store them (a database, and an encoder for the texts they embed).
DB_KINDS = {
    "faq_import": replace(KINDS["faq"], name="faq_import", read=_faq_import),
    "items_import": replace(KINDS["catalogue"], name="items_import", read=_items_import),
    "interactions_import": replace(KINDS["interactions"], name="interactions_import", read=_interactions_import),
}


def _hostile_json() -> st.SearchStrategy[str]:
    scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
               | st.text(max_size=30))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                                            inner, max_size=3),
                          max_leaves=8)
    return st.one_of(
        values.map(json.dumps),  # any JSON value (a list, a number, a string: not an object)
        st.fixed_dictionaries({}, optional={k: values for k in ("question", "answer", "id", "title", "price",
                                                                "user_id", "item_id", "type", "timestamp",
                                                                "headline", "tickers", "published_at")}
                              ).map(json.dumps),  # the right keys holding any JSON
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=60),
        st.sampled_from(["{", "[1,", "NaN", "{\"price\": 1e999}", "{\"id\": \"\"}", "\"\"", "{}" + " " * 3]),
    )


def _hostile_csv(columns: int) -> st.SearchStrategy[str]:
    # No quote characters: two stray quotes make the lines between them one quoted cell, which is CSV's own rule
    # (a cell may hold newlines), not a reader's fault; one unclosed quote has its own case (quote_unclosed).
    cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\"\r\n"), max_size=20)
    return st.one_of(
        st.lists(cell, min_size=columns + 1, max_size=columns + 4).map(",".join),  # too many cells
        st.lists(cell, min_size=1, max_size=columns).map(",".join),  # too few, or cells of any text
        st.sampled_from(["1e999", "nan", "inf", "-", "\t", ";;;;"]).map(lambda v: ",".join([v] * columns)),
    )


def _file_write(*, folder: Path, kind: Kind, suffix: str, lines: list[tuple[str, Any]]) -> Path:
    """Write a header (CSV/TSV) and `lines`: ("good", row dict) written properly, ("raw", text) as it is."""
    path = folder / f"{kind.name}{suffix}"
    out = io.StringIO()
    delimiter = {".csv": ",", ".tsv": "\t"}.get(suffix)
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n") if delimiter else None
    if writer:
        writer.writerow(kind.columns)
    for what, value in lines:
        if what == "raw":
            out.write(value.replace(",", delimiter) if delimiter else value)
            out.write("\n")
        elif writer:
            writer.writerow([value.get(column, "") for column in kind.columns])
        else:
            out.write(json.dumps(value) + "\n")
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def check_read(*, kind: Kind, path: Path, good_keys: list[str] | None) -> list[str]:
    """Problems with one read of `path` (empty when it behaved): crashes, unnamed errors, lost good rows."""
    from services.errors import SuiteError

    try:
        keys, errors = kind.read(path)
    except SuiteError as exc:  # the whole file refused: it must say which file
        if not exc.message.startswith(f"{path.name}:") and not exc.message.startswith(f"{path}:"):
            return [f"{kind.name}: a refusal that does not name the file: {exc.message[:200]}"]
        return [f"{kind.name}: refused a file holding good rows: {exc.message[:200]}"] if good_keys else []
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        return [f"{kind.name}: {type(exc).__name__}: {str(exc)[:300]}"]
    problems = [f"{kind.name}: an error not naming file:line: {e[:200]}" for e in errors
                if not re.match(rf"{re.escape(path.name)}:\d+: \S", e)]
    if good_keys is not None:
        lost = sorted(set(good_keys) - set(keys))
        if lost:
            problems.append(f"{kind.name}: good rows lost: {lost[:5]} (errors: {errors[:3]})")
    return problems


def _mixed(kind: Kind, suffix: str) -> st.SearchStrategy[list[tuple[str, Any]]]:
    hostile = _hostile_json() if suffix == ".jsonl" else _hostile_csv(len(kind.columns))
    line = st.one_of(st.tuples(st.just("good"), st.none()), st.tuples(st.just("raw"), hostile))
    return st.lists(line, min_size=1, max_size=12)


def files_campaign(*, cases: int, seed: int, kinds: list[str] | None = None) -> dict[str, Any]:
    """Fuzz the readers (`kinds`: names of KINDS or DB_KINDS; default KINDS) with about `cases` files in all.

    1. Per kind: CSV files (good and hostile rows, then arbitrary bytes named .csv), JSON Lines files (the same),
       arbitrary bytes named .tsv.
    2. Each file is read once by the kind's reader and judged by check_read.
    """
    every = {**KINDS, **DB_KINDS}
    names = kinds or list(KINDS)
    per_kind = max(4, cases // len(names))
    failures: list[str] = []
    counted = {"cases": 0, "rows": 0}
    with tempfile.TemporaryDirectory(prefix="fuzz-files-") as tmp:
        for index, name in enumerate(names):
            for sub, (suffix, share) in enumerate(((".csv", 2), (".jsonl", 1), (".tsv", 1))):
                _kind_fuzz(kind=every[name], suffix=suffix, examples=max(1, per_kind * share // 6),
                           seed=seed * 1009 + index * 10 + sub, folder=Path(tmp), failures=failures, counted=counted)
    unique = list(dict.fromkeys(failures))
    return {"cases": counted["cases"], "rows": counted["rows"], "crashes": len(unique), "failures": unique[:50]}


def _kind_fuzz(*, kind: Kind, suffix: str, examples: int, seed: int, folder: Path, failures: list[str],
               counted: dict[str, int]) -> None:
    """`examples` draws for one kind and suffix; each writes a mixed file (not for .tsv) and a file of raw bytes."""

    @hypothesis_settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(lines=_mixed(kind, suffix), raw=st.binary(max_size=300))
    def one(lines: list[tuple[str, Any]], raw: bytes) -> None:
        here = Path(tempfile.mkdtemp(dir=folder))
        draw = counted["cases"]  # keys unique across draws: an import keeps what earlier draws stored
        numbered = [(what, kind.good(f"good-{draw}-{i}-row") if what == "good" else value) for i, (what, value) in
                    enumerate(lines)]
        if suffix != ".tsv":
            path = _file_write(folder=here, kind=kind, suffix=suffix, lines=numbered)
            keys = [str(value[kind.key]) for what, value in numbered if what == "good"]
            failures.extend(check_read(kind=kind, path=path, good_keys=keys))
            counted["rows"] += len(numbered)
            counted["cases"] += 1
        junk = here / f"junk{suffix}"
        junk.write_bytes(raw)
        failures.extend(check_read(kind=kind, path=junk, good_keys=None))
        counted["cases"] += 1

    one()

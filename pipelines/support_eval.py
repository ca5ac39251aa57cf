"""Evaluate the support bot on labelled questions through the production answering path.

    python manage.py support_eval --data questions.csv [--kb default]

Data: CSV or JSONL with `question` and a gold `answer` (the exact answer text of an FAQ entry) and/or a gold
`intent`. Result (the command's last line): {"recall_at_1", "recall_at_3", "mrr", "intent_accuracy",
"handoff_rate", "n"}; a metric is null when the data has no gold for it. MRR looks at the top EVAL_K answers.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.errors import SuiteError
from services.support.answering import question_answer
from services.support.knowledge import kb_get

EVAL_K = 10


@dataclass(frozen=True)
class EvalRow:
    line: int
    question: str
    answer: str
    intent: str


def eval_rows_read(*, path: Path) -> tuple[list[EvalRow], list[str]]:
    """(rows, errors "file:line: reason"); rows without a question or without any gold are reported."""
    if path.suffix.lower() not in (".csv", ".jsonl"):
        raise SuiteError(f"{path.name}: unsupported file type; use .csv or .jsonl.", field="data")
    if not path.is_file():
        raise SuiteError(f"{path} does not exist.", field="data")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SuiteError(f"{path.name}: not UTF-8 text.", field="data") from None
    raw: list[tuple[int, object]] = []
    errors: list[str] = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(content.splitlines(), start=1):
            if line.strip():
                try:
                    raw.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    errors.append(f"{path.name}:{number}: not JSON ({exc.msg})")
    else:
        reader = csv.DictReader(io.StringIO(content, newline=""))
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
        if "question" not in reader.fieldnames:
            raise SuiteError(f"{path.name}:1: the header must name `question`.", field="data")
        raw = [(reader.line_num, row) for row in reader]
    rows = []
    for number, item in raw:
        values = {k: str(item.get(k) or "").strip() for k in ("question", "answer", "intent")} if isinstance(item, dict) else {}
        if not values.get("question") or not (values.get("answer") or values.get("intent")):
            errors.append(f"{path.name}:{number}: needs a question and a gold answer or intent")
            continue
        rows.append(EvalRow(line=number, **values))
    return rows, errors


def support_evaluate(*, data: Path, kb_name: str = "default", progress: Callable[[int, int], None] | None = None) -> dict:
    """Recall@1/@3, MRR, intent accuracy and handoff rate of `question_answer` on the rows of `data`."""
    rows, errors = eval_rows_read(path=data)
    if not rows:
        raise SuiteError(f"{data.name}: no usable rows" + (f" ({errors[0]}, …)" if errors else "."), field="data")
    kb = kb_get(name=kb_name)
    ranks: list[int | None] = []
    intent_hits: list[bool] = []
    handoffs = 0
    for done, row in enumerate(rows, start=1):
        answer = question_answer(kb=kb, text=row.question, k=EVAL_K)
        handoffs += answer.handoff
        if row.answer:
            gold = " ".join(row.answer.split())
            ranked = [" ".join(hit.item.text.split()) for hit in answer.hits if hit.item.kind == "faq"]
            ranks.append(ranked.index(gold) + 1 if gold in ranked else None)
        if row.intent:
            intent_hits.append(answer.intent == row.intent)
        if progress:
            progress(done, len(rows))

    def share(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "recall_at_1": share([r == 1 for r in ranks]),
        "recall_at_3": share([r is not None and r <= 3 for r in ranks]),
        "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 4) if ranks else None,
        "intent_accuracy": share(intent_hits),
        "handoff_rate": round(handoffs / len(rows), 4),
        "n": len(rows),
        "errors": errors,
    }

"""Evaluate the support bot on labelled questions through the production answering path.

    python manage.py support_eval --data questions.csv [--kb default]

Data: a tabular file (CSV, TSV, JSON Lines: services.tabular) with `question` and a gold `answer` (the exact answer
text of an FAQ entry) and/or a gold `intent`. Result (the command's last line): {"recall_at_1", "recall_at_3", "mrr",
"intent_accuracy", "in_scope_accuracy", "oos_recall", "handoff_rate", "n"}; a metric is null when the data has no
gold for it. MRR looks at the top EVAL_K answers. Gold intent `oos` marks an out-of-scope question: `oos_recall` is
the share of them handed off (any handoff counts as caught); `in_scope_accuracy` the share of the other questions
with a gold intent whose predicted intent is right and that were not declared out of scope (CLINC150's measures).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.errors import SuiteError
from services.support.answering import question_answer
from services.support.knowledge import kb_get
from services.tabular import KEEP, table_open

EVAL_K = 10
OOS_GOLD = "oos"  # the gold intent of an out-of-scope question (CLINC150's label)


@dataclass(frozen=True)
class EvalRow:
    line: int
    question: str
    answer: str
    intent: str


def eval_rows_read(*, path: Path) -> tuple[list[EvalRow], list[str]]:
    """(rows, errors "file:line: reason") by the shared reader (KEEP); rows without a question or gold are refused."""
    table = table_open(path=path, policy=KEEP, required=("question",), field="data")
    rows = []
    for row in table:
        values = {k: str(row.values.get(k) or "").strip() for k in ("question", "answer", "intent")}
        if not values["question"] or not (values["answer"] or values["intent"]):
            table.refuse(row.line, "needs a question and a gold answer or intent")
            continue
        rows.append(EvalRow(line=row.line, **values))
    return rows, table.errors


def support_evaluate(*, data: Path, kb_name: str = "default", progress: Callable[[int, int], None] | None = None) -> dict:
    """Recall@1/@3, MRR, intent accuracy and handoff rate of `question_answer` on the rows of `data`."""
    rows, errors = eval_rows_read(path=data)
    if not rows:
        raise SuiteError(f"{data.name}: no usable rows" + (f" ({errors[0]}, …)" if errors else "."), field="data")
    kb = kb_get(name=kb_name)
    ranks: list[int | None] = []
    intent_hits: list[bool] = []
    in_scope_hits: list[bool] = []  # gold intent in scope: the predicted intent is it, and not declared out of scope
    oos_caught: list[bool] = []  # gold intent `oos`: handed off (for any reason) counts as caught
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
            if row.intent.lower() == OOS_GOLD:
                oos_caught.append(answer.handoff)
            else:
                in_scope_hits.append(answer.intent == row.intent and answer.reason != "out_of_scope")
        if progress:
            progress(done, len(rows))

    def share(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "recall_at_1": share([r == 1 for r in ranks]),
        "recall_at_3": share([r is not None and r <= 3 for r in ranks]),
        "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 4) if ranks else None,
        "intent_accuracy": share(intent_hits),
        "in_scope_accuracy": share(in_scope_hits),
        "oos_recall": share(oos_caught),
        "handoff_rate": round(handoffs / len(rows), 4),
        "n": len(rows),
        "errors": errors,
    }

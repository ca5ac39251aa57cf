"""Retrieval quality of the support desk on a BEIR-format data set, through the production retrieval path.

    python manage.py retrieval_eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels.tsv \
        [--kb NAME] [--rerank/--no-rerank] [--retriever hybrid|dense|lexical]

Files (BEIR): corpus lines {"_id", "title", "text"}; queries lines {"_id", "text"}; qrels a TSV
`query-id<TAB>corpus-id<TAB>score` with a header line. The corpus becomes one document (one passage) per line in a
knowledge base of its own (an existing one is reused only when it holds exactly this corpus, and replaced only when
it holds nothing but an earlier evaluation's corpus); its vectors are embedded here. Every query with a relevant
document (score > 0) goes through `hits_retrieve` (services/support/answering.py: hybrid candidates, then the ranking
stage) for its top 100. Result: {"ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10", "n_queries", "n_docs",
"seconds"} (seconds: the queries' wall time; nDCG with linear gains as pytrec_eval / BEIR compute it).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from services.errors import SuiteError

TOP = 100  # retrieved per query: recall@100 needs them
BATCH = 2000  # rows per bulk insert
SOURCE_PREFIX = "beir:"  # the documents' source: what marks a knowledge base as an evaluation's own
MAX_ERRORS = 5  # listed in the error before "…"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CorpusDoc:
    id: str
    title: str
    text: str


def _refuse(path: Path, errors: list[str]) -> None:
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise SuiteError(f"{path.name} is not usable: " + "; ".join(errors[:MAX_ERRORS]) + more, field=path.name)


def _jsonl(path: Path, *, fields: tuple[str, ...], required: tuple[str, ...], kind: str) -> list[dict]:
    """The rows of a JSON Lines file with `fields` as strings; every bad line named "file:line: reason"."""
    if not path.is_file():
        raise SuiteError(f"{path} does not exist ({kind}).", field=kind)
    rows, errors, seen = [], [], set()
    with path.open("r", encoding="utf-8", errors="strict") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    errors.append(f"{path.name}:{number}: not JSON ({exc.msg})")
                    continue
                if not isinstance(value, dict):
                    errors.append(f"{path.name}:{number}: not a JSON object")
                    continue
                missing = [name for name in required if value.get(name) in (None, "")]
                wrong = [name for name in fields if value.get(name) is not None and not isinstance(value[name], (str, int))]
                if missing or wrong:
                    errors.append(f"{path.name}:{number}: " + ("; ".join(
                        [f"`{name}` is missing or empty" for name in missing] + [f"`{name}` is not a string" for name in wrong])))
                    continue
                row = {name: str(value.get(name) or "") for name in fields}
                if row["_id"] in seen:
                    errors.append(f"{path.name}:{number}: `_id` {row['_id']!r} appears twice")
                    continue
                seen.add(row["_id"])
                rows.append(row)
        except UnicodeDecodeError as exc:
            raise SuiteError(f"{path.name}: not UTF-8 text (byte {exc.start} of the file).", field=kind) from None
    _refuse(path, errors)
    if not rows:
        raise SuiteError(f"{path.name}: no {kind} in the file.", field=kind)
    return rows


def corpus_read(*, path: Path) -> list[CorpusDoc]:
    rows = _jsonl(path, fields=("_id", "title", "text"), required=("_id", "text"), kind="corpus")
    return [CorpusDoc(id=row["_id"], title=row["title"].strip(), text=" ".join(row["text"].split())) for row in rows]


def queries_read(*, path: Path) -> dict[str, str]:
    return {row["_id"]: row["text"] for row in _jsonl(path, fields=("_id", "text"), required=("_id", "text"), kind="queries")}


def qrels_read(*, path: Path, queries: dict[str, str], corpus_ids: set[str]) -> dict[str, dict[str, int]]:
    """{query id: {corpus id: score}} from a TSV with a header; unknown ids and bad scores are named by line."""
    if not path.is_file():
        raise SuiteError(f"{path} does not exist (qrels).", field="qrels")
    qrels: dict[str, dict[str, int]] = {}
    errors = []
    with path.open("r", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    if not lines or lines[0].split("\t")[:2] != ["query-id", "corpus-id"]:
        raise SuiteError(f"{path.name}:1: the header must be `query-id<TAB>corpus-id<TAB>score`.", field="qrels")
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            errors.append(f"{path.name}:{number}: {len(parts)} tab-separated fields, expected 3")
            continue
        query_id, corpus_id, score = (p.strip() for p in parts)
        try:
            value = int(score)
        except ValueError:
            errors.append(f"{path.name}:{number}: score {score!r} is not a whole number")
            continue
        if query_id not in queries:
            errors.append(f"{path.name}:{number}: query {query_id!r} is not in the queries file")
        elif corpus_id not in corpus_ids:
            errors.append(f"{path.name}:{number}: document {corpus_id!r} is not in the corpus")
        else:
            qrels.setdefault(query_id, {})[corpus_id] = value
    _refuse(path, errors)
    if not any(score > 0 for judged in qrels.values() for score in judged.values()):
        raise SuiteError(f"{path.name}: no relevant (score > 0) pair.", field="qrels")
    return qrels


# --- the knowledge base --------------------------------------------------------------------------------------

def _passage_hash(doc: CorpusDoc) -> str:
    from services.support.documents import PassageChunk

    return PassageChunk(title=doc.title, location="", text=doc.text).content_hash


def corpus_kb(*, name: str, corpus: list[CorpusDoc], progress: Progress | None = None) -> tuple[object, dict[int, str]]:
    """(the KB holding exactly `corpus`, {item id: corpus id}), imported and embedded here.

    1. A KB of that name holding exactly this corpus is reused (its missing vectors embedded); one holding only an
       earlier evaluation's documents (sources "beir:…", no FAQ, no conversation) is replaced; any other is refused.
    2. One document and one passage per corpus line (bulk inserts), then the vectors, in this process.
    """
    from apps.support.models import Document, KnowledgeBase, Passage
    from services.support.knowledge import item_id, kb_ensure, kb_space, kb_touch, kb_vectors_embed
    from services.vectors import space_drop

    wanted = {SOURCE_PREFIX + doc.id: _passage_hash(doc) for doc in corpus}
    kb = KnowledgeBase.objects.filter(name=name).first()
    if kb is not None:
        held = dict(Document.objects.filter(kb=kb).values_list("source", "content_hash"))
        if held != wanted:
            foreign = (kb.faqs.exists() or kb.conversations.exists()
                       or any(not source.startswith(SOURCE_PREFIX) for source in held))
            if foreign:
                raise SuiteError(f"Knowledge base {name!r} holds other content; give --kb a new name.", field="kb")
            with transaction.atomic():
                space_drop(space=kb_space(kb))
                kb.delete()
            kb = None
    if kb is None:
        kb = kb_ensure(name=name)
        for start in range(0, len(corpus), BATCH):
            chunk = corpus[start:start + BATCH]
            with transaction.atomic():
                documents = Document.objects.bulk_create([
                    Document(kb=kb, source=SOURCE_PREFIX + doc.id, title=(doc.title or doc.id)[:300],
                             content_hash=wanted[SOURCE_PREFIX + doc.id]) for doc in chunk])
                Passage.objects.bulk_create([
                    Passage(kb=kb, document=document, ordinal=0, title=doc.title[:300], location="", text=doc.text,
                            content_hash=document.content_hash) for document, doc in zip(documents, chunk)])
        kb_touch(kb)
    kb_vectors_embed(kb=kb, progress=progress)
    kb_touch(kb)  # every process reloads its lexical index and items
    ids = {item_id(passage): source[len(SOURCE_PREFIX):] for passage, source in
           ((p, p.document.source) for p in Passage.objects.filter(kb=kb).select_related("document").only("pk", "document__source"))}
    return kb, ids


# --- metrics ---------------------------------------------------------------------------------------------------

def ndcg_at(*, ranked: list[str], judged: dict[str, int], k: int) -> float:
    """nDCG@k with linear gains (pytrec_eval's ndcg_cut, as BEIR reports it)."""
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


def recall_at(*, ranked: list[str], judged: dict[str, int], k: int) -> float:
    relevant = {doc for doc, g in judged.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(*, ranked: list[str], judged: dict[str, int], k: int) -> float:
    return next((1.0 / rank for rank, doc in enumerate(ranked[:k], start=1) if judged.get(doc, 0) > 0), 0.0)


def retrieval_evaluate(*, corpus: Path, queries: Path, qrels: Path, kb_name: str = "retrieval-eval", rerank: bool = True,
                       retriever: str = "hybrid", progress: Progress | None = None,
                       embed_progress: Progress | None = None) -> dict:
    """The BEIR metrics of the production retrieval path on one data set (see the module docstring)."""
    from services.support.answering import hits_retrieve
    from services.support.retrieval import RETRIEVERS

    if retriever not in RETRIEVERS:
        raise SuiteError(f"`retriever` must be one of {', '.join(RETRIEVERS)}, not {retriever!r}.", field="retriever")
    docs = corpus_read(path=corpus)
    texts = queries_read(path=queries)
    judged_all = qrels_read(path=qrels, queries=texts, corpus_ids={doc.id for doc in docs})
    judged_all = {q: j for q, j in judged_all.items() if any(g > 0 for g in j.values())}
    kb, ids = corpus_kb(name=kb_name, corpus=docs, progress=embed_progress)
    sums = {"ndcg_at_10": 0.0, "recall_at_10": 0.0, "recall_at_100": 0.0, "mrr_at_10": 0.0}
    started = time.perf_counter()
    latencies = []
    for done, (query_id, judged) in enumerate(sorted(judged_all.items()), start=1):
        began = time.perf_counter()
        hits = hits_retrieve(kb=kb, query=texts[query_id], k=TOP, rerank=rerank, retriever=retriever)
        latencies.append(time.perf_counter() - began)
        ranked = [ids[hit.item.id] for hit in hits if hit.item.id in ids]
        sums["ndcg_at_10"] += ndcg_at(ranked=ranked, judged=judged, k=10)
        sums["recall_at_10"] += recall_at(ranked=ranked, judged=judged, k=10)
        sums["recall_at_100"] += recall_at(ranked=ranked, judged=judged, k=100)
        sums["mrr_at_10"] += mrr_at(ranked=ranked, judged=judged, k=10)
        if progress:
            progress(done, len(judged_all))
    seconds = time.perf_counter() - started
    n = len(judged_all)
    latencies.sort()
    result = {name: round(value / n, 4) for name, value in sums.items()}
    result.update(n_queries=n, n_docs=len(docs), seconds=round(seconds, 2))
    # Not part of the result line (its keys are a contract): the caller prints them apart.
    result["_detail"] = {"rerank": rerank, "retriever": retriever, "kb": kb.name,
                         "query_ms_p50": round(1000 * latencies[len(latencies) // 2], 2),
                         "query_ms_p95": round(1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2)}
    return result

"""Support desk benchmark: latency of one answer on a 10,000-passage knowledge base vs the raw embed + search cost.

    python -m pipelines.bench support [--json] [--passages 10000] [--queries 200]

Runs on its own var/ folder (var/bench-support): a synthetic KB is created once and its index reused on later runs.
Also times a FAISS search (one query, k=20) at 100k and 1M random vectors, with the index type the KB would get
at that size (IVF past SUPPORT_IVF_THRESHOLD) and exact search for reference.
Last line: {"p50_ms", "p95_ms", "p99_ms", "unranked_p95_ms" (the same answers without the ranking stage),
"raw_p95_ms", "passages", "faiss_100k_ms", "faiss_1m_ms", ...}.
"""
from __future__ import annotations

import random
import statistics
import time

import numpy as np

KB_NAME = "bench"
PRODUCTS = ["router", "camera", "speaker", "thermostat", "doorbell", "charger", "headset", "tablet", "printer", "scanner"]
TOPICS = ["battery life", "warranty", "factory reset", "firmware update", "wall mounting", "pairing", "returns",
          "power supply", "cleaning", "noise", "overheating", "error lights", "spare parts", "shipping", "setup"]
FACTS = ["lasts about {n} hours", "is covered for {n} months", "needs the button held for {n} seconds",
         "takes about {n} minutes", "works up to {n} metres away", "ships within {n} days"]


def passages_synthetic(n: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """(title, text) pairs: product, model code, topic and a number, so both dense and lexical search have work."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        product, topic = PRODUCTS[i % len(PRODUCTS)], TOPICS[(i // len(PRODUCTS)) % len(TOPICS)]
        code = f"{product[:2].upper()}-{100 + i}"
        fact = rng.choice(FACTS).format(n=rng.randint(2, 90))
        out.append((f"{code} {product} — {topic}", f"The {product} {code}: its {topic} {fact}. "
                                                     f"See the {topic} section of the {product} manual for details."))
    return out


def kb_ensure_bench(n: int, quiet: bool) -> object:
    from apps.support.models import Document, Passage
    from services.support.documents import text_hash
    from services.support.knowledge import kb_ensure, kb_vectors_embed

    kb = kb_ensure(name=KB_NAME)
    if Passage.objects.filter(kb=kb).count() != n:
        Document.objects.filter(kb=kb).delete()
        document = Document.objects.create(kb=kb, source="synthetic", title="Synthetic manuals", content_hash="-")
        Passage.objects.bulk_create([Passage(kb=kb, document=document, ordinal=i, title=title, location=f"item {i}", text=text,
                                             content_hash=text_hash(text)) for i, (title, text) in enumerate(passages_synthetic(n))],
                                    batch_size=2000)
    started = time.monotonic()  # embeds only what the shared vectors lack (all of it after a fresh synthetic KB)
    kb_vectors_embed(kb=kb, progress=None if quiet else lambda d, t: print(f"\rembedding {d}/{t}", end="", flush=True))
    if not quiet:
        print(f"\nvectors of {n} passages ready in {time.monotonic() - started:.1f} s")
    return kb


def percentiles(samples: list[float]) -> dict[str, float]:
    q = np.percentile(np.array(samples) * 1000, [50, 95, 99])
    return {"p50_ms": round(float(q[0]), 2), "p95_ms": round(float(q[1]), 2), "p99_ms": round(float(q[2]), 2)}


def raw_path(base_path: str, vectors: np.ndarray) -> object:
    """transformers + one FAISS IndexFlatIP directly: the floor the answering path is compared with."""
    import faiss
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModel.from_pretrained(base_path).eval()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)

    def run(text: str) -> None:
        batch = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state  # (1, seq, hidden)
            pooled = torch.nn.functional.normalize(hidden.mean(1), dim=-1).numpy()  # (1, hidden)
        index.search(pooled, 20)

    return run


def faiss_search_ms(n: int, dim: int, *, quiet: bool) -> dict[str, float]:
    """Median time of one k=20 query at n random unit vectors: the KB's index type for that size, and exact."""
    import faiss

    from services.vectors import DenseIndex, EncoderTag

    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(n, 50, replace=False)] + 0.01
    started = time.monotonic()
    ours = DenseIndex.build(tag=EncoderTag(name="random", sha256="-", dim=dim), ids=np.arange(n), vectors=vectors)
    build_s = time.monotonic() - started
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    out = {}
    for name, search in (("ours", lambda q: ours.search(vectors=q, k=20)), ("flat", lambda q: exact.search(q, 20))):
        times = []
        for q in queries:
            t = time.perf_counter()
            search(q[None, :])
            times.append(time.perf_counter() - t)
        out[name] = round(statistics.median(times) * 1000, 3)
    if not quiet:
        print(f"faiss {n:>9,} vectors: {ours.kind} {out['ours']} ms (built in {build_s:.1f} s), exact flat {out['flat']} ms")
    return {"ms": out["ours"], "kind": ours.kind, "flat_ms": out["flat"]}


def support_bench(*, n_passages: int, n_queries: int, quiet: bool) -> dict[str, object]:
    import faiss

    from services.registry.versions import base_default_ensure
    from services.support.answering import question_answer
    from services.support.knowledge import kb_space
    from services.support.retrieval import kb_search
    from services.vectors import gpu_available, space_view

    kb = kb_ensure_bench(n_passages, quiet)
    search = kb_search(kb=kb)  # loads BM25 once, as a running server would have
    view = space_view(space=kb_space(kb))  # and the KB's vectors from the database
    rng = random.Random(1)
    rows = passages_synthetic(n_passages)
    queries = []
    for _ in range(n_queries):
        title, _text = rows[rng.randrange(n_passages)]
        code, product = title.split(" ")[:2]
        queries.append(rng.choice([f"How long is the {title.split('— ')[1]} of my {product}?",
                                   f"{code} {title.split('— ')[1]}", f"my {product} has a problem with {title.split('— ')[1]}"]))
    vectors = np.vstack([view.index.vector(i) for i in list(search.items)[:n_passages]])
    raw = raw_path(base_default_ensure().path, vectors)
    for text in queries[:10]:  # warm up every path
        question_answer(kb=kb, text=text)
        question_answer(kb=kb, text=text, rerank=False)
        raw(text)
    answer_s, unranked_s, raw_s = [], [], []
    for text in queries:  # interleaved, so every path sees the same machine load
        t = time.perf_counter()
        question_answer(kb=kb, text=text)
        answer_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        question_answer(kb=kb, text=text, rerank=False)  # the same answer without the ranking stage
        unranked_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        raw(text)
        raw_s.append(time.perf_counter() - t)
    answer, unranked, raw_p = percentiles(answer_s), percentiles(unranked_s), percentiles(raw_s)
    if not quiet:
        print(f"answer ({n_passages} passages, {n_queries} queries): p50 {answer['p50_ms']} ms, p95 {answer['p95_ms']} ms, "
              f"p99 {answer['p99_ms']} ms; without the ranking stage p95 {unranked['p95_ms']} ms; "
              f"raw embed + FAISS: p50 {raw_p['p50_ms']} ms, p95 {raw_p['p95_ms']} ms")
    dim = view.tag.dim
    at_100k = faiss_search_ms(100_000, dim, quiet=quiet)
    at_1m = faiss_search_ms(1_000_000, dim, quiet=quiet)
    return {**answer, "unranked_p50_ms": unranked["p50_ms"], "unranked_p95_ms": unranked["p95_ms"],
            "raw_p50_ms": raw_p["p50_ms"], "raw_p95_ms": raw_p["p95_ms"], "passages": n_passages,
            "queries": n_queries, "faiss_100k_ms": at_100k["ms"], "faiss_100k_kind": at_100k["kind"],
            "faiss_100k_flat_ms": at_100k["flat_ms"], "faiss_1m_ms": at_1m["ms"], "faiss_1m_kind": at_1m["kind"],
            "faiss_1m_flat_ms": at_1m["flat_ms"], "encoder": view.tag.name, "faiss_gpu": gpu_available(),
            "faiss_version": faiss.__version__, "threads": __import__("torch").get_num_threads()}

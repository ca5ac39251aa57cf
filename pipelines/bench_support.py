"""Support desk benchmark: latency of one answer on a 10,000-passage knowledge base vs the raw embed + search cost.

    python -m pipelines.bench support [--json] [--passages 10000] [--queries 200] [--no-cross-encoder]

Runs on its own var/ folder (var/bench-support): a synthetic KB is created once and its index reused on later runs.
Also times a FAISS search (one query, k=20) at 100k and 1M random vectors, with the index type the KB would get
at that size (IVF past SUPPORT_IVF_THRESHOLD) and exact search for reference.

The cross-encoder (the ranking stage's learned signal, the registry's `rerank` task): the bench registers, once in its
own registry, a `rerank` version of the production shape (the default base, a LoRA adapter and a 2-label head, the
default ClassifierConfig) QUICKLY TRAINED for one epoch on the bench KB's own material pairs (`kb_pairs`, a sample of
queries): latency does not depend on how well it ranks, and a trained head spreads its scores, so the int8/float32
rank agreement below means something. Every query then runs, interleaved, through:
1. the answer with the ranking stage but no learned signal (`p50_ms`...: as before the cross-encoder existed),
2. the answer without the ranking stage (`unranked_*`), 3. raw embed + FAISS (`raw_*`),
4. the answer with the cross-encoder as production serves it (`cross_encoder_*`: SUITE_MERGED_TASKS, by default its
   own copy of the base with the LoRA merged in, run by ONNX Runtime on the CPU (SUITE_CPU_ENGINE); int8 with
   SUITE_QUANTIZE=int8),
5. the same with the cross-encoder served as before (`cross_encoder_before_*`: its LoRA on the shared float32 base,
   switched in per call, through a runtime and micro-batcher of its own).
The scores of 4 and 5 for the same candidates give `cross_encoder_top1_agreement` (share of queries whose best-scored
candidate is the same) and `cross_encoder_spearman` (mean rank correlation per query).
Last line: {"p50_ms", "p95_ms", "p99_ms", "unranked_p95_ms" (the same answers without the ranking stage),
"raw_p95_ms", "passages", "faiss_100k_ms", "faiss_1m_ms", "cross_encoder_p50_ms", "cross_encoder_p95_ms",
"cross_encoder_p99_ms", "cross_encoder_call_p95_ms" (the scorer's call alone), "cross_encoder_pairs" (candidates
scored per answer), "cross_encoder_pair_tokens_mean", "cross_encoder_before_p95_ms", "cross_encoder_adapter", ...}.
"""
from __future__ import annotations

import random
import statistics
import time
from contextlib import contextmanager, nullcontext

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


RERANK_QUERIES = 60  # material queries of the bench KB the quick `rerank` version trains on (~5 pairs each)


def rerank_champion_ensure(kb: object, *, quiet: bool) -> str:
    """The bench registry's `rerank` champion (trained and registered on the first run), described in a few words."""
    import tempfile
    from pathlib import Path

    from services.errors import NotFound
    from services.registry.versions import version_get
    from services.support.rerank import RERANK_TASK, kb_pairs

    try:
        version = version_get(task_name=RERANK_TASK)
    except NotFound:
        import csv

        from pipelines.training import TrainRequest, adapter_train

        pairs = kb_pairs(kb=kb, max_queries=RERANK_QUERIES)
        with tempfile.TemporaryDirectory() as folder:
            data = Path(folder) / "bench-rerank.csv"
            with data.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([("text", "label"), *((p.text, p.label) for p in pairs)])
            summary = adapter_train(TrainRequest(task=RERANK_TASK, data=str(data), kind="classifier", epochs=1,
                                                 created_by="pipeline:bench_support"), progress=not quiet)
        if not quiet:
            print(f"rerank v{summary['version']} trained on {len(pairs)} bench pairs in {summary['seconds']} s")
        version = version_get(task_name=RERANK_TASK)
    config = version.train_config or {}
    return (f"rerank v{version.version}: {config.get('peft', 'lora')} r{config.get('lora_r')} + {len(version.label_map)}-label "
            f"head, quickly trained ({version.metrics.get('n_train')} bench pairs, {config.get('epochs')} epoch)")


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return 1.0 if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2 else float(spearmanr(a, b).statistic)


def support_bench(*, n_passages: int, n_queries: int, quiet: bool, cross_encoder: bool = True) -> dict[str, object]:
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
    ce = _CrossEncoderPaths(kb=kb, quiet=quiet) if cross_encoder else None
    for text in queries[:10]:  # warm up every path
        with ce.without() if ce else nullcontext():
            question_answer(kb=kb, text=text)
        question_answer(kb=kb, text=text, rerank=False)
        raw(text)
        if ce:
            ce.answer(text, before=False)
            ce.answer(text, before=True)
    if ce:
        ce.reset()
    answer_s, unranked_s, raw_s = [], [], []
    for position, text in enumerate(queries):  # interleaved, so every path sees the same machine load
        t = time.perf_counter()
        with ce.without() if ce else nullcontext():
            question_answer(kb=kb, text=text)
        answer_s.append(time.perf_counter() - t)
        if ce:  # the cross-encoder as served now and as before, in turns (which goes first alternates)
            ce.answer(text, before=position % 2 == 1)
            ce.answer(text, before=position % 2 == 0)
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
    crossed = ce.results() if ce else {}
    if ce:
        ce.close()
        if not quiet:
            print(f"answer with the cross-encoder ({crossed['cross_encoder_pairs']} pairs of "
                  f"{crossed['cross_encoder_pair_tokens_mean']} tokens on average): p50 {crossed['cross_encoder_p50_ms']} ms, "
                  f"p95 {crossed['cross_encoder_p95_ms']} ms, p99 {crossed['cross_encoder_p99_ms']} ms; the scorer's call "
                  f"p95 {crossed['cross_encoder_call_p95_ms']} ms; served as before (LoRA on the shared float32 base): "
                  f"answer p95 {crossed['cross_encoder_before_p95_ms']} ms, call p95 {crossed['cross_encoder_before_call_p95_ms']} ms; "
                  f"top-1 agreement {crossed['cross_encoder_top1_agreement']}, Spearman {crossed['cross_encoder_spearman']} "
                  f"({crossed['cross_encoder_adapter']})")
    dim = view.tag.dim
    at_100k = faiss_search_ms(100_000, dim, quiet=quiet)
    at_1m = faiss_search_ms(1_000_000, dim, quiet=quiet)
    return {**answer, "unranked_p50_ms": unranked["p50_ms"], "unranked_p95_ms": unranked["p95_ms"],
            "raw_p50_ms": raw_p["p50_ms"], "raw_p95_ms": raw_p["p95_ms"], "passages": n_passages,
            "queries": n_queries, "faiss_100k_ms": at_100k["ms"], "faiss_100k_kind": at_100k["kind"],
            "faiss_100k_flat_ms": at_100k["flat_ms"], "faiss_1m_ms": at_1m["ms"], "faiss_1m_kind": at_1m["kind"],
            "faiss_1m_flat_ms": at_1m["flat_ms"], "encoder": view.tag.name, "faiss_gpu": gpu_available(),
            "faiss_version": faiss.__version__, "threads": __import__("torch").get_num_threads(), **crossed}


class _CrossEncoderPaths:
    """The answer with the `rerank` champion as production serves it, and as it was served before (LoRA on the shared
    float32 base), each scorer call timed and its scores kept per question for the agreement figures."""

    def __init__(self, *, kb: object, quiet: bool) -> None:
        from django.conf import settings

        from services.ml.encoder import texts_tokenize, tokenizer_load
        from services.ml.runtime import InferenceRuntime, MicroBatcher
        from services.registry.serving import champion_ref
        from services.registry.versions import version_get
        from services.support.rerank import RERANK_TASK

        self.kb = kb
        self.adapter = rerank_champion_ensure(kb, quiet=quiet)
        version = version_get(task_name=RERANK_TASK)
        self.top = settings.SUPPORT_RERANK_TOP
        # As serving built runtimes before SUITE_MERGED_TASKS: the champion's LoRA in the shared base's PeftModel.
        runtime = InferenceRuntime(base_path=version.base.path, resolver=champion_ref, resolve_ttl_s=settings.SUITE_RESOLVE_TTL_S,
                                   max_batch=settings.SUITE_BATCH_MAX)
        self.before_batcher = MicroBatcher(runtime=runtime, max_wait_ms=settings.SUITE_BATCH_WAIT_MS, max_batch=settings.SUITE_BATCH_MAX)
        self._tokenizer = tokenizer_load(version.base.path)
        self._tokenize = texts_tokenize
        self._max_length = int((version.train_config or {}).get("max_length", 128))
        self.reset()

    def reset(self) -> None:
        self.times: dict[str, list[float]] = {"after": [], "before": [], "after_call": [], "before_call": []}
        self.scores: dict[str, dict[str, list[float]]] = {"after": {}, "before": {}}
        self.pairs: list[int] = []
        self.tokens: list[int] = []

    def _scorer(self, *, before: bool, question: str):  # noqa: ANN202
        from services.ml.runtime import KIND_CLASSIFY
        from services.support.rerank import RERANK_TASK, champion_scores, pair_text

        key = "before" if before else "after"

        def classify_before(texts: list[str]):  # noqa: ANN202 - the LoRA on the shared base, its own batcher
            return self.before_batcher.submit(task=RERANK_TASK, texts=texts, kind=KIND_CLASSIFY).result()

        def score(asked: str, candidates):  # noqa: ANN001, ANN202
            t = time.perf_counter()
            found = list(champion_scores(asked, candidates, classify=classify_before if before else None))
            self.times[f"{key}_call"].append(time.perf_counter() - t)
            self.scores[key][question] = found[:self.top]
            if not before:
                texts = [pair_text(question=asked, item=item) for item in candidates[:self.top]]
                self.pairs.append(len(texts))
                self.tokens += [len(ids) for ids in self._tokenize(self._tokenizer, texts, max_length=self._max_length)]
            return found

        return score

    def answer(self, text: str, *, before: bool) -> None:
        from services.support.answering import question_answer
        from services.support.ranking import scorer_install

        scorer_install(self._scorer(before=before, question=text))
        try:
            t = time.perf_counter()
            question_answer(kb=self.kb, text=text)
            self.times["before" if before else "after"].append(time.perf_counter() - t)
        finally:
            scorer_install(None)

    def without(self) -> object:
        """A context in which answering has no learned signal (as with no `rerank` champion)."""
        from services.errors import NotFound
        from services.support.ranking import scorer_install

        def none(question: str, candidates):  # noqa: ANN001, ANN202
            raise NotFound("no learned signal in this path")

        @contextmanager
        def installed():  # noqa: ANN202
            scorer_install(none)
            try:
                yield
            finally:
                scorer_install(None)

        return installed()

    def results(self) -> dict[str, object]:
        after, before = percentiles(self.times["after"]), percentiles(self.times["before"])
        call, before_call = percentiles(self.times["after_call"]), percentiles(self.times["before_call"])
        common = [q for q in self.scores["after"] if q in self.scores["before"] and len(self.scores["after"][q]) > 1]
        top1 = [int(np.argmax(self.scores["after"][q]) == np.argmax(self.scores["before"][q])) for q in common]
        rho = [_spearman(self.scores["after"][q], self.scores["before"][q]) for q in common]
        drift = [abs(a - b) for q in common for a, b in zip(self.scores["after"][q], self.scores["before"][q])]
        return {"cross_encoder_p50_ms": after["p50_ms"], "cross_encoder_p95_ms": after["p95_ms"],
                "cross_encoder_p99_ms": after["p99_ms"], "cross_encoder_call_p50_ms": call["p50_ms"],
                "cross_encoder_call_p95_ms": call["p95_ms"],
                "cross_encoder_pairs": round(statistics.mean(self.pairs), 2) if self.pairs else 0,
                "cross_encoder_pair_tokens_mean": round(statistics.mean(self.tokens), 1) if self.tokens else 0,
                "cross_encoder_pair_tokens_max": max(self.tokens, default=0),
                "cross_encoder_before_p50_ms": before["p50_ms"], "cross_encoder_before_p95_ms": before["p95_ms"],
                "cross_encoder_before_p99_ms": before["p99_ms"], "cross_encoder_before_call_p95_ms": before_call["p95_ms"],
                "cross_encoder_top1_agreement": round(sum(top1) / len(top1), 4) if top1 else None,
                "cross_encoder_spearman": round(statistics.mean(rho), 4) if rho else None,
                "cross_encoder_max_abs_diff": round(max(drift), 4) if drift else None,
                "cross_encoder_serving": _serving_described(), "cross_encoder_adapter": self.adapter}

    def close(self) -> None:
        self.before_batcher.close()


def _serving_described() -> str:
    """How production served the `rerank` champion in this run: read from the serving runtime's loaded adapter."""
    from services.registry.serving import batcher_get
    from services.support.rerank import RERANK_TASK

    runtime = batcher_get(task=RERANK_TASK).runtime
    served = [runtime._adapters[ref] for ref in runtime.loaded() if ref.task == RERANK_TASK]
    if not served:
        return "not loaded"
    int8 = runtime.quantize == "int8"
    if not served[-1].merged:
        return "lora on the shared base" + (", int8 base" if int8 else "")
    engine = "onnxruntime" if served[-1].onnx is not None else "torch"
    return f"merged copy, {'int8' if int8 else 'float32'}, {engine}"

"""Dense vector index: FAISS with our own ids, tagged with its encoder (held in memory; save/load for tools and tests).

Django-free (the tunables are read from django.conf.settings when Django is configured, else their defaults).
Ids are stable row keys (a KB item id, an item pk), so an entry can be added, replaced or removed without a
full rebuild. The index type follows the corpus size at (re)build time: exact inner product (IndexFlatIP
inside an IndexIDMap2) below SUPPORT_IVF_THRESHOLD vectors, IVF past it (inverted lists support add_with_ids
and remove_ids, so updates stay incremental). Vectors are L2-normalised, so inner product = cosine
similarity. On a CUDA machine with faiss-gpu the index is copied to the GPU for search; the CPU copy is
what is saved.
"""
from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from services.errors import SuiteError

# Defaults of the tunables (config/settings.py validates the environment's values; these serve without Django).
IVF_THRESHOLD = 20000  # below: exact search is fast enough (ms)
IVF_NPROBE = 16  # lists visited per query: recall vs speed
# One query at a time is the serving pattern: OpenMP threads cost more than they save there (and spin on a busy CPU).
SEARCH_THREADS = 1
_threads_set = False


def _tunable(name: str, default: int) -> int:
    """settings.<name> when Django is configured (read at call time, so tests may override it), else `default`."""
    try:
        from django.conf import settings
    except ImportError:  # a plain shell without Django
        return default
    return int(getattr(settings, name, default)) if settings.configured else default


def ivf_threshold() -> int:
    """Vectors from which a (re)build makes an IVF index rather than an exact one (SUPPORT_IVF_THRESHOLD)."""
    return _tunable("SUPPORT_IVF_THRESHOLD", IVF_THRESHOLD)


def ivf_nprobe() -> int:
    """Inverted lists an IVF search visits (SUPPORT_IVF_NPROBE)."""
    return _tunable("SUPPORT_IVF_NPROBE", IVF_NPROBE)


def search_threads() -> int:
    """OpenMP threads FAISS searches with, set once per process (SUPPORT_FAISS_THREADS)."""
    return _tunable("SUPPORT_FAISS_THREADS", SEARCH_THREADS)


@dataclass(frozen=True)
class EncoderTag:
    """Which encoder made an index's vectors: a saved index is used only by the same name, hash and dimension."""

    name: str  # "base:<name>" or "<task>:v<N>" (services.vectors.encode.encoder_tag_for)
    sha256: str  # of the base's weights, or of the adapter version
    dim: int  # vector width


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees a CUDA device (faiss-gpu); faiss-cpu otherwise."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class DenseIndex:
    """A FAISS index with int64 ids; `search` returns (ids, cosine scores) best first."""

    def __init__(self, *, tag: EncoderTag, index: faiss.Index | None = None) -> None:
        self.tag = tag
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(tag.dim))
        self._gpu_index = None
        self._lock = threading.RLock()  # writes (a sync's deltas) and searches never overlap on one FAISS index

    @classmethod
    def build(cls, *, tag: EncoderTag, ids: np.ndarray, vectors: np.ndarray) -> DenseIndex:
        """A fresh index sized for `len(ids)` vectors: exact when small, IVF when large."""
        vectors = _check(vectors, tag.dim)
        n = len(ids)
        if n >= ivf_threshold():
            nlist = max(1, int(math.sqrt(n)))  # the usual sqrt(n) lists: 1M vectors → 1000 lists of ~1000
            quantizer = faiss.IndexFlatIP(tag.dim)
            index = faiss.IndexIVFFlat(quantizer, tag.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False)  # k-means needs ~40 per list
            index.train(vectors[np.sort(sample)])
            index.nprobe = ivf_nprobe()
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct() by our ids (lexical-only hits)
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(tag.dim))
        built = cls(tag=tag, index=index)
        if n:
            built.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
        return built

    @property
    def kind(self) -> str:
        return "ivf" if isinstance(self.index, faiss.IndexIVF) else "flat"

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> set[int]:
        """The ids stored (an exact index keeps an id map; an IVF index is read list by list)."""
        with self._lock:
            id_map = getattr(self.index, "id_map", None)
            if id_map is not None:
                return {int(i) for i in faiss.vector_to_array(id_map)}
            if isinstance(self.index, faiss.IndexIVF):
                invlists, out = self.index.invlists, set()
                for list_no in range(self.index.nlist):
                    size = invlists.list_size(list_no)
                    if size:
                        out.update(int(i) for i in faiss.rev_swig_ptr(invlists.get_ids(list_no), size))
                return out
        raise SuiteError(f"Cannot list the ids of a {type(self.index).__name__}.")

    def upsert(self, *, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors, replacing any stored under the same ids."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        vectors = _check(vectors, self.tag.dim)
        with self._lock:
            self.index.remove_ids(ids)
            self.index.add_with_ids(vectors, ids)
            self._gpu_index = None

    def remove(self, *, ids: np.ndarray) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        with self._lock:
            self._gpu_index = None
            return int(self.index.remove_ids(ids))

    def search(self, *, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n, k), scores (n, k)); missing slots have id -1."""
        global _threads_set
        if not _threads_set:
            faiss.omp_set_num_threads(search_threads())
            _threads_set = True
        vectors = _check(vectors, self.tag.dim)
        if len(self) == 0:
            return np.full((len(vectors), k), -1, dtype=np.int64), np.zeros((len(vectors), k), dtype=np.float32)
        with self._lock:
            scores, ids = self._searcher().search(vectors, min(k, len(self)))
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)))
        return ids, scores

    def vector(self, key: int) -> np.ndarray | None:
        """The stored vector of `key` (a copy), or None when it has none; safe beside a sync's writes (the lock)."""
        with self._lock:
            try:
                return self.index.reconstruct(int(key))
            except RuntimeError:  # not stored, or an IVF index without a direct map
                return None

    def vectors(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found (n,) bool, vectors (n, dim); zeros where not found) of many keys: one FAISS call when every key is
        stored (a recommendations request asks for ~100: one call at a time was ~5 % of it), else key by key."""
        keys = np.asarray(keys, dtype=np.int64)
        found = np.zeros(len(keys), dtype=bool)
        out = np.zeros((len(keys), self.tag.dim), dtype=np.float32)
        if not len(keys):
            return found, out
        with self._lock:
            try:
                out[:] = self.index.reconstruct_batch(keys)
                found[:] = True
                return found, out
            except RuntimeError:  # a key not stored (or no direct map): key by key through vector()
                pass
            for n, key in enumerate(keys.tolist()):
                stored = self.vector(key)  # the lock is an RLock: taking it again here is fine
                if stored is not None:
                    out[n] = stored
                    found[n] = True
        return found, out

    def scores_for(self, *, vector: np.ndarray, ids: list[int]) -> dict[int, float]:
        """Cosine of one query vector with stored items (for items that lexical search found but dense did not)."""
        out = {}
        for doc in ids:
            stored = self.vector(doc)
            if stored is not None:
                out[doc] = float(np.dot(stored, vector))
        return out

    def _searcher(self) -> faiss.Index:
        if not gpu_available():
            return self.index
        with self._lock:
            if self._gpu_index is None:
                self._gpu_index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, self.index)
            return self._gpu_index

    # --- persistence ---------------------------------------------------------------------------------------

    def save(self, *, folder: Path) -> None:
        """Write index.faiss and meta.json (encoder tag, kind, count) atomically (temp file + rename)."""
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            tmp = folder / "index.faiss.tmp"
            faiss.write_index(self.index, str(tmp))
            os.replace(tmp, folder / "index.faiss")
            meta = {"encoder": self.tag.name, "encoder_sha256": self.tag.sha256, "dim": self.tag.dim,
                    "kind": self.kind, "count": len(self)}
            (folder / "meta.json.tmp").write_text(json.dumps(meta, sort_keys=True, indent=1), encoding="utf-8")
            os.replace(folder / "meta.json.tmp", folder / "meta.json")

    @classmethod
    def load(cls, *, folder: Path, expected: EncoderTag) -> DenseIndex | None:
        """The saved index, or None when there is none or it was built by another encoder (rebuild it)."""
        meta_file, index_file = folder / "meta.json", folder / "index.faiss"
        if not meta_file.is_file() or not index_file.is_file():
            return None
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        tag = EncoderTag(name=meta["encoder"], sha256=meta["encoder_sha256"], dim=int(meta["dim"]))
        if tag != expected:
            return None
        index = faiss.read_index(str(index_file))
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = ivf_nprobe()
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return cls(tag=tag, index=index)


def _check(vectors: np.ndarray, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise SuiteError(f"Vectors of shape {vectors.shape} do not fit an index of dimension {dim}.")
    return vectors

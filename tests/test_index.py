"""Dense index: exact vs hnsw search, the graph cached on disk, per-text query embedding cache."""
from __future__ import annotations

import numpy as np
import pytest

from chatrec import index as index_mod
from chatrec.errors import ConfigError
from chatrec.index import EmbeddingIndex, exact_search, index_with_ann


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_exact_search_returns_best_first():
    vectors = unit_vectors(50)
    top, sims = exact_search(vectors, vectors[7], 3)
    assert top[0] == 7 and sims[0] == pytest.approx(1.0, abs=1e-5)
    assert list(sims) == sorted(sims, reverse=True)


@pytest.mark.parametrize("k", [0, 1, 10, 500])
def test_search_k_bounds(k):
    index = EmbeddingIndex(unit_vectors(100))
    top, sims = index.search(unit_vectors(1, seed=3)[0], k)
    assert len(top) == len(sims) == min(k, 100)


def test_hnsw_above_threshold_finds_what_exact_search_finds(tmp_path):
    vectors = unit_vectors(2000)
    index = index_with_ann(vectors, None, tmp_path / "g.hnsw", ann_threshold=1000)
    assert index.approximate and (tmp_path / "g.hnsw").exists()
    queries = unit_vectors(20, seed=5)
    hits = sum(len(set(index.search(q, 10)[0]) & set(exact_search(vectors, q, 10)[0])) for q in queries)
    assert hits / 200 >= 0.95
    assert EmbeddingIndex(vectors).approximate is False


def test_cached_graph_is_loaded_not_rebuilt(tmp_path, monkeypatch):
    vectors = unit_vectors(1500)
    first = index_with_ann(vectors, None, tmp_path / "g.hnsw", ann_threshold=1000)
    monkeypatch.setattr(index_mod, "build_hnsw", lambda *a, **k: pytest.fail("graph rebuilt"))
    second = index_with_ann(vectors, None, tmp_path / "g.hnsw", ann_threshold=1000)
    q = unit_vectors(1, seed=9)[0]
    assert list(second.search(q, 5)[0]) == list(first.search(q, 5)[0])


def test_graph_for_other_vectors_is_rebuilt(tmp_path):
    index_with_ann(unit_vectors(1500), None, tmp_path / "g.hnsw", ann_threshold=1000)
    other = unit_vectors(1800, seed=1)
    rebuilt = index_with_ann(other, None, tmp_path / "g.hnsw", ann_threshold=1000)
    assert rebuilt.search(other[42], 1)[0][0] == 42


def test_query_texts_are_embedded_once(hash_embedder):
    index = EmbeddingIndex(unit_vectors(10, dim=hash_embedder.dim), hash_embedder)
    first = index.encode(["trains please", "under £40"])
    calls = hash_embedder.calls
    again = index.encode(["under £40", "trains please", "no lego"])
    assert hash_embedder.calls == calls + 1  # only "no lego" was new
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[2], hash_embedder.encode(["no lego"])[0])
    assert index.encode([]).shape == (0, hash_embedder.dim)


def test_large_index_scores_match_float32_products(monkeypatch):
    """Above the size threshold scores come from a float16 copy: same order, error below 1e-3."""
    monkeypatch.setattr(index_mod, "HALF_SCORES_MIN_ITEMS", 500)
    vectors = unit_vectors(800, dim=64)
    large, small = EmbeddingIndex(vectors), EmbeddingIndex(vectors[:400])
    assert large._half is not None and small._half is None
    q = unit_vectors(1, dim=64, seed=4)[0]
    got, exact = large.scores(q), vectors @ q
    assert got.dtype == np.float32 and got.shape == (800,)
    assert np.abs(got - exact).max() < 1e-3
    assert list(np.argsort(-got)[:5]) == list(np.argsort(-exact)[:5])
    np.testing.assert_array_equal(small.scores(q), vectors[:400] @ q)


@pytest.mark.parametrize("native_kernel,split", [(True, False), (True, True), (False, False)],
                         ids=["native", "native-two-threads", "torch"])
def test_large_index_scores_agree_on_either_kernel(monkeypatch, native_kernel, split):
    """The native float16 kernel (on one thread or split over two) and torch's fallback give the
    float32 product of the float16 copy: odd sizes (not a multiple of the kernel's 4 rows or 16
    values, halves of unequal length) included."""
    from chatrec.backends import native

    if native_kernel and not native.available():
        pytest.skip(f"native kernel unavailable: {native.why_not()}")
    monkeypatch.setattr(native, "available", lambda: native_kernel)
    monkeypatch.setattr(index_mod, "HALF_SCORES_MIN_ITEMS", 10)
    monkeypatch.setattr(index_mod, "SPLIT_SCORES_MIN_ITEMS", 10 if split else 10**9)
    monkeypatch.setattr(index_mod.os, "cpu_count", lambda: 2)
    vectors = unit_vectors(1003, dim=50)
    q = unit_vectors(1, dim=50, seed=9)[0]
    got = EmbeddingIndex(vectors).scores(q)
    half_exact = vectors.astype(np.float16).astype(np.float32) @ q
    assert got.dtype == np.float32 and got.shape == (1003,)
    np.testing.assert_allclose(got, half_exact, atol=2e-6 if native_kernel else 5e-4)


def test_native_float16_scores_refuse_the_wrong_layout():
    from chatrec.backends import native

    if not native.available():
        pytest.skip(f"native kernel unavailable: {native.why_not()}")
    m = unit_vectors(20, dim=16).astype(np.float16)
    with pytest.raises(ValueError, match="float16"):
        native.f16_scores(m.astype(np.float32), np.zeros(16, dtype=np.float32))
    with pytest.raises(ValueError, match="float16"):
        native.f16_scores(m[:, ::2], np.zeros(8, dtype=np.float32))
    with pytest.raises(ValueError, match="dimension 16"):
        native.f16_scores(m, np.zeros(8, dtype=np.float32))
    with pytest.raises(ValueError, match="contiguous float32 array of 20"):
        native.f16_scores(m, np.zeros(16, dtype=np.float32), out=np.empty(19, dtype=np.float32))


def test_query_encoding_gives_the_same_vectors_as_the_library():
    """The small-batch path (one query per turn, fast_encoder.LeanBert for MiniLM) skips
    ``model.encode``'s set-up and module wrappers, not its arithmetic: float32 rounding apart
    (a fused query/key/value product adds in another order), the same vectors, padding included."""
    from chatrec.index import SentenceTransformerEmbedder, _one_thread

    try:
        embedder = SentenceTransformerEmbedder(query_precision="float32")
    except Exception as exc:  # no local weights in this environment
        pytest.skip(f"embedding model unavailable: {exc}")
    assert embedder._direct and embedder._lean is not None
    for texts in (["a wooden train set under £40"], ["no lego", "something with a remote control please"],
                  ["b", "aa", "ccc", "dddd"], ["Pokémon: The Movie! 🙂 " * 60]):
        with _one_thread():  # as encode() runs small batches
            expected = embedder._encode(texts, False)
        got = embedder.encode(texts)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_bfloat16_query_products_keep_the_vectors_within_rounding_of_float32():
    """``--query-precision bfloat16`` (the default on CPUs with bfloat16 units): the same directions."""
    from chatrec.index import SentenceTransformerEmbedder

    try:
        exact = SentenceTransformerEmbedder(query_precision="float32")
        fast = SentenceTransformerEmbedder(query_precision="bfloat16")
    except Exception as exc:
        pytest.skip(f"embedding model unavailable: {exc}")
    assert (exact.query_precision, fast.query_precision) == ("float32", "bfloat16")
    texts = ["a wooden train set under £40", "no lego", "something with a remote control please",
             "Pokémon: The Movie! 🙂 " * 60]
    a, b = exact.encode(texts), fast.encode(texts)
    assert b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.9999
    assert not np.array_equal(a, b)  # the products really ran in bfloat16
    with pytest.raises(ConfigError, match="query precision"):
        SentenceTransformerEmbedder(query_precision="int4")


def test_the_lean_encoder_is_only_used_for_the_architecture_it_reproduces(monkeypatch):
    from chatrec.fast_encoder import LeanBert
    from chatrec.index import SentenceTransformerEmbedder

    try:
        model = SentenceTransformerEmbedder().model
    except Exception as exc:
        pytest.skip(f"embedding model unavailable: {exc}")
    assert LeanBert.of(model) is not None
    monkeypatch.setattr(model[1], "pooling_mode", "cls")  # CLS pooling: not what LeanBert computes
    assert LeanBert.of(model) is None
    monkeypatch.undo()
    monkeypatch.setattr(model[0].auto_model.config, "hidden_act", "gelu_new")
    assert LeanBert.of(model) is None


def test_large_index_scores_leave_the_thread_count_alone(monkeypatch):
    import torch

    monkeypatch.setattr(index_mod, "HALF_SCORES_MIN_ITEMS", 10)
    before = torch.get_num_threads()
    EmbeddingIndex(unit_vectors(50, dim=16)).scores(unit_vectors(1, dim=16, seed=2)[0])
    assert torch.get_num_threads() == before

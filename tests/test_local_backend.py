"""The real transformers backend on the tiny random model: streaming, KV-cache reuse, eviction, load errors."""
from __future__ import annotations

import pytest

from chatrec.backends.base import GenerationOptions
from chatrec.errors import ModelLoadError

GREEDY = GenerationOptions(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from chatrec.backends.local import TransformersBackend

    return TransformersBackend(str(tiny_model_dir), device="cpu", dtype="float32")


def conversation(reply: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You recommend toys from a catalog. " * 8},
            {"role": "user", "content": "I want a train set for my son"},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "something cheaper please"}]


def test_stream_yields_text_pieces(backend):
    pieces = list(backend.stream(conversation("ok")[:2], GREEDY))
    assert len(pieces) >= 2
    assert all(isinstance(p, str) and p for p in pieces)


def test_follow_up_turn_reuses_cache_and_matches_uncached_output(backend):
    backend.cache.clear()
    first = conversation("")[:2]
    reply = "".join(backend.stream(first, GREEDY))
    follow_up = conversation(reply)
    hits, reused = backend.cache.hits, backend.cache.reused_tokens
    with_cache = "".join(backend.stream(follow_up, GREEDY))
    assert backend.cache.hits == hits + 1
    prompt_len = backend.count_tokens(follow_up)
    assert backend.cache.reused_tokens - reused >= backend.count_tokens(first) - 1
    assert backend.cache.reused_tokens - reused < prompt_len

    backend.cache.clear()
    without_cache = "".join(backend.stream(follow_up, GREEDY))
    assert with_cache == without_cache


def test_cache_eviction_bounds_entries_and_tokens(tiny_model_dir):
    from chatrec.backends.local import PrefixCache, TransformersBackend

    cache = PrefixCache(max_entries=3, max_tokens=400)
    small = TransformersBackend(str(tiny_model_dir), dtype="float32", prefix_cache=cache)
    for i in range(6):
        list(small.stream([{"role": "user", "content": f"conversation number {i} about kites " * 3}], GREEDY))
        assert len(cache) <= 3
        assert cache.n_tokens <= 400
    assert len(cache) == 3


def test_prefix_cache_takes_longest_shared_prefix():
    from chatrec.backends.local import PrefixCache

    class FakeCache:
        def __init__(self, n):
            self.n = n

        def crop(self, delta):
            self.n += delta

    cache = PrefixCache(max_entries=4, max_tokens=1000, min_reuse=2)
    cache.put([1, 2, 3, 4, 5], FakeCache(5))
    cache.put([1, 2, 9, 9], FakeCache(4))
    got, n = cache.take([1, 2, 3, 4, 7, 8])
    assert (n, got.n) == (4, 4)
    assert len(cache) == 1  # taken, not copied
    assert cache.take([5, 5, 5]) == (None, 0)
    # The whole prompt cached: one token is left for the model to encode.
    cache.put([4, 4, 4], FakeCache(3))
    got, n = cache.take([4, 4, 4])
    assert (n, got.n) == (2, 2)


def test_int8_quantised_backend_still_streams(tiny_model_dir):
    from chatrec.backends.local import TransformersBackend

    q = TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize="int8")
    assert type(q.model.lm_head).__name__ == "Int8Linear"
    assert "".join(q.stream(conversation("ok")[:2], GREEDY))


@pytest.mark.parametrize("path", ["/nonexistent/model-dir", "./missing-model"])
def test_missing_model_path_raises_helpful_error(path):
    from chatrec.backends.local import TransformersBackend

    with pytest.raises(ModelLoadError) as err:
        TransformersBackend(path)
    message = str(err.value)
    assert f"no usable model at path {path!r}" in message
    assert "--model PATH" in message and "--model none" in message


def test_cuda_without_gpu_is_a_clear_error(tiny_model_dir):
    import torch

    from chatrec.backends.local import TransformersBackend

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ModelLoadError, match="no CUDA GPU is visible; use --device cpu"):
        TransformersBackend(str(tiny_model_dir), device="cuda")

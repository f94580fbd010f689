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


def test_w8a8_backend_from_settings_streams(tiny_model_dir):
    from chatrec.backends import load_backend
    from chatrec.settings import Settings

    q = load_backend(Settings.load({"model": str(tiny_model_dir), "dtype": "bfloat16", "quantize": "w8a8"}))
    assert q.quantize == "w8a8" and q.model.lm_head.packed is not None
    assert "".join(q.stream(conversation("ok")[:2], GREEDY))
    with pytest.raises(ModelLoadError, match="unknown quantisation 'int4': use one of auto, none, int8, w8a8"):
        load_backend(Settings.load({"model": str(tiny_model_dir), "quantize": "int4"}))


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


def test_auto_device_without_gpu_falls_back_to_cpu_and_says_so(tiny_model_dir, caplog):
    import torch

    from chatrec.backends.local import TransformersBackend

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with caplog.at_level("WARNING", logger="chatrec.backends.local"):
        backend = TransformersBackend(str(tiny_model_dir), device="auto", dtype="float32")
    assert backend.device == "cpu" and backend.model.device.type == "cpu"
    assert "--device auto: no CUDA GPU is visible" in caplog.text
    assert "".join(backend.stream(conversation("ok")[:2], GREEDY))


def test_gpu_path_loads_through_accelerate_in_half_precision(tiny_model_dir, monkeypatch):
    """No GPU here: pretend one is visible and check what the backend asks transformers/accelerate for."""
    import torch
    import transformers

    from chatrec.backends.local import TransformersBackend

    real = transformers.AutoModelForCausalLM.from_pretrained
    asked = {}

    def from_pretrained(source, **kwargs):
        asked.update(kwargs)
        return real(source, dtype=torch.float32)  # stays on the CPU

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    backend = TransformersBackend(str(tiny_model_dir), device="auto")
    assert asked == {"dtype": torch.bfloat16, "device_map": "cuda"}
    assert (backend.device, backend.quantize) == ("cuda", "none")  # int8 is the CPU path only


def test_int8_linear_prefill_and_decode_paths_agree():
    """Many rows (prefill) take the dense kernel, few rows (decoding) the int8 kernel: same numbers."""
    import torch

    from chatrec.backends.local import _int8_linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32, bias=True).to(torch.bfloat16)
    q = _int8_linear(torch, linear)
    x = torch.randn(1, 20, 64, dtype=torch.bfloat16)
    prefill = q(x)[0].float()
    decode = torch.cat([q(x[:, i:i + 1])[0] for i in range(20)]).float()
    reference = x[0].float() @ (q.weight_int8.float() * q.scales.float()[:, None]).T + linear.bias.float()
    assert prefill.shape == decode.shape == (20, 32)
    assert torch.allclose(prefill, reference, atol=0.05, rtol=0.02)
    assert torch.allclose(decode, reference, atol=0.05, rtol=0.02)
    # int8 with per-row scales stays close to the bf16 layer it replaced
    assert torch.allclose(prefill, linear(x)[0].float(), atol=0.08, rtol=0.05)


@pytest.mark.parametrize("reduce_range, bound", [(True, 0.03), (False, 0.015)], ids=["7-bit", "8-bit"])
def test_w8a8_decoding_stays_close_to_the_weight_only_layer(reduce_range, bound):
    """w8a8 decoding quantises each token's activations (per token): close, not equal."""
    import torch

    from chatrec.backends.local import _cpu_has_vnni, _int8_linear

    if not reduce_range and not _cpu_has_vnni():
        pytest.skip("8-bit activations are used only on CPUs with VNNI")
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 96, bias=True).to(torch.bfloat16)
    weight_only = _int8_linear(torch, linear)
    w8a8 = _int8_linear(torch, linear, activations=True, reduce_range=reduce_range)
    x = torch.randn(1, 20, 256, dtype=torch.bfloat16)
    reference = weight_only(x)[0].float()
    decode = torch.cat([w8a8(x[:, i:i + 1])[0] for i in range(20)]).float()
    assert w8a8(x[:, :1]).dtype == torch.bfloat16  # the model's dtype in and out
    error = (decode - reference).norm() / reference.norm()
    assert 0 < error < bound, error  # quantised activations: a small, non-zero error
    assert torch.equal(w8a8(x)[0], weight_only(x)[0])  # prefill is the same weight-only path

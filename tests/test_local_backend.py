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
    with pytest.raises(ModelLoadError, match="unknown quantisation 'int4': use one of auto, none, int8, native, w8a8"):
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


@pytest.mark.parametrize("mode", ["int8", "w8a8", "native"])
def test_a_wide_int8_layer_gives_the_same_numbers_at_prefill_and_decode(mode):
    """Wide layers (out > in) keep their int8 values column-major for the prefill kernel: every
    path (prefill rows, a few decoding rows, one row) still computes x W^T + b of the quantised W."""
    import torch

    from chatrec.backends import native
    from chatrec.backends.local import _int8_linear

    if mode == "native" and not native.available():
        pytest.skip("native int8 kernel unavailable here")
    torch.manual_seed(1)
    linear = torch.nn.Linear(64, 160, bias=True).to(torch.bfloat16)
    q = _int8_linear(torch, linear, activations=mode == "w8a8", use_native=mode == "native")
    assert q.weight_int8.is_contiguous() == (mode == "int8")  # int8's decoding kernel needs rows
    x = torch.randn(1, 40, 64, dtype=torch.bfloat16)
    reference = x[0].float() @ (q.weight_int8.float() * q.scales.float()[:, None]).T + linear.bias.float()
    for rows in (40, 5, 1):
        got = torch.cat([q(x[:, i:i + rows])[0] for i in range(0, 40, rows)]).float()
        assert got.shape == (40, 160)
        # w8a8 and native also quantise the activations to 8 bits while decoding
        tol = 0.05 if mode == "int8" or rows > 16 else 0.15
        assert torch.allclose(got, reference, atol=tol, rtol=0.05), (mode, rows)


needs_native = pytest.mark.skipif(not __import__("chatrec.backends.native", fromlist=["x"]).available(),
                                  reason="native int8 kernel unavailable here (no AVX512-VNNI or AVX2, or no C compiler)")


@pytest.fixture(params=["avx512vnni", "avx2"])
def native_isa(request, monkeypatch):
    """Each instruction set of native.c this CPU can run (an AVX512 CPU tests the AVX2 build too)."""
    from chatrec.backends import native

    if not native.ISAS[request.param][0] <= native._cpu_flags():
        pytest.skip(f"this CPU cannot run the {request.param} kernel")
    monkeypatch.setenv("CHATREC_NATIVE_ISA", request.param)
    native._load.cache_clear()
    assert native.isa() == request.param, native.why_not()
    yield request.param
    monkeypatch.delenv("CHATREC_NATIVE_ISA")
    native._load.cache_clear()


def test_an_instruction_set_the_cpu_lacks_is_refused_with_the_reason(monkeypatch):
    from chatrec.backends import native

    monkeypatch.setattr(native, "_cpu_flags", lambda: {"sse2", "avx", "avx2", "f16c"})  # AVX2 without FMA
    native._load.cache_clear()
    try:
        monkeypatch.setenv("CHATREC_NATIVE_ISA", "avx2")
        assert not native.available() and native.why_not() == "CHATREC_NATIVE_ISA=avx2: this CPU lacks fma"
        native._load.cache_clear()
        monkeypatch.setenv("CHATREC_NATIVE_ISA", "neon")
        assert "'neon' is not one of avx512vnni, avx2" in native.why_not()
        native._load.cache_clear()
        monkeypatch.delenv("CHATREC_NATIVE_ISA")
        assert native.why_not() == "this CPU has neither AVX512-VNNI nor AVX2 + FMA + F16C" and native.isa() == ""
    finally:
        native._load.cache_clear()


@needs_native
@pytest.mark.parametrize("n, k, rows", [(96, 256, 1), (37, 70, 3), (200, 128, 1), (1000, 896, 2)])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_native_kernel_matches_the_weight_only_layer(n, k, rows, dtype, native_isa):
    """The native kernel quantises activations per block of 32: within 1e-4 cosine of the exact
    int8-weight product, for shapes that need padding too, in and out in the model's dtype."""
    import torch

    from chatrec.backends.local import _int8_linear

    torch.manual_seed(1)
    dt = getattr(torch, dtype)
    linear = torch.nn.Linear(k, n, bias=True).to(dt)
    weight_only, native = _int8_linear(torch, linear), _int8_linear(torch, linear, use_native=True)
    x = torch.randn(rows, k, dtype=dt) * torch.linspace(0.01, 20, k, dtype=dt)  # uneven magnitudes: outliers
    out = native(x)
    assert out.dtype == dt and out.shape == (rows, n)
    reference = (x.float() @ (weight_only.weight_int8.float() * weight_only.scales.float()[:, None]).T
                 + linear.bias.float())
    cos = torch.nn.functional.cosine_similarity(out.float().flatten(), reference.flatten(), dim=0)
    assert cos > 0.9999, cos
    assert ((out.float() - reference).abs().max() / reference.abs().max()) < 0.01
    assert weight_only(x.repeat(3, 1)).shape == (3 * rows, n)  # odd inner sizes never reach torch's int8 kernel
    many = x.repeat(20, 1)  # prefill: the same dense path as weight-only
    assert torch.equal(native(many), weight_only(many))
    zeros = native(torch.zeros(1, k, dtype=dt))
    assert torch.allclose(zeros.float(), linear.bias.float()[None], atol=1e-2)  # an all-zero block has no scale


@needs_native
def test_native_kernel_is_safe_to_call_from_parallel_turns():
    """Gradio answers several conversations at once: concurrent calls on one layer agree with serial ones."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from chatrec.backends.local import _int8_linear

    torch.manual_seed(2)
    layer = _int8_linear(torch, torch.nn.Linear(896, 1200).to(torch.bfloat16), use_native=True)
    xs = [torch.randn(1, 896, dtype=torch.bfloat16) for _ in range(16)]
    serial = [layer(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(layer, xs))
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))


@needs_native
def test_native_backend_decodes_like_the_weight_only_one(tiny_model_dir):
    """A decoding step (one token through every layer) with the native kernel gives the logits of
    torch's int8 kernel up to the activation rounding, and the backend streams with it."""
    import torch

    from chatrec.backends.local import TransformersBackend

    logits = {}
    for mode in ("int8", "native"):
        b = TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize=mode)
        assert b.quantize == mode
        ids = b.encode([{"role": "user", "content": "a wooden train for my toddler"}])["input_ids"]
        with torch.inference_mode():
            logits[mode] = torch.stack([b.model(input_ids=ids[:, i:i + 1]).logits[0, -1].float() for i in range(4)])
    cos = torch.nn.functional.cosine_similarity(logits["native"], logits["int8"], dim=1)
    assert (cos > 0.999).all(), cos
    reply = "".join(b.stream([{"role": "user", "content": "hello"}], GenerationOptions(max_new_tokens=8)))
    assert reply.strip()


def _random_decoder(kind: str, seed: int = 0):
    """A 3-layer Llama or Qwen2 (q/k/v biases) in bf16 with int8 weights packed for the native kernel."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from chatrec.backends.local import quantize_int8

    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[kind]
    config = config_cls(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=500, max_position_embeddings=1024)
    torch.manual_seed(seed)
    model = model_cls(config).to(torch.bfloat16).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    quantize_int8(torch, model, native_kernel=True)
    return model


@needs_native
@pytest.mark.parametrize("kind, prompt", [("llama", 300), ("qwen2", 300), ("llama", 2), ("qwen2", 3)])
def test_native_layers_decode_like_transformers_layers(kind, prompt, native_isa):
    """A one-token step through the fused native layers (norms, RoPE, grouped-query attention over
    the cache, SiLU MLP) gives transformers' logits for the same int8 weights, and appends the same
    keys and values to the conversation's cache (short prompts: every cached position matters)."""
    import copy

    import torch
    from transformers import DynamicCache

    from chatrec.backends import fused_decode

    model = _random_decoder(kind)
    ids = torch.randint(3, 500, (1, prompt), generator=torch.Generator().manual_seed(1))
    steps = torch.randint(3, 500, (6,), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        fused_cache = DynamicCache(config=model.config)
        model(ids, past_key_values=fused_cache)
        eager_cache = copy.deepcopy(fused_cache)
        for n, token in enumerate(steps):
            if n == 2:  # a new turn's prompt: a prefill through transformers' layers, then steps again
                chunk = torch.randint(3, 500, (1, 3), generator=torch.Generator().manual_seed(4))
                model(chunk, past_key_values=fused_cache)
                model(chunk, past_key_values=eager_cache)
            if n == 4:  # the prefix cache crops a conversation's cache to the shared prefix; steps go on from it
                fused_cache.crop(-2)
                eager_cache.crop(-2)
            assert fused_decode.install(torch, model) == ""
            calls = []
            model._chatrec_fused.step = (lambda step: lambda *a: calls.append(1) or step(*a))(model._chatrec_fused.step)
            fused = model(token.view(1, 1), past_key_values=fused_cache).logits[0, -1].float()
            assert calls == [1]  # the step really took the native layers
            fused_decode.uninstall(model)
            eager = model(token.view(1, 1), past_key_values=eager_cache).logits[0, -1].float()
            assert torch.nn.functional.cosine_similarity(fused, eager, dim=0) > 0.9995
            assert (fused - eager).abs().max() < 0.05 * eager.abs().max()
    assert fused_cache.get_seq_length() == eager_cache.get_seq_length() == prompt + 6 + 3 - 2
    for a, b in zip(fused_cache.layers, eager_cache.layers):
        assert torch.nn.functional.cosine_similarity(a.keys.float().flatten(), b.keys.float().flatten(), dim=0) > 0.9999
        assert torch.nn.functional.cosine_similarity(a.values.float().flatten(), b.values.float().flatten(), dim=0) > 0.9999


@needs_native
def test_batches_and_padding_keep_transformers_layers():
    """Two prompts of different lengths (a padding mask) never reach the fused step: the output is
    exactly what transformers' own layers give."""
    import torch

    from chatrec.backends import fused_decode

    model = _random_decoder("llama")
    ids = torch.randint(3, 500, (2, 12), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        eager = model.generate(ids, **kwargs)
        assert fused_decode.install(torch, model) == ""
        model._chatrec_fused.step = lambda *a: pytest.fail("a padded batch took the fused step")
        assert torch.equal(model.generate(ids, **kwargs), eager)


@needs_native
def test_native_steps_grow_the_cache_in_place():
    """Fused steps append one row to a buffer with room instead of concatenating the whole cache
    (at 2,500 tokens the concatenations cost ~6 ms a step): over 300 steps the buffer is replaced only
    when full, and keys, values and logits match transformers' concatenating steps."""
    import copy

    import torch
    from transformers import DynamicCache

    from chatrec.backends import fused_decode

    model = _random_decoder("llama")
    ids = torch.randint(3, 500, (1, 40), generator=torch.Generator().manual_seed(5))
    steps = torch.randint(3, 500, (300,), generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        fused_cache = DynamicCache(config=model.config)
        model(ids, past_key_values=fused_cache)
        eager_cache = copy.deepcopy(fused_cache)
        assert fused_decode.install(torch, model) == ""
        buffers, fused = set(), []
        for token in steps:
            fused.append(model(token.view(1, 1), past_key_values=fused_cache).logits[0, -1].float())
            buffers.add(fused_cache.layers[0]._chatrec_room[0].data_ptr())
        fused_decode.uninstall(model)
        eager = [model(token.view(1, 1), past_key_values=eager_cache).logits[0, -1].float() for token in steps]
    assert len(buffers) == 2  # room for 256 more at the first step, full after 256: one new buffer
    assert fused_cache.get_seq_length() == eager_cache.get_seq_length() == 340
    cos = torch.nn.functional.cosine_similarity(torch.stack(fused), torch.stack(eager), dim=1)
    assert (cos > 0.999).all(), cos.min()
    for a, b in zip(fused_cache.layers, eager_cache.layers):
        assert torch.nn.functional.cosine_similarity(a.keys.float().flatten(), b.keys.float().flatten(), dim=0) > 0.9999


@needs_native
def test_models_the_native_layers_cannot_run_say_why(tiny_model_dir, monkeypatch):
    import torch

    from chatrec.backends import fused_decode
    from chatrec.backends.local import TransformersBackend

    plain = _random_decoder("llama")
    plain.config.hidden_act = "gelu"
    assert fused_decode.why_not(torch, plain) == "activation 'gelu'"
    b = TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize="int8")
    assert not b.fused_layers and fused_decode.why_not(torch, b.model) == "layers not quantised for the native kernel"
    b = TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize="vnni")  # the mode's older name
    assert b.quantize == "native"
    assert b.fused_layers  # the tiny Llama qualifies: sizes 64/128, heads of 16
    monkeypatch.setenv("CHATREC_NATIVE_LAYERS", "0")
    assert not TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize="native").fused_layers


@needs_native
def test_native_layers_stream_follow_up_turns_from_the_prefix_cache(tiny_model_dir):
    """The fused steps write the conversation's KV cache that the next turn starts from: a follow-up
    reuses it and streams."""
    from chatrec.backends.local import TransformersBackend

    b = TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize="native")
    assert b.fused_layers
    first = "".join(b.stream(conversation("")[:2], GREEDY))
    assert first
    follow = conversation(first)
    assert "".join(b.stream(follow, GREEDY))
    assert b.cache.hits == 1 and b.cache.reused_tokens > 20


def _plain_llama(dtype: str = "float32"):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=500, max_position_embeddings=1024)
    torch.manual_seed(5)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)  # peaked attention: a wrong merge of the two halves shows
    return model


def test_a_follow_ups_prompt_attends_to_prefix_and_new_tokens_apart(monkeypatch):
    """The new tokens of a follow-up attend to the cached prefix and to themselves in two calls merged
    by log-sum-exp: the logits of transformers' masked SDPA, with the split path really taken."""
    import copy

    import torch
    from transformers import DynamicCache

    from chatrec.backends import split_attention

    model = _plain_llama()
    prompt = torch.randint(3, 500, (1, 40), generator=torch.Generator().manual_seed(6))
    follow = torch.randint(3, 500, (1, 9), generator=torch.Generator().manual_seed(7))
    calls, original = [], split_attention.split
    monkeypatch.setattr(split_attention, "split", lambda *a: calls.append(1) or original(*a))
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        model(prompt, past_key_values=cache)
        other = copy.deepcopy(cache)
        masked = model(follow, past_key_values=cache).logits
        assert split_attention.install(model) and model.config._attn_implementation == split_attention.NAME
        merged = model(follow, past_key_values=other).logits
    assert len(calls) == 2  # one per layer
    assert torch.allclose(merged, masked, atol=1e-4, rtol=1e-4), (merged - masked).abs().max()


def test_the_mask_check_is_remembered_per_mask_and_sees_in_place_changes():
    import torch

    from chatrec.backends.split_attention import _plain_causal

    q_len, kv_len = 5, 12
    mask = torch.ones(1, 1, q_len, kv_len, dtype=torch.bool)
    mask[0, 0, :, kv_len - q_len:] = torch.ones(q_len, q_len, dtype=torch.bool).tril()
    assert _plain_causal(torch, mask, q_len, kv_len) and _plain_causal(torch, mask, q_len, kv_len)
    mask[0, 0, 0, kv_len - 1] = True  # the first new token would see the last one
    assert not _plain_causal(torch, mask, q_len, kv_len)
    padded = mask.clone()
    padded[0, 0, :, 0] = False  # a fresh tensor: checked afresh
    assert not _plain_causal(torch, padded, q_len, kv_len)


def test_cold_prompts_and_padded_batches_keep_transformers_attention(monkeypatch):
    import torch

    from chatrec.backends import split_attention

    model = _plain_llama("bfloat16")
    ids = torch.randint(3, 500, (2, 12), generator=torch.Generator().manual_seed(8))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    kwargs = dict(attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.inference_mode():
        plain = model.generate(ids, **kwargs), model(ids[:1]).logits
        assert split_attention.install(model)
        monkeypatch.setattr(split_attention, "split", lambda *a: pytest.fail("took the split path"))
        assert torch.equal(model.generate(ids, **kwargs), plain[0])
        assert torch.equal(model(ids[:1]).logits, plain[1])


def test_native_without_the_kernel_says_what_to_do(tiny_model_dir, monkeypatch):
    from chatrec.backends import native
    from chatrec.backends.local import TransformersBackend

    monkeypatch.setenv("CHATREC_NATIVE", "0")
    native._load.cache_clear()
    try:
        assert not native.available() and "CHATREC_NATIVE=0" in native.why_not()
        with pytest.raises(ModelLoadError, match="needs the native int8 kernel.*use --quantize int8"):
            TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize="native")
    finally:
        monkeypatch.delenv("CHATREC_NATIVE")
        native._load.cache_clear()


def test_a_broken_compiler_leaves_torch_kernels(tmp_path, monkeypatch):
    from chatrec.backends import native

    if native.pick_isa()[0] is None:
        pytest.skip("the build is only tried on CPUs with AVX512-VNNI or AVX2")
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'cc: internal compiler error' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    native._load.cache_clear()
    try:
        assert not native.available()
        assert "building native.c failed: cc: internal compiler error" in native.why_not()
    finally:
        native._load.cache_clear()


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


def test_bytes_per_token_count_what_decoding_reads(tiny_model_dir):
    """The decode limit divides by the bytes a step reads: int8 halves bf16's, and the native
    kernel's packed copy replaces (is not added to) the int8 buffers it was made from."""
    from chatrec.backends import native
    from chatrec.backends.local import TransformersBackend, weight_bytes_per_token

    sizes = {}
    modes = ("none", "int8", "native") if native.available() else ("none", "int8")
    for mode in modes:
        b = TransformersBackend(str(tiny_model_dir), dtype="bfloat16", quantize=mode)
        sizes[mode] = weight_bytes_per_token(b.model)
    assert 0.45 < sizes["int8"] / sizes["none"] < 0.6
    if "native" in sizes:  # padding to 16-32 rows / 32 inputs and float32 scales: a few percent at most here
        assert 1.0 <= sizes["native"] / sizes["int8"] < 1.1


@pytest.mark.parametrize("threads", [1, 2])
def test_native_bandwidth_probe_reads_every_value(threads):
    """The bench's read probe sums the whole buffer, the tail that does not fill its streams included."""
    import torch

    from chatrec.backends import native

    if not native.available():
        pytest.skip(f"native kernel unavailable: {native.why_not()}")
    for n in (5, 1000, 4099):
        x = torch.arange(n, dtype=torch.float32) % 7
        assert native.stream_read(x, threads) == pytest.approx(float(x.sum()), rel=1e-6)


def test_bench_decode_rate_runs_every_step_even_when_the_model_would_stop(tiny_model_dir):
    """The bench decodes exactly n tokens without min_new_tokens' per-step vocabulary scan: a model
    whose every step prefers its end-of-sequence token still runs all of them (and keeps its config)."""
    import torch
    from transformers import AutoModelForCausalLM

    from chatrec import bench

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    eos = 2

    def always_eos(module, inputs, logits):  # the output head now always picks eos
        out = torch.full_like(logits, -1e4)
        out[..., eos] = 1e4
        return out

    model.lm_head.register_forward_hook(always_eos)
    model.generation_config.eos_token_id = eos
    ids = torch.tensor([[5, 6, 7, 8]])
    assert model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0).shape[-1] == 5  # stops at once
    seen: list[int] = []
    original = model.generate

    def generate(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out.shape[-1] - args[0].shape[-1])
        return out

    model.generate = generate
    best, sustained = bench.decode_rate(model, n_tokens=6, prompt_len=8, repeats=1)
    assert seen == [2, 6]  # the warm-up's two steps, then all six
    assert best > 0 and sustained > 0
    assert model.generation_config.eos_token_id == eos


def test_the_bench_reports_the_share_of_cpu_time_the_hypervisor_took():
    from chatrec.bench_pipeline import steal_share

    # user nice system idle iowait irq softirq steal
    before = [100, 0, 10, 1000, 0, 0, 0, 5]
    after = [160, 0, 20, 1120, 0, 0, 0, 15]  # 200 ticks passed, 10 of them stolen
    assert steal_share(before, after) == 0.05
    assert steal_share(None, after) is None and steal_share(before, before) is None

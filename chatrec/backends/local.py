"""Local Hugging Face transformers backend: any causal LM id or path, streamed token by token.

Input is built with the tokenizer's own chat template (``add_generation_prompt=True``); only the
new tokens are decoded; streaming uses ``TextIteratorStreamer`` with generation in a worker
thread. Device and dtype go through accelerate (``device_map``) when a GPU is asked for. When a
``SpanConstraint`` is given, ``constrained.py``'s logits processor restricts item spans to
candidate titles. A ``reply_prefix`` (``prompts/reply_prefix.j2``; given whenever constraints are on) is
appended after the generation prompt and yielded first, so the model continues an opened item
span (the constraint then makes it complete a real title). Nothing here knows about catalogs or
dialogue state.

Speed on a CPU (numbers from ``python -m chatrec bench``):
- dtype "auto" is bfloat16 where the CPU has native bf16 (AVX512-BF16/AMX), else float32;
- ``PrefixCache`` keeps each conversation's KV cache, so a follow-up turn encodes only what is
  new since the last reply (the prompt keeps the per-turn candidates *after* the history);
- ``quantize="int8"`` stores every linear layer (and the output head) as int8 with a per-row
  scale: decoding reads half the bytes (``_weight_int8pack_mm``); prefill runs the dense bf16
  kernel on the int8 values and scales the output in place (wide layers, the MLP's gate and up
  products, keep their int8 values column-major: oneDNN's bf16 product is 1.6x faster that way at
  a follow-up's ~500-700 rows);
- ``quantize="native"`` (what ``auto`` picks for big models on x86 CPUs with AVX512-VNNI or AVX2 +
  FMA and a C compiler; ``vnni`` is its older name): the same
  int8 weights, but decoding runs ``native.py``'s kernel, which quantises each token's activations
  in blocks of 32 (cosine >= 0.9999 to the weight-only product) and streams the weights near the
  memory's speed; prefill as for ``int8``. For Llama/Qwen2-style models each one-token step then
  runs every layer in two native calls (``fused_decode.py``: norms, RoPE, attention over the
  conversation's cache, SiLU MLP), which removes the ~10 ms of small torch operations per step that
  eager layers cost on 2 cores; ``CHATREC_NATIVE_LAYERS=0`` keeps transformers' layers;
- on a CPU, a follow-up's new tokens attend to the cached prefix and to themselves in two flash
  attention calls merged by their log-sum-exps (``split_attention.py``: the query heads sharing a
  key head attend to the prefix as one block, without per-head key copies) instead of one call under
  a mask;
- ``device="auto"`` takes a CUDA GPU when torch sees one (bf16, or fp16 without bf16, placed by
  accelerate's ``device_map``; no int8 there) and says so in a warning when it falls back to the CPU.
Left out: torch.compile and static caches (minutes of compilation on a 2-core machine; the fused
layers remove the same dispatch overhead without it) and speculative decoding.
"""
from __future__ import annotations

import inspect
import logging
import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

from ..errors import GenerationError, ModelLoadError
from . import fused_decode, native, split_attention
from .base import GenerationOptions, Messages

log = logging.getLogger(__name__)
STREAM_TIMEOUT_S = 120.0
NATIVE_MAX_ROWS = 4  # the native kernel reads the weights once per row: decoding steps only


def _pick_dtype(torch, dtype: str, device: str):
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # bf16 halves the bytes read per token; without native bf16 instructions it is emulated and slow.
    return torch.bfloat16 if native.cpu_has_bf16() else torch.float32


class PrefixCache:
    """KV caches of recent conversations, keyed by the token ids they hold; bounded LRU.

    A follow-up turn's prompt starts with the previous turn's prompt and reply (system prompt and
    history), so the entry sharing the longest token prefix with the new prompt is taken out,
    cropped to the shared part and extended by ``generate``; only the new tokens are encoded.
    The entry is *taken* (not copied): a conversation moves forward, and two requests never share
    one cache object. Memory is bounded by ``max_tokens`` summed over entries (the KV bytes per
    token are fixed by the model) and by ``max_entries``; the least recently used go first.
    """

    def __init__(self, max_entries: int = 16, max_tokens: int = 32_768, min_reuse: int = 16):
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self.min_reuse = min_reuse  # below this many shared tokens a copy is not worth keeping
        self._entries: OrderedDict[int, tuple[list[int], object]] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.reused_tokens = 0

    @property
    def n_tokens(self) -> int:
        return sum(len(ids) for ids, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, ids: list[int]) -> tuple[object | None, int]:
        """(cache holding the first ``n`` tokens of ``ids``, n); (None, 0) on a miss."""
        with self._lock:
            best, best_n = None, 0
            for key, (cached, _) in self._entries.items():
                n = _common_prefix(cached, ids)
                if n > best_n:
                    best, best_n = key, n
            best_n = min(best_n, len(ids) - 1)  # generate needs at least one token to encode
            if best is None or best_n < self.min_reuse:
                self.misses += 1
                return None, 0
            cached, cache = self._entries.pop(best)
        if len(cached) > best_n:
            cache.crop(best_n - len(cached))
        self.hits += 1
        self.reused_tokens += best_n
        return cache, best_n

    def put(self, ids: list[int], cache: object) -> None:
        """Keep ``cache`` (holding exactly ``ids``); evict least recently used entries over the bounds."""
        if len(ids) > self.max_tokens:
            return
        with self._lock:
            self._entries[self._next] = (list(ids), cache)
            self._next += 1
            while len(self._entries) > self.max_entries or self.n_tokens > self.max_tokens:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    # Compare in blocks first: prompts share thousands of tokens, a Python loop per token adds up.
    step = 256
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _int8_pays_off(torch, model, device: str) -> bool:
    """int8 on a CPU for models big enough that reading weights dominates a step, where a fast int8
    kernel exists: the native one (any dtype), or torch's under bf16 (measured: 2x faster decoding for
    the 0.5B shape; on float32 without the native kernel torch's int8 path is no faster). Tiny models
    and GPUs keep their dtype."""
    big = sum(p.numel() for p in model.parameters()) >= 100_000_000
    if not big or device.startswith("cuda"):
        return False
    return native.available() or next(model.parameters()).dtype == torch.bfloat16


QUANTIZE_MODES = ("auto", "none", "int8", "native", "w8a8")
QUANTIZE_ALIASES = {"vnni": "native"}  # the native mode's name while it ran on AVX512-VNNI only


def quantize_int8(torch, model, activations: bool = False, native_kernel: bool = False) -> None:
    """Replace every ``nn.Linear`` (the output head included) by an int8 copy, in place.

    ``activations=False``: weight-only int8 (decoding reads int8 weights, computes in bf16).
    ``activations=True`` (``w8a8``): decoding steps also quantise each token's activations to 8 bits
    on the fly and run FBGEMM's int8 x int8 kernel, which is much faster on x86 CPUs; prefill stays
    weight-only. Activation quantisation can cost quality on models with outlier activations.
    ``native_kernel=True`` (``native``): decoding steps run ``native.Q8Matrix`` (8-bit activations with a scale
    per block of 32 values, so outliers stay local to their block); prefill as weight-only."""
    reduce_range = not _cpu_has_vnni()
    linears = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)]
    for name, linear in linears:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _int8_linear(torch, linear, activations, reduce_range, native_kernel))


def _cpu_has_vnni() -> bool:
    """AVX512-VNNI / AVX-VNNI add int8 products straight into int32, so FBGEMM can take 8-bit
    activations; without them its AVX2 kernel could saturate and needs 7 bits (``reduce_range``).
    Measured on all-MiniLM-L6-v2's real weights: 8 bits keep embeddings at cosine 0.994 to float32,
    7 bits at 0.978 (weight-only int8: 0.9996)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _int8_linear(torch, linear, activations: bool = False, reduce_range: bool = True, use_native: bool = False):
    class Int8Linear(torch.nn.Module):
        """y = x W^T + b with W stored as int8 rows times a per-row scale (symmetric, per channel)."""

        def __init__(self, weight, bias):
            super().__init__()
            w = weight.detach().float()
            scales = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            q8 = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
            # Wide layers (out > in: the MLP's gate and up products) keep the int8 values column-major
            # (``weight_int8`` stays an (out, in) view): oneDNN's bf16 product of a prefill then reads
            # the weights as (in, out) rows, measured 1.6x faster at 669 rows on an AMX Xeon
            # (18.7 -> 11.1 ms for 4864 x 896) and no slower on float32. Only where decoding never reads
            # this buffer: ``_weight_int8pack_mm`` (``int8`` mode) needs it row-major.
            if (activations or use_native) and q8.shape[0] > q8.shape[1]:
                q8 = q8.t().contiguous().t()
            self.register_buffer("weight_int8", q8)
            self.register_buffer("scales", scales.to(weight.dtype))
            self.bias = None if bias is None else torch.nn.Parameter(bias.detach(), requires_grad=False)
            self.in_features, self.out_features = w.shape[1], w.shape[0]
            self.packed = None  # FBGEMM's copy of the same int8 weights (w8a8): what decoding reads
            if activations:
                with warnings.catch_warnings():  # quantised tensors are deprecated after torch 2.13 (pinned)
                    warnings.simplefilter("ignore", UserWarning)
                    q = torch.quantize_per_channel(self.weight_int8.float() * scales[:, None], scales.double(),
                                                   torch.zeros(len(scales), dtype=torch.long), 0, torch.qint8)
                self.packed = torch.ops.quantized.linear_prepack(q, None)
            # the native kernel's packed copy (an attribute, not a buffer: decoding reads it instead
            # of weight_int8, so the bytes per token are counted once)
            self.q8 = native.Q8Matrix(torch, self.weight_int8, scales, bias) if use_native else None

        def forward(self, x):
            rows = x.reshape(-1, self.in_features)
            if rows.shape[0] <= NATIVE_MAX_ROWS and self.q8 is not None:  # decoding: native int8 x int8
                return self.q8(rows).reshape(*x.shape[:-1], self.out_features)
            if rows.shape[0] <= 16 and self.packed is not None:  # decoding, w8a8: int8 x int8 (FBGEMM)
                y = torch.ops.quantized.linear_dynamic(rows.float(), self.packed, reduce_range)
            elif rows.shape[0] <= 16 and self.in_features % 16 == 0 and self.weight_int8.is_contiguous():
                # decoding: the fused kernel reads int8 straight from memory (torch's kernel crashes on
                # inner sizes that are not multiples of 16)
                y = torch.ops.aten._weight_int8pack_mm(rows.to(self.scales.dtype), self.weight_int8, self.scales)
            else:  # prefill is compute-bound: the dense kernel on the int8 values (exact in bf16; ``to``
                # keeps the column-major layout), then the per-row scales on the output, in place (a
                # fresh (rows, out) tensor for ``*`` cost ~30 ms at 2,910 x 4,864)
                y = torch.nn.functional.linear(rows, self.weight_int8.to(rows.dtype)).mul_(self.scales.to(rows.dtype))
            y = y.to(x.dtype)
            if self.bias is not None:
                y = y + self.bias
            return y.reshape(*x.shape[:-1], self.out_features)

    return Int8Linear(linear.weight, linear.bias)


def weight_bytes_per_token(model) -> int:
    """Bytes of weights one decoding step reads: every parameter and buffer except embedding tables
    (a step reads one row of those), counting a tied output head once. (w8a8 decoding reads FBGEMM's
    packed copy of the int8 weights instead of the buffer: the same number of bytes; ``native`` reads the
    native kernel's packed copy, counted as its own bytes with its float32 scales and bias.)"""
    import torch

    seen: set[int] = set()
    total = 0
    for m in model.modules():
        q8 = getattr(m, "q8", None)
        if q8 is not None:
            total += q8.nbytes
            seen.update(t.data_ptr() for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False)))
    embed_ptrs = {m.weight.data_ptr() for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    head = model.get_output_embeddings()
    head_ptr = head.weight.data_ptr() if isinstance(head, torch.nn.Linear) else None
    for t in list(model.parameters()) + list(model.buffers()):
        ptr = t.data_ptr()
        if ptr in seen or (ptr in embed_ptrs and ptr != head_ptr) or t.dtype == torch.int64:
            continue
        seen.add(ptr)
        total += t.numel() * t.element_size()
    return total


class TransformersBackend:
    supports_constraints = True
    caches_prefix = True  # PrefixCache: services then keep system prompt + history a stable prefix

    def __init__(self, model: str, *, device: str = "cpu", dtype: str = "auto", threads: int = 0,
                 quantize: str = "auto", prefix_cache: "PrefixCache | None" = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads > 0:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
            if device == "cpu":
                log.warning("--device auto: no CUDA GPU is visible to torch %s; running the model on the CPU",
                            torch.__version__)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu")
        self.name = model
        self.device = device
        self.torch = torch
        local = Path(model).expanduser()
        source = str(local) if local.exists() else model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForCausalLM.from_pretrained(
                source, dtype=_pick_dtype(torch, dtype, device),
                device_map=device if device.startswith("cuda") else None)
        except Exception as exc:  # transformers raises OSError, ValueError, HF errors, ...
            raise ModelLoadError(_load_hint(model, exc)) from exc
        if self.tokenizer.chat_template is None:
            raise ModelLoadError(f"model {model!r} has no chat template; chatrec needs an instruct/chat model")
        self._prepare(quantize)
        self.cache = prefix_cache if prefix_cache is not None else PrefixCache()

    @classmethod
    def from_objects(cls, model, tokenizer, *, quantize: str = "auto",
                     prefix_cache: "PrefixCache | None" = None) -> "TransformersBackend":
        """Wrap an already built model and tokenizer (benchmarks, tests)."""
        import torch

        self = cls.__new__(cls)
        self.name = model.config.name_or_path or "in-memory"
        self.torch, self.model, self.tokenizer = torch, model, tokenizer
        self.device = str(model.device)
        self._prepare(quantize)
        self.cache = prefix_cache if prefix_cache is not None else PrefixCache()
        return self

    def _prepare(self, quantize: str) -> None:
        if not self.device.startswith("cuda"):
            self.model.to(self.device)
        self.model.eval()
        quantize = QUANTIZE_ALIASES.get(quantize, quantize)
        if quantize == "auto":
            quantize = "none"
            if _int8_pays_off(self.torch, self.model, self.device):
                quantize = "native" if native.available() else "int8"
                if quantize == "int8":
                    log.info("int8 decoding with torch's kernels: the native one is unavailable (%s)", native.why_not())
        if quantize in ("int8", "w8a8", "native"):
            if self.device.startswith("cuda"):
                raise ModelLoadError(f"{quantize} quantisation is a CPU path; on a GPU use dtype bfloat16")
            if quantize == "w8a8" and "fbgemm" not in self.torch.backends.quantized.supported_engines:
                raise ModelLoadError("w8a8 needs torch's FBGEMM engine (x86 CPUs); use --quantize int8")
            if quantize == "native" and not native.available():
                raise ModelLoadError(f"--quantize native needs the native int8 kernel: {native.why_not()}; "
                                     "use --quantize int8")
            quantize_int8(self.torch, self.model, activations=quantize == "w8a8", native_kernel=quantize == "native")
        elif quantize != "none":
            raise ModelLoadError(f"unknown quantisation {quantize!r}: use one of {', '.join(QUANTIZE_MODES)}")
        self.fused_layers = quantize == "native" and self._fuse_layers()
        self.split_attention = split_attention.install(self.model)  # CPU + sdpa: a follow-up's prompt, faster
        self.quantize = quantize  # as resolved: "none", "int8", "native" or "w8a8"
        # generate's cache argument: ``past_key_values`` in earlier transformers 5 releases, ``cache`` in
        # later ones (the model's own forward says which; there the old name warns that it is deprecated)
        forward = inspect.signature(type(self.model).forward).parameters
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        self.context_window = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def _fuse_layers(self) -> bool:
        """One-token steps through ``fused_decode`` (two native calls per layer) where the model allows."""
        if os.environ.get("CHATREC_NATIVE_LAYERS", "1").strip().lower() in ("0", "false", "no", "off"):
            log.info("decoding with transformers' layers: CHATREC_NATIVE_LAYERS=0")
            return False
        reason = fused_decode.install(self.torch, self.model)
        if reason:
            log.info("decoding with transformers' layers around the native products: %s", reason)
        return not reason

    def encode(self, messages: Messages):
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        return {k: v.to(self.model.device) for k, v in enc.items()}

    def count_tokens(self, messages: Messages) -> int:
        return len(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                      return_dict=False))

    def stream(self, messages: Messages, options: GenerationOptions) -> Iterator[str]:
        from transformers import LogitsProcessorList, TextIteratorStreamer

        inputs = self.encode(messages)
        if options.reply_prefix:  # pre-fill the reply's opening: the model continues from it
            inputs = self._with_prefix(inputs, options.reply_prefix)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=STREAM_TIMEOUT_S)
        processors = LogitsProcessorList()
        if options.constraint is not None:
            from ..constrained import SpanLogitsProcessor

            processors.append(SpanLogitsProcessor(self.tokenizer, options.constraint,
                                                  prompt_length=inputs["input_ids"].shape[-1],
                                                  prefix=options.reply_prefix))
        sample = options.temperature > 0
        kwargs = dict(**inputs, streamer=streamer, max_new_tokens=options.max_new_tokens,
                      do_sample=sample, logits_processor=processors,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if sample:
            kwargs.update(temperature=options.temperature, top_p=options.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        error: list[BaseException] = []
        worker = threading.Thread(target=self._generate, args=(kwargs, options.seed, error, streamer),
                                  name="chatrec-generate", daemon=True)
        worker.start()
        if options.reply_prefix:
            yield options.reply_prefix
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except Exception as exc:  # queue.Empty on timeout
            raise GenerationError(f"the model produced nothing for {STREAM_TIMEOUT_S:.0f}s") from exc
        worker.join()
        if error:
            raise GenerationError(f"the language model failed mid-reply: {error[0]}") from error[0]

    def _with_prefix(self, inputs: dict, prefix: str) -> dict:
        """``inputs`` with the tokens of ``prefix`` appended, as if the model had written them."""
        ids = self.tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.model.device)
        out = dict(inputs, input_ids=self.torch.cat([inputs["input_ids"], ids], dim=-1))
        if "attention_mask" in inputs:
            out["attention_mask"] = self.torch.cat([inputs["attention_mask"], self.torch.ones_like(ids)], dim=-1)
        return out

    def _generate(self, kwargs: dict, seed: int | None, error: list[BaseException], streamer) -> None:
        """Run ``generate`` from the conversation's cached prefix; keep the grown cache for the next turn."""
        from transformers import DynamicCache

        try:
            ids = kwargs["input_ids"][0].tolist()
            cache, _ = self.cache.take(ids)
            if cache is None:
                cache = DynamicCache(config=self.model.config)
            if seed is not None:
                self.torch.manual_seed(seed)
            with self.torch.inference_mode():
                out = self.model.generate(**kwargs, **{self._cache_arg: cache}, return_dict_in_generate=True)
            cache = out["cache"] if "cache" in out else out.get("past_key_values")
            held = cache.get_seq_length() if cache is not None else 0
            if held:  # the last sampled token was never fed to the model, so the cache ends before it
                self.cache.put(out.sequences[0][:held].tolist(), cache)
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)
            streamer.on_finalized_text("", stream_end=True)


def _load_hint(model: str, exc: Exception) -> str:
    if model.startswith((".", "/", "~")) or Path(model).expanduser().exists():
        where = f"no usable model at path {model!r}"
    else:
        where = f"model {model!r} is not available locally and the hub cannot be reached"
    return (f"{where} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Pass --model PATH to a local transformers model directory, set CHATREC_MODEL, "
            "or use --model none to run without a language model.")

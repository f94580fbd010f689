"""Decoding steps of Llama/Qwen2-style models in two native calls per layer (``native.c``).

Why: with the native int8 products a decoding step of the 0.5B shape reads its weights in ~16 ms,
but the ~50 small torch operations of each eager transformers layer add ~10 ms on 2 cores. This
module replaces the decoder's ``forward`` *for one-token steps only* by a loop that, per layer, calls
``layer_attn_in`` (norm, q/k/v products, RoPE), appends k and v to the conversation's own
``DynamicCache`` (so the prefix cache, ``generate``, logits processors and sampling are untouched),
and calls ``layer_attn_out`` (attention over the cache, o product, residual, norm, MLP, residual).
Everything else -- prefill, batches, padding masks, other cache kinds, ``output_attentions`` --
goes through the original ``forward``.

``install`` only takes models it can run exactly: model type llama or qwen2, SiLU MLP, full
attention in every layer, plain rotate-half RoPE (transformers' own ``rotary_emb`` gives cos/sin,
so rope scaling is honoured), every linear layer quantised with ``native.Q8Matrix`` at unpadded
sizes. Otherwise it returns why not and the model keeps transformers' layers.
"""
from __future__ import annotations

import ctypes
import inspect

from . import native

MODEL_TYPES = ("llama", "qwen2")
PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")


class _Q8Mat(ctypes.Structure):
    _fields_ = [("wp", ctypes.c_void_p), ("sw", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("N", ctypes.c_int), ("K", ctypes.c_int)]


class _Layer(ctypes.Structure):
    _fields_ = [(name, _Q8Mat) for name in PROJECTIONS] + [("norm_in", ctypes.c_void_p),
                                                           ("norm_post", ctypes.c_void_p)]


class _Dims(ctypes.Structure):
    _fields_ = [("D", ctypes.c_int), ("I", ctypes.c_int), ("nh", ctypes.c_int), ("nkv", ctypes.c_int),
                ("hd", ctypes.c_int), ("kv_bf16", ctypes.c_int), ("nthreads", ctypes.c_int),
                ("eps", ctypes.c_float), ("scale", ctypes.c_float)]


def _modules(layer):
    attn, mlp = layer.self_attn, layer.mlp
    return dict(q=attn.q_proj, k=attn.k_proj, v=attn.v_proj, o=attn.o_proj,
                gate=mlp.gate_proj, up=mlp.up_proj, down=mlp.down_proj)


def _head_dim(cfg) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def why_not(torch, model) -> str:
    """'' when ``install`` can take ``model``, else the reason it cannot."""
    if not native.available():
        return f"native kernel unavailable: {native.why_not()}"
    cfg = model.config
    if cfg.model_type not in MODEL_TYPES:
        return f"model type {cfg.model_type!r} (fused steps know {', '.join(MODEL_TYPES)})"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"activation {cfg.hidden_act!r}"
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or ["full_attention"])):
        return "sliding-window layers"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb"):
        return "no decoder stack of the expected shape"
    dtype = next(model.parameters()).dtype
    if dtype not in (torch.bfloat16, torch.float32):
        return f"dtype {dtype}"
    heads, kv_heads, head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, _head_dim(cfg)
    if head_dim % 16 or heads % kv_heads or (heads * head_dim) % 32 or cfg.hidden_size % 32 \
            or cfg.intermediate_size % 32:
        return "sizes the kernel does not take (head size a multiple of 16, the others of 32)"
    for layer in inner.layers:
        attn = layer.self_attn
        if abs(attn.scaling - head_dim ** -0.5) > 1e-6 * attn.scaling:
            return "attention scaling other than 1/sqrt(head_dim)"
        if getattr(attn, "sliding_window", None):
            return "sliding-window attention"
        for mod in _modules(layer).values():
            q8 = getattr(mod, "q8", None)
            if q8 is None:
                return "layers not quantised for the native kernel"
            if q8.n_pad != q8.out_features or q8.k_pad != q8.in_features:
                return "padded layer sizes"
    return ""


class FusedDecoder:
    """Holds the ctypes views of every layer and runs one-token steps; ``install`` wires it in."""

    def __init__(self, torch, model):
        from transformers.cache_utils import DynamicCache, DynamicLayer
        from transformers.modeling_outputs import BaseModelOutputWithPast

        self.torch, self.model, self.inner = torch, model, model.model
        self._cache_types, self._output = (DynamicCache, DynamicLayer), BaseModelOutputWithPast
        self.lib = native.library()
        self.cache_arg = "past_key_values"  # the name transformers gives the cache: set by install()
        cfg = model.config
        self.dtype = next(model.parameters()).dtype
        heads, kv_heads, head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, _head_dim(cfg)
        self.dims = _Dims(D=cfg.hidden_size, I=cfg.intermediate_size, nh=heads, nkv=kv_heads, hd=head_dim,
                          kv_bf16=int(self.dtype == torch.bfloat16), nthreads=torch.get_num_threads(),
                          eps=float(cfg.rms_norm_eps), scale=float(head_dim ** -0.5))
        self._keep = []  # float32 norm weights the structures point into
        self.layers = []
        for layer in self.inner.layers:
            fields = {}
            for name, mod in _modules(layer).items():
                q8 = mod.q8
                fields[name] = _Q8Mat(q8.packed.data_ptr(), q8.scales.data_ptr(),
                                      None if q8.bias is None else q8.bias.data_ptr(), q8.n_pad, q8.k_pad)
            norms = [layer.input_layernorm.weight.detach().float().contiguous(),
                     layer.post_attention_layernorm.weight.detach().float().contiguous()]
            self._keep.extend(norms)
            self.layers.append(_Layer(**fields, norm_in=norms[0].data_ptr(), norm_post=norms[1].data_ptr()))
        self.layer_ptrs = [ctypes.addressof(layer) for layer in self.layers]
        self.dims_ptr = ctypes.addressof(self.dims)

    def eligible(self, input_ids, inputs_embeds, attention_mask, past_key_values, use_cache, kwargs) -> bool:
        DynamicCache, DynamicLayer = self._cache_types
        x = inputs_embeds if inputs_embeds is not None else input_ids
        if x is None or x.shape[0] != 1 or x.shape[1] != 1 or use_cache is False or self.model.training:
            return False
        if not isinstance(past_key_values, DynamicCache) or x.device.type != "cpu":
            return False
        if any(type(layer) is not DynamicLayer for layer in past_key_values.layers):
            return False
        if kwargs.get("output_attentions") or kwargs.get("output_hidden_states"):
            return False
        if attention_mask is not None and not (self.torch.is_tensor(attention_mask) and bool(attention_mask.all())):
            return False  # padding (or a prepared mask we cannot read): transformers' layers handle it
        return not self.torch.is_grad_enabled()

    def _append(self, cache, i: int, k, v):
        """Append this step's k and v to layer ``i`` of the conversation's cache; returns its keys and
        values (batch 1, heads, S, head_dim; each head's rows contiguous).

        ``DynamicLayer.update`` concatenates: every step copies the whole cache, which at 2,500
        tokens of history is more bytes than the attention reads. Here the layer's tensors become
        views of a buffer with room to grow (a quarter more, at least 256 positions) and a step
        writes one row. transformers' own paths keep working on the views: a prefill concatenates
        (a new tensor: the next step copies it into a new buffer), ``crop`` slices (the next step
        writes over the dropped rows)."""
        layer = cache.layers[i]
        keys, values = layer.keys, layer.values
        if not layer.is_initialized or keys is None or keys.numel() == 0 or getattr(cache, "offloading", False):
            keys, values = cache.update(k, v, i)
            return (keys, values) if keys.is_contiguous() and values.is_contiguous() else (keys.contiguous(),
                                                                                           values.contiguous())
        S = keys.shape[-2]
        buf = getattr(layer, "_chatrec_room", None)
        if (buf is None or S >= buf[0].shape[-2] or keys.data_ptr() != buf[0].data_ptr()
                or values.data_ptr() != buf[1].data_ptr() or keys.stride() != buf[0].stride()
                or values.stride() != buf[1].stride()):
            shape = keys.shape[:-2] + (S + max(256, S // 4), keys.shape[-1])
            buf = keys.new_empty(shape), values.new_empty(shape)
            buf[0][..., :S, :] = keys
            buf[1][..., :S, :] = values
            layer._chatrec_room = buf
        buf[0][..., S:S + 1, :] = k
        buf[1][..., S:S + 1, :] = v
        layer.keys, layer.values = buf[0][..., :S + 1, :], buf[1][..., :S + 1, :]
        return layer.keys, layer.values

    def step(self, input_ids, inputs_embeds, position_ids, cache):
        torch, d = self.torch, self.dims
        embeds = inputs_embeds if inputs_embeds is not None else self.inner.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = torch.tensor([[cache.get_seq_length()]], device=embeds.device)
        cos, sin = self.inner.rotary_emb(embeds, position_ids)
        cos, sin = cos.reshape(-1).float().contiguous(), sin.reshape(-1).float().contiguous()
        h = embeds.reshape(-1).float().contiguous()
        q = torch.empty(d.nh * d.hd, dtype=torch.float32)
        k = torch.empty(1, d.nkv, 1, d.hd, dtype=self.dtype)
        v = torch.empty(1, d.nkv, 1, d.hd, dtype=self.dtype)
        d.nthreads = torch.get_num_threads()
        lib, dims = self.lib, self.dims_ptr
        hp, qp, kp, vp, cp, sp = h.data_ptr(), q.data_ptr(), k.data_ptr(), v.data_ptr(), cos.data_ptr(), sin.data_ptr()
        for i, layer in enumerate(self.layer_ptrs):
            if lib.layer_attn_in(layer, dims, hp, cp, sp, qp, kp, vp) != 0:
                raise MemoryError("layer_attn_in could not allocate its scratch buffers")
            keys, values = self._append(cache, i, k, v)
            if lib.layer_attn_out(layer, dims, hp, qp, keys.data_ptr(), values.data_ptr(), keys.shape[-2],
                                  keys.stride(1)) != 0:
                raise MemoryError("layer_attn_out could not allocate its scratch buffers")
        hidden = self.inner.norm(h.to(self.dtype).reshape(1, 1, -1))
        return self._output(last_hidden_state=hidden, **{self.cache_arg: cache})


def install(torch, model) -> str:
    """Route ``model``'s one-token steps through ``FusedDecoder``; '' on success, else why not."""
    reason = why_not(torch, model)
    if reason:
        return reason
    fused = FusedDecoder(torch, model)
    inner = model.model
    original = inner.forward
    # the decoder stack's cache argument (and its output's field): ``past_key_values`` in earlier
    # transformers 5 releases, ``cache`` in later ones
    cache_arg = fused.cache_arg = "cache" if "cache" in inspect.signature(original).parameters else "past_key_values"

    def forward(input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, use_cache=None,
                **kwargs):
        cache = kwargs.pop(cache_arg, None)
        if fused.eligible(input_ids, inputs_embeds, attention_mask, cache, use_cache, kwargs):
            return fused.step(input_ids, inputs_embeds, position_ids, cache)
        return original(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        inputs_embeds=inputs_embeds, use_cache=use_cache, **{cache_arg: cache}, **kwargs)

    inner.forward = forward
    model._chatrec_fused = fused
    return ""


def uninstall(model) -> None:
    """Give ``model`` back transformers' own layers for every step."""
    if getattr(model, "_chatrec_fused", None) is not None:
        del model.model.forward  # the instance attribute set by install; the class's forward shows again
        model._chatrec_fused = None

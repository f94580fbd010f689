"""Attention for a follow-up turn's prompt on a CPU: the cached prefix and the new tokens apart.

A follow-up turn encodes its new tokens (the last exchange, the turn's state and candidates) on top
of the conversation's cached KV prefix. transformers then calls SDPA with a (new x all) boolean mask
that is true everywhere except the upper triangle of the new-by-new block, and torch's CPU flash
kernel runs every block of it. Split instead: the new tokens attend to the prefix without any mask
and to themselves with ``is_causal`` (which skips the upper blocks); the two partial results are
merged exactly with their log-sum-exps (softmax over a union of key sets). Measured on the 0.5B
shape, 669 new tokens over a 2,910-token context, one thread: 98.7 ms per layer against 115 ms.

Everything else -- no cache, one-token steps, padding, sliding windows, masks of another shape,
GPUs -- goes to transformers' own ``sdpa_attention_forward`` unchanged. ``install`` registers the
function under ``NAME`` with transformers' SDPA mask builder, so masks are made exactly as for
"sdpa", and switches a model that uses "sdpa" to it.
"""
from __future__ import annotations

NAME = "chatrec_split_sdpa"


def _plain_causal(torch, mask, q_len: int, kv_len: int) -> bool:
    """True when ``mask`` (bool, (1, 1, q_len, kv_len)) lets every new token see the whole prefix and
    the new tokens up to itself: the mask a padding-free follow-up gets."""
    if mask is None or mask.dtype != torch.bool or mask.dim() != 4 or tuple(mask.shape[-2:]) != (q_len, kv_len):
        return False
    if mask.shape[0] != 1 or mask.shape[1] != 1:
        return False
    prefix = kv_len - q_len
    square = mask[0, 0, :, prefix:]
    causal = torch.ones(q_len, q_len, dtype=torch.bool, device=mask.device).tril_()
    return bool(mask[0, 0, :, :prefix].all()) and torch.equal(square, causal)


def split_sdpa_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    q_len, kv_len = query.shape[2], key.shape[2]
    usable = (query.device.type == "cpu" and query.shape[0] == 1 and 1 < q_len < kv_len and dropout == 0.0
              and not kwargs.get("output_attentions") and kwargs.get("sliding_window") is None
              and kwargs.get("softcap") is None and kwargs.get("position_bias") is None
              and _plain_causal(torch, attention_mask, q_len, kv_len))
    if not usable:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    return split(torch, query, key, value, scaling).transpose(1, 2).contiguous(), None


def split(torch, query, key, value, scaling):
    """softmax(q k^T) v over the prefix (no mask) and the new tokens (causal), merged exactly:
    (B, H, L, D) queries, (B, H, S, D) keys and values with the L new positions last."""
    prefix = key.shape[2] - query.shape[2]
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    query = query.contiguous()
    old, old_lse = flash(query, key[:, :, :prefix].contiguous(), value[:, :, :prefix].contiguous(), scale=scaling)
    new, new_lse = flash(query, key[:, :, prefix:].contiguous(), value[:, :, prefix:].contiguous(), is_causal=True,
                         scale=scaling)
    lse = torch.logaddexp(old_lse, new_lse)
    out = old.float() * torch.exp(old_lse - lse).unsqueeze(-1) + new.float() * torch.exp(new_lse - lse).unsqueeze(-1)
    return out.to(query.dtype)


def install(model) -> bool:
    """Switch ``model`` from "sdpa" to the split attention; False (and nothing changed) otherwise."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa" or model.device.type != "cpu":
        return False
    AttentionInterface.register(NAME, split_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return model.config._attn_implementation == NAME

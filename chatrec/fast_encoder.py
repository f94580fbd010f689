"""A lean forward pass of a BERT sentence encoder, for the one or two short texts a turn embeds.

``SentenceTransformer.encode`` of one 18-token query took ~22 ms on one core of the reference
machine, and about a quarter of that was not arithmetic: transformers' module wrappers, mask
building, output capturing, three separate query/key/value products per layer. This module runs the
same model (same weights, same operations) as a handful of tensor calls per layer: one fused
query/key/value product, ``scaled_dot_product_attention``, the output and feed-forward products
with pre-transposed weights: ~17 ms. In float32 the vectors match ``model.encode`` to rounding
(the fused product adds in another order; tests check 2e-6). With ``matmul_dtype="bfloat16"``
(``--query-precision``; the default on CPUs with AMX or AVX512-BF16) the four products per layer read
bfloat16 weights: ~13 ms, cosine to float32 >= 0.9999. It applies only to the architecture it
reproduces: a ``BertModel`` with absolute positions and exact GELU, mean pooling, then normalisation
(all-MiniLM-L6-v2 and other BERT-based sentence models); for anything else ``LeanBert.of`` returns
None and the caller keeps the library's own ``encode``. Catalog encoding (large batches) always uses
the library, in float32: there the arithmetic dominates and nothing is to be gained.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Layer:
    qkv_w: object  # (hidden, 3 * hidden), pre-transposed for addmm
    qkv_b: object
    out_w: object
    out_b: object
    ln1: tuple[object, object]
    up_w: object
    up_b: object
    down_w: object
    down_b: object
    ln2: tuple[object, object]


class LeanBert:
    """``preprocess`` -> embeddings -> layers -> masked mean -> L2 normalise, for short batches."""

    def __init__(self, st_model, hf_model, matmul_dtype: str = "float32"):
        import torch

        self._st = st_model
        # "bfloat16": the four products per layer read bfloat16 weights (half the bytes) and run on the
        # CPU's bfloat16 units; embeddings, layer norms, attention and pooling stay float32. Queries are
        # padded to a multiple of BUCKET_TOKENS (masked: the same vectors), see there.
        self.matmul_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[matmul_dtype]
        cfg = hf_model.config
        self.heads = int(cfg.num_attention_heads)
        self.hidden = int(cfg.hidden_size)
        self.eps = float(cfg.layer_norm_eps)
        emb = hf_model.embeddings
        with torch.no_grad():
            self.word = emb.word_embeddings.weight.detach()
            self.position = emb.position_embeddings.weight.detach()
            self.token_type = emb.token_type_embeddings.weight.detach()
            self.emb_ln = (emb.LayerNorm.weight.detach(), emb.LayerNorm.bias.detach())
            self.layers = [self._layer(layer, self.matmul_dtype) for layer in hf_model.encoder.layer]

    @staticmethod
    def _layer(layer, dtype) -> _Layer:
        import torch

        def w(*linears):  # (in, out) for addmm, query/key/value fused into one product
            return torch.cat([m.weight for m in linears], 0).t().contiguous().to(dtype)

        def b(*linears):
            return torch.cat([m.bias for m in linears], 0).contiguous().to(dtype)

        att = layer.attention
        q, k, v = att.self.query, att.self.key, att.self.value
        out, up, down = att.output.dense, layer.intermediate.dense, layer.output.dense
        return _Layer(qkv_w=w(q, k, v), qkv_b=b(q, k, v), out_w=w(out), out_b=b(out),
                      ln1=(att.output.LayerNorm.weight.detach(), att.output.LayerNorm.bias.detach()),
                      up_w=w(up), up_b=b(up), down_w=w(down), down_b=b(down),
                      ln2=(layer.output.LayerNorm.weight.detach(), layer.output.LayerNorm.bias.detach()))

    @classmethod
    def of(cls, st_model, matmul_dtype: str = "float32") -> "LeanBert | None":
        """The lean encoder for ``st_model`` when it is the architecture this module reproduces, else None."""
        try:
            modules = list(st_model)
            names = [type(m).__name__ for m in modules]
            if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
                return None
            hf = modules[0].auto_model
            cfg = hf.config
            pooling = modules[1]
            if (type(hf).__name__ != "BertModel" or getattr(cfg, "hidden_act", None) != "gelu"
                    or getattr(cfg, "position_embedding_type", "absolute") != "absolute"
                    or getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False)
                    or getattr(pooling, "pooling_mode", None) != "mean"
                    or not getattr(pooling, "include_prompt", True)):
                return None
            if any(p.device.type != "cpu" for p in hf.parameters()):
                return None
            return cls(st_model, hf, matmul_dtype)
        except Exception as exc:  # another sentence-transformers/transformers layout: keep the library's path
            log.debug("lean encoder unavailable: %s", exc)
            return None

    def warm_up(self) -> None:
        """Compile the bfloat16 products for the buckets most queries use (16-48 tokens) now, not in
        a user's turn. oneDNN keys them by thread count too: call it the way queries will run."""
        import torch

        if self.matmul_dtype != torch.float32:
            for words in (8, 24, 40):
                self.encode([" ".join(["warm"] * words)])

    def encode(self, texts: Sequence[str]):
        """Unit vectors (a float32 numpy array) of ``texts``, in order."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            features = self._st.preprocess(list(texts))
            ids = features["input_ids"]
            mask = features["attention_mask"]
            types = features.get("token_type_ids")
            if self.matmul_dtype != torch.float32:
                ids, mask, types = _pad_to_bucket(ids, mask, types)
            batch, seq = ids.shape
            x = self.word[ids] + self.position[:seq]
            x = x + (self.token_type[types] if types is not None else self.token_type[0])
            x = F.layer_norm(x, (self.hidden,), *self.emb_ln, self.eps)
            padded = bool((mask == 0).any())
            att_mask = mask[:, None, None, :].bool() if padded else None
            h, d = self.heads, self.hidden // self.heads
            dtype = self.matmul_dtype

            def mm(bias, a, weight):
                return torch.addmm(bias, a, weight) if dtype == torch.float32 else \
                    torch.addmm(bias, a.to(dtype), weight).float()

            for layer in self.layers:
                flat = x.reshape(batch * seq, self.hidden)
                qkv = mm(layer.qkv_b, flat, layer.qkv_w).view(batch, seq, 3, h, d)
                q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=att_mask)
                ctx = ctx.transpose(1, 2).reshape(batch * seq, self.hidden)
                x = F.layer_norm(mm(layer.out_b, ctx, layer.out_w) + flat, (self.hidden,), *layer.ln1,
                                 self.eps)
                up = F.gelu(mm(layer.up_b, x, layer.up_w))
                x = F.layer_norm(mm(layer.down_b, up, layer.down_w) + x, (self.hidden,), *layer.ln2,
                                 self.eps).view(batch, seq, self.hidden)
            weights = mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return F.normalize(pooled, p=2, dim=1).numpy()


# oneDNN compiles a bfloat16 GEMM for each new row count on first use (10-25 ms, measured): queries are
# padded (masked) to a multiple of this many tokens, so a handful of shapes serve every query.
BUCKET_TOKENS = 16


def _pad_to_bucket(ids, mask, types):
    import torch.nn.functional as F

    extra = -ids.shape[1] % BUCKET_TOKENS
    if not extra:
        return ids, mask, types
    pad = (0, extra)
    return F.pad(ids, pad), F.pad(mask, pad), (F.pad(types, pad) if types is not None else None)

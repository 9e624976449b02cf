"""Llama-style decoder block (RMSNorm, fused-qkv causal attention, SwiGLU) with static KV cache.

Used by :class:`hf_vidtok.models.video_ar.VideoARGenerator` (the LlamaGen / LARP "llama-abs"
generator: learned absolute positions, no RoPE, no biases).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kv_cache import StaticKVCache
from .rms_norm import RMSNorm

__all__ = ["swiglu_hidden_size", "SwiGLU", "CausalSelfAttention", "DropPath", "LlamaBlock"]


def swiglu_hidden_size(dim: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None) -> int:
    """Llama hidden width: ``int(2 * 4 * dim / 3)``, times ``ffn_dim_multiplier``, rounded up to a
    multiple of ``multiple_of`` (3584 for dim 1280)."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    if hidden % multiple_of:
        hidden += multiple_of - hidden % multiple_of
    return hidden


class SwiGLU(nn.Module):
    """``down_proj(silu(gate_proj(x)) * up_proj(x))`` (no biases) followed by dropout."""

    def __init__(self, dim: int, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_size, bias=False)
        self.up_proj = nn.Linear(dim, hidden_size, bias=False)
        self.down_proj = nn.Linear(hidden_size, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class CausalSelfAttention(nn.Module):
    """Causal multi-head attention on SDPA with a fused ``qkv_proj`` (q | k | v, heads contiguous,
    grouped-query when ``num_kv_heads < num_heads``), ``o_proj`` and residual dropout.

    ``forward(x (B, S, D), cache=None, layer_idx=0, positions=None, kv_length=None, attn_mask=None)``:

    * without ``cache``: causal attention over the ``S`` positions (``attn_mask``, boolean True =
      attend or additive, replaces the causal mask when given);
    * with a :class:`StaticKVCache`: the new keys/values are written at ``positions (S,)`` and the
      queries attend to the first ``kv_length`` cached positions. ``attn_mask=None`` means: every one
      of those positions is visible (``S == 1``) or, for ``S == kv_length > 1`` (prefill from
      position 0), causal. Other layouts need an explicit ``attn_mask`` broadcastable to
      ``(B, heads, S, kv_length)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        attn_dropout: float = 0.0,
        resid_dropout: float = 0.0,
    ):
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if dim % num_heads != 0:
            raise ValueError(f"hidden size {dim} is not divisible by the number of heads {num_heads}")
        if num_heads % num_kv_heads != 0:
            raise ValueError(f"num_heads {num_heads} is not divisible by num_kv_heads {num_kv_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        self.attn_dropout = attn_dropout
        self.qkv_proj = nn.Linear(dim, (num_heads + 2 * num_kv_heads) * self.head_dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)
        self.resid_dropout = nn.Dropout(resid_dropout)

    def forward(
        self,
        x: torch.Tensor,
        cache: StaticKVCache | None = None,
        layer_idx: int = 0,
        positions: torch.Tensor | None = None,
        kv_length: int | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, s, _ = x.shape
        kv_size = self.num_kv_heads * self.head_dim
        q, k, v = self.qkv_proj(x).split([self.dim, kv_size, kv_size], dim=-1)
        q = q.view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, s, self.num_kv_heads, self.head_dim).transpose(1, 2)
        is_causal = attn_mask is None and s > 1
        if cache is not None:
            if positions is None or kv_length is None:
                raise ValueError("`positions` and `kv_length` are required when a KV `cache` is given")
            if is_causal and s != kv_length:
                raise ValueError(
                    f"{s} new positions attending to {kv_length} cached ones need an explicit `attn_mask`"
                )
            k, v = cache.update(layer_idx, positions, k, v, kv_length)
            q = q.to(k.dtype)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            is_causal=is_causal,
            dropout_p=self.attn_dropout if self.training else 0.0,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )
        out = out.transpose(1, 2).reshape(b, s, self.dim)
        return self.resid_dropout(self.o_proj(out))


class DropPath(nn.Module):
    """Per-sample stochastic depth (identity in eval mode or with ``drop_prob == 0``)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class LlamaBlock(nn.Module):
    """Pre-norm decoder block: ``h = x + attn(input_layernorm(x)); h + mlp(post_attention_layernorm(h))``.

    Same arguments as :class:`CausalSelfAttention` for caching; input/output ``(B, S, D)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        intermediate_size: int,
        num_kv_heads: int | None = None,
        norm_eps: float = 1e-5,
        attn_dropout: float = 0.0,
        resid_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps=norm_eps)
        self.self_attn = CausalSelfAttention(dim, num_heads, num_kv_heads, attn_dropout, resid_dropout)
        self.post_attention_layernorm = RMSNorm(dim, eps=norm_eps)
        self.mlp = SwiGLU(dim, intermediate_size, ffn_dropout)
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: torch.Tensor,
        cache: StaticKVCache | None = None,
        layer_idx: int = 0,
        positions: torch.Tensor | None = None,
        kv_length: int | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = x + self.drop_path(
            self.self_attn(self.input_layernorm(x), cache, layer_idx, positions, kv_length, attn_mask)
        )
        return h + self.drop_path(self.mlp(self.post_attention_layernorm(h)))

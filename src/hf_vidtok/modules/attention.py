"""Pre-norm ViT transformer blocks on ``scaled_dot_product_attention``.

Parameter names follow timm's ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``) so official LARP encoder / decoder / discriminator weights map 1:1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["Attention", "Mlp", "TransformerBlock", "QueryTransformer"]


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (q | k | v, heads contiguous).

    ``forward(x (B, L, D), attn_mask=None, num_queries=None)``: ``attn_mask`` is a boolean
    (True = attend) or additive mask broadcastable to ``(B, heads, L_q, L)``. With
    ``num_queries`` only the last ``num_queries`` positions are computed as queries (keys and
    values still use all ``L`` positions) and the output is ``(B, num_queries, D)``.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, proj_bias: bool = True, attn_drop=0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"hidden size {dim} is not divisible by the number of heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, num_queries: int | None = None):
        b, length, dim = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if num_queries is not None:
            q = q[:, :, length - num_queries :]
            if attn_mask is not None and attn_mask.dim() >= 2 and attn_mask.shape[-2] == length:
                attn_mask = attn_mask[..., length - num_queries :, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(b, q.shape[2], dim)
        return self.proj(out)


class Mlp(nn.Module):
    """``fc1 -> GELU (exact erf) -> fc2``."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """``h = h + attn(norm1(h)); h = h + mlp(norm2(h))`` (no LayerScale, no drop-path).

    ``layer_norm_eps`` defaults to 1e-5: the torch LayerNorm default that the released LARP
    weights were trained with (timm >= 1.0.16 would silently use 1e-6).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias=False, layer_norm_eps=1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, num_queries: int | None = None):
        residual = x if num_queries is None else x[:, x.shape[1] - num_queries :]
        x = residual + self.attn(self.norm1(x), attn_mask=attn_mask, num_queries=num_queries)
        return x + self.mlp(self.norm2(x))


class QueryTransformer(nn.Module):
    """Stack of :class:`TransformerBlock` run on ``[context ; queries]`` (bidirectional unless
    ``attn_mask`` is given), returning only the query positions ``(B, Nq, D)``.

    This is the official ``TransformerEncoderParallel`` used by both the LARP encoder (context =
    patch tokens, queries = holistic queries) and decoder (context = latent tokens, queries =
    patch queries). The last block computes only the query rows, which gives the same values
    with less work.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, layer_norm_eps=1e-5):
        super().__init__()
        self.blocks = nn.ModuleList(
            [TransformerBlock(dim, num_heads, mlp_ratio, layer_norm_eps=layer_norm_eps) for _ in range(depth)]
        )
        self.gradient_checkpointing = False

    def forward(self, context: torch.Tensor, queries: torch.Tensor, attn_mask: torch.Tensor | None = None):
        num_queries = queries.shape[1]
        h = torch.cat([context, queries], dim=1)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            nq = num_queries if i == last else None
            if self.gradient_checkpointing and self.training:
                h = checkpoint(block, h, attn_mask, nq, use_reentrant=False)
            else:
                h = block(h, attn_mask=attn_mask, num_queries=nq)
        if not self.blocks:
            h = h[:, h.shape[1] - num_queries :]
        return h

"""DETR / GigaTok style pre-norm Q-Former layer on ``scaled_dot_product_attention``.

One layer = self-attention over the queries, cross-attention from the queries to fixed reference
features, then an MLP. Position embeddings are re-added in every layer: the query positions go to
the self-attention queries and keys and to the cross-attention queries, the reference positions to
the cross-attention keys only; values never carry positions (GigaTok ``TransformerDecoderLayer``).
The existing :class:`~hf_vidtok.modules.attention.Attention` fuses q/k/v on one input, which cannot
keep positions off the values, hence this separate module.

Both attentions can take precomputed keys/values, which is what the EVATok prefix (KV-cache) path
uses: ``past_kv`` prepends cached self-attention keys/values, ``ref_kv`` replaces the reference
projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Mlp

__all__ = ["QFormerAttention", "QFormerLayer"]


class QFormerAttention(nn.Module):
    """Multi-head attention with separate ``q_proj``/``k_proj``/``v_proj``/``out_proj``.

    :meth:`project_kv` maps key inputs ``(B, Lk, D)`` and value inputs to ``(B, heads, Lk, D/heads)``;
    ``forward(query_input (B, Lq, D), k, v, attn_mask)`` returns ``(B, Lq, D)``. ``attn_mask`` is a
    boolean (True = attend) mask broadcastable to ``(B, heads, Lq, Lk)``.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool = True):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"hidden size {dim} is not divisible by the number of heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, key_input: torch.Tensor, value_input: torch.Tensor):
        return self._heads(self.k_proj(key_input)), self._heads(self.v_proj(value_input))

    def forward(self, query_input: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask=None):
        b, length, dim = query_input.shape
        q = self._heads(self.q_proj(query_input))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, length, dim))


class QFormerLayer(nn.Module):
    """``h += self_attn(norm1(h)); h += cross_attn(norm2(h), refs); h += mlp(norm3(h))``.

    ``forward(hidden_states (B, Lq, D), ref_kv, self_mask=None, cross_mask=None, query_pos=None,
    past_kv=None, return_kv=False)``:

    * ``ref_kv``: ``(k, v)`` of the references from :meth:`reference_kv` (compute once and reuse it
      for as many query sets as needed; EVATok's references do not depend on the assignment).
    * ``self_mask`` ``(B|1, 1, Lq, Lpast + Lq)`` / ``cross_mask`` ``(B|1, 1, Lq, Lk)``: boolean masks.
    * ``query_pos`` ``(B|1, Lq, D)``: added to the inputs of the self-attention q/k and cross q.
    * ``past_kv``: cached self-attention ``(k, v)`` ``(B, heads, Lpast, D/heads)`` of earlier
      queries, prepended to this call's keys/values.
    * ``return_kv``: also return the self-attention ``(k, v)`` including ``past_kv`` (the next cache).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, layer_norm_eps: float = 1e-6, bias=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.self_attn = QFormerAttention(dim, num_heads, bias=bias)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.cross_attn = QFormerAttention(dim, num_heads, bias=bias)
        self.norm3 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def reference_kv(self, references: torch.Tensor, reference_pos: torch.Tensor | None = None):
        """Cross-attention ``(k, v)`` of ``references (B, Lk, D)`` (+ ``reference_pos`` on the keys)."""
        key_input = references if reference_pos is None else references + reference_pos
        return self.cross_attn.project_kv(key_input, references)

    def forward(
        self,
        hidden_states: torch.Tensor,
        ref_kv: tuple[torch.Tensor, torch.Tensor],
        self_mask: torch.Tensor | None = None,
        cross_mask: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_kv: bool = False,
    ):
        h = hidden_states
        x = self.norm1(h)
        qk_input = x if query_pos is None else x + query_pos
        k, v = self.self_attn.project_kv(qk_input, x)
        if past_kv is not None:
            k = torch.cat([past_kv[0], k], dim=2)
            v = torch.cat([past_kv[1], v], dim=2)
        h = h + self.self_attn(qk_input, k, v, attn_mask=self_mask)
        x = self.norm2(h)
        h = h + self.cross_attn(x if query_pos is None else x + query_pos, ref_kv[0], ref_kv[1], attn_mask=cross_mask)
        h = h + self.mlp(self.norm3(h))
        return (h, (k, v)) if return_kv else h

"""GPTC: the small causal transformer prior trained next to the LARP tokenizer.

It reads continuous codes ``(B, L, bottleneck_dim)`` and predicts the next code; with an
l2-normalised output the logits over the codebook are cosine similarities ("codebook as
classifier"). Only used during tokenizer training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GptcPrior", "GptcBlock", "GptcCausalSelfAttention"]


class GptcCausalSelfAttention(nn.Module):
    """Causal self-attention with separate ``q_proj``/``k_proj``/``v_proj`` and ``o_proj``
    (official names ``query``/``key``/``value``/``proj``), SDPA with ``is_causal=True``."""

    def __init__(self, dim: int, num_heads: int, attn_dropout: float, resid_dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.o_proj = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout
        self.resid_dropout = nn.Dropout(resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape

        def heads(t):
            return t.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        out = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.attn_dropout if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(b, length, dim)
        return self.resid_dropout(self.o_proj(out))


class GptcMlp(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.fc2(self.act(self.fc1(x))))


class GptcBlock(nn.Module):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, LayerNorm eps 1e-5."""

    def __init__(self, dim: int, num_heads: int, attn_dropout: float, resid_dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GptcCausalSelfAttention(dim, num_heads, attn_dropout, resid_dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = GptcMlp(dim, resid_dropout)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GptcPrior(nn.Module):
    """Continuous-input GPT: ``input_proj`` (D -> C) + learned ``position_embeddings`` (1, L, C) ->
    dropout -> blocks -> ``norm`` -> ``head`` (C -> D).

    ``forward(x (B, L, D)) -> (B, L, D)``; ``predict_next(x (B, N, D)) -> (B, N, D)``: teacher
    forcing on ``x[:, :-1]`` with ``x[:, :1]`` prepended (so output position i predicts code i+1
    from codes 0..i), l2-normalised when ``l2_normalized``.

    Note: the official GPTC keeps attention dropout active even in eval mode; here dropout follows
    ``train()``/``eval()`` everywhere (identical in training, deterministic in evaluation).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        max_seq_len: int,
        embd_dropout: float = 0.1,
        resid_dropout: float = 0.1,
        attn_dropout: float = 0.1,
        l2_normalized: bool = True,
    ):
        super().__init__()
        self.l2_normalized = l2_normalized
        self.input_proj = nn.Linear(input_dim, hidden_size)
        self.position_embeddings = nn.Parameter(torch.zeros(1, max_seq_len, hidden_size))
        self.dropout = nn.Dropout(embd_dropout)
        self.blocks = nn.ModuleList(
            [GptcBlock(hidden_size, num_heads, attn_dropout, resid_dropout) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, input_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        h = self.input_proj(x) + self.position_embeddings[:, :length]
        h = self.dropout(h)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))

    def predict_next(self, x: torch.Tensor) -> torch.Tensor:
        pred = self(x[:, :-1])
        pred = torch.cat([x[:, :1].to(pred.dtype), pred], dim=1)
        return F.normalize(pred, dim=-1) if self.l2_normalized else pred

"""Root-mean-square layer norm (Llama / LlamaGen convention)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """``y = x * rsqrt(mean(x^2, -1) + eps) * weight``, normalised in float32 and cast back to the
    input dtype before the (learned, bias-free) scale, as in the official LARP / LlamaGen code.

    Input ``(..., dim)``; output the same shape and dtype promotion as ``x_normed * weight``.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"

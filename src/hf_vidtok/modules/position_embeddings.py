"""Fixed sin-cos position tables (MAE / LARP convention), computed in float64."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sincos_1d", "sincos_2d", "sincos_3d", "sincos_table"]


def sincos_1d(dim: int, positions, base: float = 10000.0) -> np.ndarray:
    """1-D table of shape ``(M, dim)``: all sines first, then all cosines.

    ``omega_i = base ** (-i / (dim / 2))`` for ``i < dim / 2``; computed in float64.
    """
    if dim % 2 != 0:
        raise ValueError(f"`dim` must be even for a sin-cos table, got {dim}")
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / base**omega
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid_h: int, grid_w: int | None = None) -> np.ndarray:
    """2-D table ``(grid_h * grid_w, dim)`` in row-major (h, w) order.

    The first ``dim / 2`` channels encode the column (w) index and the last ``dim / 2`` the row
    (h) index, as in MAE (meshgrid with w first).
    """
    grid_w = grid_h if grid_w is None else grid_w
    if dim % 4 != 0:
        raise ValueError(f"`dim` must be divisible by 4 for a 2-D sin-cos table, got {dim}")
    ww, hh = np.meshgrid(np.arange(grid_w, dtype=np.float64), np.arange(grid_h, dtype=np.float64))
    emb_w = sincos_1d(dim // 2, ww.reshape(-1))
    emb_h = sincos_1d(dim // 2, hh.reshape(-1))
    return np.concatenate([emb_w, emb_h], axis=1)


def sincos_3d(dim: int, grid_h: int, grid_t: int, grid_w: int | None = None) -> np.ndarray:
    """3-D table ``(grid_t * grid_h * grid_w, dim)`` in (t, h, w) order.

    The spatial 2-D table plus a full-width 1-D temporal table (added, not concatenated).
    """
    grid_w = grid_h if grid_w is None else grid_w
    spatial = sincos_2d(dim, grid_h, grid_w).reshape(1, grid_h, grid_w, dim)
    temporal = sincos_1d(dim, np.arange(grid_t)).reshape(grid_t, 1, 1, dim)
    return (spatial + temporal).reshape(grid_t * grid_h * grid_w, dim)


def sincos_table(table: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """Convert a float64 numpy table to a ``(1, M, D)`` tensor (float32 by default)."""
    return torch.from_numpy(table).to(dtype).unsqueeze(0)

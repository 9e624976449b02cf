"""Multi-level ("pyramid") average pooling of a 2-D feature map into 2^n nested queries (GigaTok).

The pyramid is the grids ``1x1, 1x1, 1x2, 2x2, 2x4, 4x4, ...`` (rows x cols), concatenated in that
order, each grid flattened row-major. The first ``2^n`` entries are exactly the grids up to the one
with ``2^(n-1)`` cells, so query sets for different counts are nested prefixes of one another and
query 0 is the global mean. From a grid, the axis with more room (map size / grid size) is doubled
next, columns first on ties, which gives GigaTok's order on square maps. Grids use adaptive average
pooling, so map sizes need not be powers of two; every grid must fit inside the map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pyramid_grids", "max_pyramid_queries", "multilevel_pool"]


def _is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n >= 1 and (n & (n - 1)) == 0


def _grid_sequence(height: int, width: int):
    """All pyramid grids that fit a ``height x width`` map, in order."""
    grids = [(1, 1), (1, 1)]
    gh, gw = 1, 1
    while True:
        room_w, room_h = width / gw, height / gh
        options = [(gh, gw * 2), (gh * 2, gw)] if room_w >= room_h else [(gh * 2, gw), (gh, gw * 2)]
        nxt = next(((h, w) for h, w in options if h <= height and w <= width), None)
        if nxt is None:
            return grids
        gh, gw = nxt
        grids.append(nxt)


def max_pyramid_queries(height: int, width: int) -> int:
    """The largest query count the pyramid can produce on a ``height x width`` map."""
    return sum(h * w for h, w in _grid_sequence(height, width))


def pyramid_grids(height: int, width: int, num_queries: int) -> list[tuple[int, int]]:
    """Grids ``[(rows, cols), ...]`` whose cells add up to ``num_queries``.

    Raises ``ValueError`` unless ``num_queries`` is a power of two that the pyramid reaches on a
    ``height x width`` map.
    """
    if height < 1 or width < 1:
        raise ValueError(f"map size must be positive, got {height}x{width}")
    if not _is_power_of_two(num_queries):
        raise ValueError(f"`num_queries` must be a power of two (1, 2, 4, ...), got {num_queries!r}")
    out, total = [], 0
    for grid in _grid_sequence(height, width):
        if total == num_queries:
            break
        out.append(grid)
        total += grid[0] * grid[1]
    if total != num_queries:
        raise ValueError(
            f"`num_queries`={num_queries} needs a finer pyramid than a {height}x{width} map allows "
            f"(at most {max_pyramid_queries(height, width)} queries)"
        )
    return out


def multilevel_pool(feat: torch.Tensor, num_queries: int) -> torch.Tensor:
    """Pool ``feat (N, D, H, W)`` into the first ``num_queries`` pyramid cells -> ``(N, num_queries, D)``."""
    if feat.dim() != 4:
        raise ValueError(f"`feat` must be (N, D, H, W), got shape {tuple(feat.shape)}")
    grids = pyramid_grids(feat.shape[2], feat.shape[3], num_queries)
    pooled = []
    cache = {}
    for grid in grids:
        if grid not in cache:
            if grid == (feat.shape[2], feat.shape[3]):
                cache[grid] = feat.flatten(2)
            else:
                cache[grid] = F.adaptive_avg_pool2d(feat, grid).flatten(2)
        pooled.append(cache[grid])
    return torch.cat(pooled, dim=2).transpose(1, 2)

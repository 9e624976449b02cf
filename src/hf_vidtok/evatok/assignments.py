"""Candidate token assignments of EVATok (paper Sec. 3): the single home of the class <-> assignment mapping.

An assignment gives each of the ``num_blocks`` (T) temporal blocks one of the ``levels`` (m token counts,
strictly ascending), e.g. levels (32, 64, 128, 256, 512) and T = 4 give A = m^T = 625 candidates.

Class ids are mixed-radix numbers of the level *indices* with block 1 the most significant digit, so
``class = sum_t idx_t * m^(T - 1 - t)`` (t counted from 0). Consequences used across the package:

- ``candidate_assignments`` lists the assignments in class order (lexicographic, levels ascending);
- the depth-``d`` prefix (blocks 1..d) of a class is ``class // m^(T - d)``, and all classes sharing a prefix
  form the contiguous range ``[p * m^(T-d), (p + 1) * m^(T-d))``;
- the prefix tree has ``sum_{d=1..T} m^d`` nodes (780 for 5 x 4); node ids here are ordered by depth, then
  by prefix id (``node = offset_d + prefix_d`` with ``offset_d = sum_{e<d} m^e``).

Pure torch: this module imports nothing from hf_vidtok (models import it without a cycle).
"""

from __future__ import annotations

import operator
from typing import Sequence, Union

import torch

__all__ = [
    "ancestor_node_ids",
    "assignment_lengths",
    "assignment_to_class",
    "assignment_to_level_indices",
    "candidate_assignments",
    "class_to_assignment",
    "normalize_levels",
    "num_prefix_nodes",
    "prefix_class_range",
    "prefix_ids",
    "uniform_class_ids",
]

LevelsLike = Union[Sequence[int], torch.Tensor]


def normalize_levels(levels: LevelsLike) -> tuple[int, ...]:
    """Validate ``levels`` (strictly ascending ints, positive but for a first 0: the repeat level of a tokenizer
    that has one) and return them as a tuple of ints."""
    if isinstance(levels, torch.Tensor):
        if levels.dim() != 1 or levels.dtype.is_floating_point or levels.dtype == torch.bool:
            raise TypeError(f"`levels` must be a 1-D integer tensor or a sequence of ints, got {levels.dtype} "
                            f"tensor of shape {tuple(levels.shape)}")
        levels = levels.tolist()
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence):
        raise TypeError(f"`levels` must be a sequence of ints, got {type(levels).__name__}")
    out = []
    for v in levels:
        try:
            if isinstance(v, bool):
                raise TypeError
            out.append(operator.index(v))  # ints and numpy ints (e.g. from Parquet metadata)
        except TypeError:
            raise TypeError(f"`levels` must contain ints, got {v!r} ({type(v).__name__})") from None
    if not out:
        raise ValueError("`levels` must contain at least one token count, got an empty sequence")
    if out[0] < 0 or out[-1] <= 0 or any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"`levels` must be strictly ascending token counts, positive but for a first 0, got {tuple(out)}")
    return tuple(out)


def _check_num_blocks(num_blocks: int) -> int:
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int):
        raise TypeError(f"`num_blocks` must be an int, got {type(num_blocks).__name__}")
    if num_blocks <= 0:
        raise ValueError(f"`num_blocks` must be positive, got {num_blocks}")
    return num_blocks


def _radix(m: int, num_blocks: int, device=None) -> torch.Tensor:
    """Place values ``m^(T-1-t)`` of the T digits, block 1 first: (T,) long."""
    return m ** torch.arange(num_blocks - 1, -1, -1, device=device, dtype=torch.long)


def candidate_assignments(levels: LevelsLike, num_blocks: int) -> torch.LongTensor:
    """All ``m^T`` assignments in class order: (A, T) long token counts (row ``c`` is class ``c``)."""
    levels = normalize_levels(levels)
    num_blocks = _check_num_blocks(num_blocks)
    return class_to_assignment(torch.arange(len(levels) ** num_blocks), levels, num_blocks)


def assignment_lengths(levels: LevelsLike, num_blocks: int) -> torch.LongTensor:
    """Total token count ``L(a) = sum_t k_t`` of every candidate, in class order: (A,) long."""
    return candidate_assignments(levels, num_blocks).sum(dim=-1)


def assignment_to_level_indices(assignment: torch.Tensor, levels: LevelsLike, check: bool = True) -> torch.LongTensor:
    """Token counts (..., T) -> level indices (..., T) in ``[0, m)``.

    ``check=True`` raises a ValueError for counts that are not levels (this reads one flag back from the device);
    pass ``check=False`` in hot paths where the input is known to be valid.
    """
    if not isinstance(assignment, torch.Tensor):
        raise TypeError(f"`assignment` must be a tensor of token counts, got {type(assignment).__name__}")
    if assignment.dtype.is_floating_point or assignment.dtype == torch.bool or assignment.is_complex():
        raise TypeError(f"`assignment` must be an integer tensor, got {assignment.dtype}")
    if assignment.dim() == 0:
        raise ValueError("`assignment` must have a trailing block dimension (..., T), got a scalar")
    levels_t = torch.tensor(normalize_levels(levels), device=assignment.device, dtype=torch.long)
    a = assignment.long()
    idx = torch.searchsorted(levels_t, a.contiguous()).clamp_(max=len(levels_t) - 1)
    if check and not bool((levels_t[idx] == a).all()):
        bad = sorted(set(a[levels_t[idx] != a].tolist()))[:5]
        raise ValueError(f"`assignment` contains token counts {bad} that are not in levels {tuple(levels_t.tolist())}")
    return idx


def assignment_to_class(assignment: torch.Tensor, levels: LevelsLike, check: bool = True) -> torch.LongTensor:
    """Token counts (..., T) -> class ids (...) long (block 1 the most significant digit)."""
    idx = assignment_to_level_indices(assignment, levels, check=check)
    m = len(normalize_levels(levels))
    return (idx * _radix(m, idx.shape[-1], idx.device)).sum(dim=-1)


def class_to_assignment(class_ids: torch.Tensor, levels: LevelsLike, num_blocks: int) -> torch.LongTensor:
    """Class ids (...) -> token counts (..., T) long, on the device of ``class_ids``."""
    levels = normalize_levels(levels)
    num_blocks = _check_num_blocks(num_blocks)
    if not isinstance(class_ids, torch.Tensor):
        class_ids = torch.as_tensor(class_ids)
    if class_ids.dtype.is_floating_point or class_ids.dtype == torch.bool or class_ids.is_complex():
        raise TypeError(f"`class_ids` must be an integer tensor, got {class_ids.dtype}")
    m = len(levels)
    num_classes = m**num_blocks
    if class_ids.device.type == "cpu" and class_ids.numel() and (
        int(class_ids.min()) < 0 or int(class_ids.max()) >= num_classes
    ):
        raise ValueError(f"`class_ids` must lie in [0, {num_classes}) for {m} levels x {num_blocks} blocks")
    levels_t = torch.tensor(levels, device=class_ids.device, dtype=torch.long)
    digits = (class_ids.long().unsqueeze(-1) // _radix(m, num_blocks, class_ids.device)) % m
    return levels_t[digits]


def prefix_ids(class_ids: torch.Tensor, levels: LevelsLike, num_blocks: int, depth: int) -> torch.LongTensor:
    """Depth-``depth`` prefix id (mixed-radix number of blocks 1..depth) of each class id: same shape."""
    m = len(normalize_levels(levels))
    num_blocks = _check_num_blocks(num_blocks)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= num_blocks:
        raise ValueError(f"`depth` must be an int in [0, {num_blocks}], got {depth!r}")
    if not isinstance(class_ids, torch.Tensor):
        class_ids = torch.as_tensor(class_ids)
    return class_ids.long() // m ** (num_blocks - depth)


def prefix_class_range(prefix: Sequence[int], levels: LevelsLike, num_blocks: int) -> range:
    """Classes whose first ``len(prefix)`` blocks have the token counts ``prefix``: a contiguous ``range``.

    E.g. the K600 frame-prediction condition (512, 128) with the paper's set -> ``range(550, 575)``.
    """
    levels = normalize_levels(levels)
    num_blocks = _check_num_blocks(num_blocks)
    prefix = list(prefix)
    if len(prefix) > num_blocks:
        raise ValueError(f"`prefix` has {len(prefix)} blocks, more than num_blocks={num_blocks}")
    p = 0
    for k in prefix:
        if k not in levels:
            raise ValueError(f"`prefix` token count {k!r} is not in levels {levels}")
        p = p * len(levels) + levels.index(k)
    span = len(levels) ** (num_blocks - len(prefix))
    return range(p * span, (p + 1) * span)


def num_prefix_nodes(levels: LevelsLike, num_blocks: int) -> int:
    """Number of nodes of the prefix tree, ``sum_{d=1..T} m^d`` (780 for 5 levels x 4 blocks)."""
    m = len(normalize_levels(levels))
    return sum(m**d for d in range(1, _check_num_blocks(num_blocks) + 1))


def ancestor_node_ids(levels: LevelsLike, num_blocks: int) -> torch.LongTensor:
    """(A, T) long: column ``t`` is the tree node of each class's depth-``t+1`` prefix.

    Nodes are numbered by depth, then prefix id, so a per-node table ``v (..., num_prefix_nodes)`` becomes
    per-class per-block values with ``v[..., ancestor_node_ids(levels, T)]`` -> (..., A, T).
    """
    m = len(normalize_levels(levels))
    num_blocks = _check_num_blocks(num_blocks)
    classes = torch.arange(m**num_blocks)
    cols, offset = [], 0
    for d in range(1, num_blocks + 1):
        cols.append(offset + classes // m ** (num_blocks - d))
        offset += m**d
    return torch.stack(cols, dim=-1)


def uniform_class_ids(levels: LevelsLike, num_blocks: int) -> torch.LongTensor:
    """Class ids of the ``m`` uniform assignments (k, k, ..., k), levels ascending: (m,) long."""
    levels = normalize_levels(levels)
    num_blocks = _check_num_blocks(num_blocks)
    idx = torch.arange(len(levels))
    return idx * _radix(len(levels), num_blocks).sum()

"""Token-assignment sampling for EVATok tokenizer training, and length-sorted micro-batches.

* ``random`` (stage 1, the proxy tokenizer): every clip draws its own assignment uniformly from all
  ``len(levels) ** num_blocks`` candidates, i.e. an independent uniform level per block.
* ``uniform:K``: every block of every clip gets ``K`` tokens (the fixed-length baseline).

Clips with different assignments share a batch padded to its longest clip. To keep padding small, a
global batch is sorted by total length and cut into contiguous micro-batches (run with gradient
accumulation): the sampling distribution is unchanged, only the grouping is.
"""

from __future__ import annotations

import torch

__all__ = ["AssignmentSampler", "parse_assignment_sampling", "length_sorted_micro_batches", "static_padded_length"]


class AssignmentSampler:
    """Draws ``(batch_size, num_blocks)`` long CPU assignments.

    Args:
        mode: ``"random"`` or ``"uniform"``.
        levels: the tokenizer's ``token_levels``.
        num_blocks: the tokenizer's ``num_blocks``.
        level: tokens per block for ``"uniform"`` (one of ``levels``).
    """

    MODES = ("random", "uniform")

    def __init__(self, mode: str, levels, num_blocks: int, level: int | None = None):
        if mode not in self.MODES:
            raise ValueError(f"`mode` must be one of {self.MODES}, got {mode!r}")
        self.levels = [int(k) for k in levels]
        if not self.levels:
            raise ValueError("`levels` must not be empty")
        if int(num_blocks) < 1:
            raise ValueError(f"`num_blocks` must be >= 1, got {num_blocks}")
        self.mode, self.num_blocks = mode, int(num_blocks)
        if mode == "uniform" and level not in self.levels:
            raise ValueError(f"uniform sampling needs `level` in the token levels {self.levels}, got {level!r}")
        self.level = level

    def __repr__(self) -> str:
        return "random" if self.mode == "random" else f"uniform:{self.level}"

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Assignments for ``batch_size`` clips, drawn on the CPU from ``generator`` (``random`` mode)."""
        if self.mode == "uniform":
            return torch.full((batch_size, self.num_blocks), self.level, dtype=torch.long)
        idx = torch.randint(len(self.levels), (batch_size, self.num_blocks), generator=generator)
        return torch.tensor(self.levels, dtype=torch.long)[idx]


def parse_assignment_sampling(spec: str, levels, num_blocks: int) -> AssignmentSampler:
    """``"random"`` or ``"uniform:K"`` -> :class:`AssignmentSampler` (clear ``ValueError`` otherwise)."""
    if not isinstance(spec, str):
        raise ValueError(f"`assignment_sampling` must be 'random' or 'uniform:K', got {spec!r}")
    name, _, arg = spec.strip().partition(":")
    if name == "random" and not arg:
        return AssignmentSampler("random", levels, num_blocks)
    if name == "uniform" and arg:
        try:
            level = int(arg)
        except ValueError:
            raise ValueError(f"`assignment_sampling` 'uniform:K' needs an integer K, got {spec!r}") from None
        if level not in [int(k) for k in levels]:
            raise ValueError(f"`assignment_sampling` {spec!r}: K must be one of the token levels {list(levels)}")
        return AssignmentSampler("uniform", levels, num_blocks, level)
    raise ValueError(f"`assignment_sampling` must be 'random' or 'uniform:K', got {spec!r}")


def length_sorted_micro_batches(token_counts: torch.Tensor, num_micro_batches: int) -> list[torch.Tensor]:
    """Split a global batch into ``num_micro_batches`` contiguous groups of clips sorted by total length.

    ``token_counts (B, num_blocks)`` (CPU) -> list of long index tensors into the batch (sizes differ by at
    most one; stable sort, so ties keep batch order). Weight micro-batch ``i``'s mean loss by
    ``len(idx_i) / B`` to get the global-batch mean.
    """
    if not torch.is_tensor(token_counts) or token_counts.dim() != 2:
        raise ValueError(f"`token_counts` must be a (B, num_blocks) tensor, got {getattr(token_counts, 'shape', token_counts)}")
    b = token_counts.shape[0]
    if not 1 <= int(num_micro_batches) <= max(b, 1):
        raise ValueError(f"`num_micro_batches` must be in [1, batch size {b}], got {num_micro_batches}")
    order = torch.argsort(token_counts.sum(1).cpu(), stable=True)
    return [chunk for chunk in order.tensor_split(int(num_micro_batches)) if chunk.numel()]


def static_padded_length(token_counts: torch.Tensor, multiple: int) -> int:
    """The padded token length of a compiled step: the longest total of ``token_counts (B, num_blocks)`` (CPU)
    rounded up to a multiple of ``multiple`` (the largest token level, so lengths take at most ``num_blocks``
    values: few graph shapes, far less padding than ``max_tokens`` under random assignments)."""
    if not torch.is_tensor(token_counts) or token_counts.dim() != 2 or token_counts.numel() == 0:
        raise ValueError(f"`token_counts` must be a non-empty (B, num_blocks) tensor, got {getattr(token_counts, 'shape', token_counts)}")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"`multiple` must be a positive int, got {multiple!r}")
    longest = int(token_counts.sum(1).max())
    return -(-longest // multiple) * multiple

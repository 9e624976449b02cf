"""Block-causal attention masks and the packed layout of variable-length per-block token sets.

EVATok (App. K) uses one rule for every attention in the tokenizer: position ``i`` may attend to
position ``j`` iff ``block(j) <= block(i)`` (full attention inside a block). Padding keys are masked;
padding *queries* are given the last block id so that no mask row is empty (an empty row gives NaN).
"""

from __future__ import annotations

import torch

__all__ = ["block_causal_mask", "packed_block_layout", "PackedBlockLayout"]


def block_causal_mask(
    q_blocks: torch.Tensor, k_blocks: torch.Tensor, k_valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean SDPA mask (True = attend) ``(B, 1, Lq, Lk)``.

    Args:
        q_blocks: ``(B, Lq)`` or ``(1, Lq)`` integer block id of every query.
        k_blocks: ``(B, Lk)`` or ``(1, Lk)`` integer block id of every key.
        k_valid: optional ``(B, Lk)`` / ``(1, Lk)`` bool, False for padding keys.

    ``mask[b, 0, i, j] = k_blocks[b, j] <= q_blocks[b, i] and k_valid[b, j]``; batch dims broadcast.
    """
    if q_blocks.dim() != 2 or k_blocks.dim() != 2:
        raise ValueError(
            f"`q_blocks` and `k_blocks` must be 2-D (B, L), got {tuple(q_blocks.shape)} and {tuple(k_blocks.shape)}"
        )
    mask = k_blocks[:, None, :] <= q_blocks[:, :, None]
    if k_valid is not None:
        if k_valid.shape[-1] != k_blocks.shape[-1] or k_valid.dim() != 2:
            raise ValueError(f"`k_valid` must have shape (B, {k_blocks.shape[-1]}), got {tuple(k_valid.shape)}")
        mask = mask & k_valid[:, None, :].bool()
    return mask.unsqueeze(1)


class PackedBlockLayout:
    """Where each block's tokens sit when every clip's tokens are packed contiguously, block after
    block, and padded to a common length ``L`` (all ``(B, L)`` unless stated):

    * ``block_ids`` long: block of each position; padding gets ``num_blocks - 1``.
    * ``positions`` long: index of the position inside its block (0 for padding).
    * ``valid`` bool: False for padding.
    * ``starts`` ``(B, num_blocks)`` long: first position of every block.
    * ``lengths`` ``(B,)`` long: tokens per clip.
    """

    __slots__ = ("block_ids", "positions", "valid", "starts", "lengths")

    def __init__(self, block_ids, positions, valid, starts, lengths):
        self.block_ids, self.positions, self.valid, self.starts, self.lengths = (
            block_ids, positions, valid, starts, lengths,
        )


def packed_block_layout(token_counts: torch.Tensor, length: int) -> PackedBlockLayout:
    """Layout of ``token_counts (B, num_blocks)`` (long, on any device) packed into ``length`` slots.

    Computed on the counts' device without host synchronisation; ``length`` must be at least the
    largest total (not checked here).
    """
    counts = token_counts.long()
    num_blocks = counts.shape[1]
    ends = counts.cumsum(1)
    starts = ends - counts
    pos = torch.arange(length, device=counts.device)
    block_ids = (pos[None, None, :] >= ends[:, :, None]).sum(1).clamp_(max=num_blocks - 1)
    lengths = ends[:, -1]
    valid = pos[None, :] < lengths[:, None]
    positions = torch.where(valid, pos[None, :] - starts.gather(1, block_ids), torch.zeros_like(block_ids))
    return PackedBlockLayout(block_ids, positions, valid, starts, lengths)

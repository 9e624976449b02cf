"""Exact scoring of every candidate assignment of a batch of clips with the block-causal prefix tree
(EVATok stage 2; ``research/evatok_impl.md`` Sec. 3).

Block-causal masks make block t's reconstruction depend only on the counts (k_1..k_t) of blocks <= t. So the
m^T assignments share a prefix tree of ``sum_t m^t`` nodes (780 for 5 levels x 4 blocks) instead of
``m^T * T`` block reconstructions (2500): :func:`score_assignments` walks it depth-first, all clips of the
batch in lockstep, with the tokenizer's prefix API (cached K/V of the committed blocks, so memory holds one
state per depth: O(T) per clip)::

    state = tokenizer.init_prefix_state(pixel_values)      # assignment-independent parts, once
    out, child = tokenizer.step_block(state, count)        # block t = state.num_blocks_done
    out.reconstruction  # (B, C, frames_per_block, H, W), unclamped; `state` stays valid for siblings

Quality per block: the per-frame metrics of the clamped reconstruction averaged over the block's frames
(MSE; SSIM; LPIPS when an :class:`~hf_vidtok.metrics.LPIPS` module is given). A clip's score for an
assignment is the mean over its blocks (= the per-frame mean over the clip); PSNR comes from the clip's mean
MSE. :func:`score_assignments_brute_force` (one full forward per assignment) is the reference.

The walk has no host synchronisation: counts are Python ints, node results go into one preallocated tensor,
and the m leaves of a depth-(T-1) node are scored in one metric call through a preallocated buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..metrics.image_quality import ssim as _ssim
from .assignments import ancestor_node_ids, candidate_assignments, normalize_levels, num_prefix_nodes

__all__ = ["AssignmentScores", "BlockQualityMetric", "score_assignments", "score_assignments_brute_force"]


class BlockQualityMetric:
    """Per-block quality of reconstructions: ``(recon (N, C, F, H, W), target (N, C, F, H, W)) -> (N, M)``.

    Columns ``names``: ``mse`` (mean squared error), ``ssim`` (per frame, averaged) and, when ``lpips`` (an
    :class:`hf_vidtok.metrics.LPIPS` on the right device) is given, ``lpips`` (per frame, averaged). The
    reconstruction is clamped to [0, 1] first (as evaluation does). Computed in float64 for float64 inputs,
    float32 otherwise.
    """

    def __init__(self, lpips: Optional[torch.nn.Module] = None):
        if lpips is not None and not isinstance(lpips, torch.nn.Module):
            raise TypeError(f"`lpips` must be an LPIPS module (hf_vidtok.metrics.LPIPS) or None, got {type(lpips).__name__}")
        self.lpips = lpips
        self.names = ("mse", "ssim") + (("lpips",) if lpips is not None else ())

    def __call__(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dtype = torch.float64 if target.dtype == torch.float64 else torch.float32
        x = reconstruction.to(dtype).clamp(0, 1)
        y = target.to(dtype)
        cols = [(x - y).pow(2).mean(dim=(1, 2, 3, 4)), _ssim(x, y, reduction="none", check_range=False).to(dtype)]
        if self.lpips is not None:
            cols.append(self.lpips(x, y).to(dtype))
        return torch.stack(cols, dim=-1)


@dataclass
class AssignmentScores:
    """Scores of every candidate assignment (class order of :mod:`hf_vidtok.evatok.assignments`).

    Args:
        block_values (`(B, A, T, M)`): per-block metrics, columns ``metric_names``.
        metric_names (`tuple[str]`): ``("mse", "ssim")`` or ``("mse", "ssim", "lpips")``.
        levels (`tuple[int]`), num_blocks (`int`): the candidate set.
        node_values (`(B, num_nodes, M)`, optional): per prefix-tree node (prefix-tree path only).
    """

    block_values: torch.Tensor
    metric_names: tuple
    levels: tuple
    num_blocks: int
    node_values: Optional[torch.Tensor] = None

    def clip_values(self, name: str) -> torch.Tensor:
        """(B, A) mean over blocks of metric ``name``."""
        if name not in self.metric_names:
            raise ValueError(f"`name` must be one of {self.metric_names}, got {name!r}")
        return self.block_values[..., self.metric_names.index(name)].mean(dim=-1)

    @property
    def mse(self) -> torch.Tensor:
        return self.clip_values("mse")

    @property
    def ssim(self) -> torch.Tensor:
        return self.clip_values("ssim")

    @property
    def lpips(self) -> Optional[torch.Tensor]:
        return self.clip_values("lpips") if "lpips" in self.metric_names else None

    @property
    def psnr(self) -> torch.Tensor:
        """(B, A) PSNR in dB from the clip's mean MSE (data range 1)."""
        return -10.0 * torch.log10(self.mse)


def _setup(tokenizer, pixel_values, levels, num_blocks, lpips, autocast_dtype):
    """Validate the inputs; returns (levels, num_blocks, frames per block, metric, metric dtype, autocast)."""
    if getattr(tokenizer, "training", False):
        raise ValueError("the tokenizer must be in eval mode (deterministic VQ, no dropout): call `.eval()`")
    config = getattr(tokenizer, "config", None)
    if levels is None:
        if config is None:
            raise ValueError("`levels` is required for a tokenizer without `config.token_levels`")
        levels = config.token_levels
    levels = normalize_levels(levels)
    if num_blocks is None:
        if config is None:
            raise ValueError("`num_blocks` is required for a tokenizer without `config.num_blocks`")
        num_blocks = int(config.num_blocks)
    if config is not None and not set(levels) <= set(getattr(config, "token_levels", levels)):
        raise ValueError(f"`levels` {levels} must be a subset of the tokenizer's token_levels {tuple(config.token_levels)}")
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 5:
        raise ValueError("`pixel_values` must be a (B, C, T, H, W) tensor in [0, 1]")
    if pixel_values.shape[2] % num_blocks:
        raise ValueError(f"`pixel_values` has {pixel_values.shape[2]} frames, not divisible into {num_blocks} blocks")
    mdtype = torch.float64 if pixel_values.dtype == torch.float64 else torch.float32
    autocast = torch.autocast(
        device_type=pixel_values.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
    )
    frames = pixel_values.shape[2] // num_blocks
    return levels, num_blocks, frames, BlockQualityMetric(lpips), mdtype, autocast


@torch.no_grad()
def score_assignments(
    tokenizer,
    pixel_values: torch.Tensor,
    lpips: Optional[torch.nn.Module] = None,
    levels: Optional[Sequence[int]] = None,
    num_blocks: Optional[int] = None,
    autocast_dtype: Optional[torch.dtype] = None,
) -> AssignmentScores:
    """Score all ``m^T`` assignments of ``pixel_values (B, C, T, H, W)`` in [0, 1] with the prefix tree.

    ``tokenizer``: an eval-mode model with ``init_prefix_state`` / ``step_block`` (``EvatokTokenizer``);
    ``levels`` (default ``tokenizer.config.token_levels``) may be a subset of the tokenizer's levels;
    ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the tokenizer under autocast, the metrics in float32.
    Exactly ``num_prefix_nodes(levels, T)`` ``step_block`` calls.
    """
    levels, num_blocks, frames, metric, mdtype, autocast = _setup(
        tokenizer, pixel_values, levels, num_blocks, lpips, autocast_dtype
    )
    m, b = len(levels), pixel_values.shape[0]
    device = pixel_values.device
    targets = [pixel_values[:, :, t * frames : (t + 1) * frames].to(mdtype) for t in range(num_blocks)]
    leaf_target = targets[-1].unsqueeze(0).expand(m, *targets[-1].shape).reshape(m * b, *targets[-1].shape[1:])
    offsets = [sum(m**e for e in range(1, d + 1)) for d in range(num_blocks)]  # first node id per depth
    node_values = torch.empty(b, num_prefix_nodes(levels, num_blocks), len(metric.names), dtype=mdtype, device=device)
    leaf_buffer: list = []  # allocated on the first leaf group, reused by all others

    def step(state, count):
        with autocast:
            return tokenizer.step_block(state, count)

    def walk(state, depth: int, prefix: int) -> None:
        first = offsets[depth] + prefix * m
        if depth == num_blocks - 1:  # leaves: no child state kept, the m siblings scored in one call
            for j, count in enumerate(levels):
                recon = step(state, count)[0].reconstruction
                if not leaf_buffer:
                    leaf_buffer.append(torch.empty((m, *recon.shape), dtype=recon.dtype, device=device))
                leaf_buffer[0][j].copy_(recon)
            values = metric(leaf_buffer[0].view(m * b, *leaf_buffer[0].shape[2:]), leaf_target)
            node_values[:, first : first + m] = values.view(m, b, -1).transpose(0, 1)
            return
        for j, count in enumerate(levels):
            out, child = step(state, count)
            node_values[:, first + j] = metric(out.reconstruction, targets[depth])
            del out
            walk(child, depth + 1, prefix * m + j)
            del child

    with autocast:
        root = tokenizer.init_prefix_state(pixel_values)
    walk(root, 0, 0)
    anc = ancestor_node_ids(levels, num_blocks).to(device)
    return AssignmentScores(
        block_values=node_values[:, anc],  # (B, A, T, M)
        metric_names=metric.names,
        levels=levels,
        num_blocks=num_blocks,
        node_values=node_values,
    )


@torch.no_grad()
def score_assignments_brute_force(
    tokenizer,
    pixel_values: torch.Tensor,
    lpips: Optional[torch.nn.Module] = None,
    levels: Optional[Sequence[int]] = None,
    num_blocks: Optional[int] = None,
    autocast_dtype: Optional[torch.dtype] = None,
) -> AssignmentScores:
    """Reference: one full ``tokenizer(pixel_values, assignment=a).reconstruction`` per assignment ``a``
    (``m^T`` forwards, ``m^T * T`` block reconstructions), same metrics as :func:`score_assignments`."""
    levels, num_blocks, frames, metric, mdtype, autocast = _setup(
        tokenizer, pixel_values, levels, num_blocks, lpips, autocast_dtype
    )
    b, c = pixel_values.shape[:2]

    def blocks(video):  # (B, C, T*F, H, W) -> (B*T, C, F, H, W), block-major within each clip
        v = video.reshape(b, c, num_blocks, frames, *video.shape[3:]).transpose(1, 2)
        return v.reshape(b * num_blocks, c, frames, *video.shape[3:])

    target = blocks(pixel_values.to(mdtype))
    assignments = candidate_assignments(levels, num_blocks)
    out = torch.empty(b, assignments.shape[0], num_blocks, len(metric.names), dtype=mdtype, device=pixel_values.device)
    for a, counts in enumerate(assignments.tolist()):
        with autocast:
            recon = tokenizer(pixel_values, assignment=counts).reconstruction
        out[:, a] = metric(blocks(recon), target).view(b, num_blocks, -1)
    return AssignmentScores(block_values=out, metric_names=metric.names, levels=levels, num_blocks=num_blocks)

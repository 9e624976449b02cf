"""Validation helpers of the training scripts: reconstruction metrics over held-out clips, sums reduced
over processes, and the side-by-side reconstruction video."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

__all__ = ["evaluate_reconstruction", "codebook_usage", "reduce_sums", "save_side_by_side_video"]


def reduce_sums(accelerator, sums: Mapping[str, float]) -> dict[str, float]:
    """Sum each value of ``sums`` over all processes (one ``accelerator.reduce`` of a float64 vector)."""
    names = list(sums)
    local = torch.tensor([float(sums[k]) for k in names], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(local, reduction="sum")
    return dict(zip(names, total.tolist()))


@torch.no_grad()
def evaluate_reconstruction(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    metrics: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    keep_first: int = 0,
    codebook_size: int | None = None,
) -> tuple[dict[str, float], tuple[torch.Tensor, torch.Tensor] | None]:
    """Reconstruct every clip of ``batches`` (tensors (B, C, T, H, W) in [0, 1]) with ``model`` in eval
    mode (deterministic VQ) and sum each ``metrics[name](recon_clamped, clip)`` (per-video values,
    shape (B,) or a scalar batch mean) over all clips; ``num_clips`` counts them. With ``codebook_size``
    the result also holds ``code_counts``, a ``(codebook_size,)`` tensor counting how often each code was
    selected (ids < 0, padding of variable-length tokens, are ignored; see :func:`codebook_usage`).
    Returns the sums and, when ``keep_first`` > 0, the first ``keep_first`` (clip, reconstruction) pairs
    for visualisation. Global RNG is untouched."""
    was_training = model.training
    model.eval()
    sums = {name: 0.0 for name in metrics}
    count = 0
    counts = None if codebook_size is None else torch.zeros(codebook_size, dtype=torch.long, device=device)
    kept_in, kept_out = [], []
    try:
        with torch.random.fork_rng(devices=[]):
            for clips in batches:
                clips = clips.to(device, non_blocking=True).float()
                with torch.autocast(
                    device_type=torch.device(device).type, dtype=autocast_dtype or torch.float32,
                    enabled=autocast_dtype is not None,
                ):
                    enc = model.encode(clips)
                    recon = model.decode_latents(enc.quantized) if hasattr(model, "decode_latents") else model.decode(enc.indices)
                recon = recon.float().clamp(0, 1)
                n = clips.shape[0]
                for name, fn in metrics.items():
                    value = fn(recon, clips).float()
                    sums[name] += value.sum().item() if value.dim() > 0 else value.item() * n
                if counts is not None:
                    ids = enc.indices.reshape(-1)
                    counts += torch.bincount(ids.clamp(min=0), weights=(ids >= 0).to(torch.float32),
                                             minlength=codebook_size).long()
                count += n
                if len(kept_in) < keep_first:
                    kept_in.append(clips.cpu())
                    kept_out.append(recon.cpu())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("validation got no clips (empty validation dataset)")
    results: dict = {**sums, "num_clips": count}
    if counts is not None:
        results["code_counts"] = counts
    pair = None
    if kept_in:
        pair = (torch.cat(kept_in)[:keep_first], torch.cat(kept_out)[:keep_first])
    return results, pair


def codebook_usage(code_counts: torch.Tensor) -> dict[str, float]:
    """``codebook_usage``: fraction of the codes selected at least once; ``codebook_perplexity``: ``exp`` of
    the entropy of the selection frequencies (K when all K codes are equally used, 1 when one code takes
    every token). A collapse of the tokenizer shows as both falling."""
    counts = code_counts.double()
    total = counts.sum().clamp_min(1.0)
    p = counts / total
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codebook_usage": (counts > 0).double().mean().item(), "codebook_perplexity": entropy.exp().item()}


def save_side_by_side_video(
    original: torch.Tensor, reconstruction: torch.Tensor, path: str, fps: int = 8, scale: int = 1
) -> str:
    """Write an mp4 whose frames show ``original`` (top) above ``reconstruction`` (bottom), clips side by
    side left to right. Inputs (B, C, T, H, W) in [0, 1]; ``scale`` repeats pixels for tiny clips."""
    from ..pipelines.video_export import export_to_video

    if original.shape != reconstruction.shape or original.dim() != 5:
        raise ValueError("`original` and `reconstruction` must be (B, C, T, H, W) of equal shape")
    rows = [torch.cat(list(video.float().clamp(0, 1)), dim=-1) for video in (original, reconstruction)]  # (C, T, H, B*W)
    grid = torch.cat(rows, dim=-2)  # (C, T, 2H, B*W)
    if scale > 1:
        grid = grid.repeat_interleave(scale, -1).repeat_interleave(scale, -2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.mp4"
    export_to_video(grid.permute(1, 2, 3, 0).cpu(), tmp, fps=fps, crf=12)  # (T, H, W, C), odd sizes padded
    os.replace(tmp, path)
    return path

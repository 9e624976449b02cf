"""Batching of decoded clips for training: ``collate_video_clips``."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from .transforms import VideoClipTransform

__all__ = ["collate_video_clips"]


def _label(value) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.item())
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return int(value.item())
    raise TypeError(f"label must be an int, got {type(value).__name__}")


def collate_video_clips(
    examples: Sequence[Mapping],
    *,
    resolution: Optional[int] = None,
    random_flip: bool = False,
    generator: Optional[torch.Generator] = None,
) -> dict:
    """Stack dataset examples into a training batch.

    Each example holds ``video`` (uint8 ``(T, H, W, 3)``, numpy or torch, e.g. from
    :func:`~hf_vidtok.data.load_video_dataset`) and optionally ``label`` (int; -1 when missing).
    Returns ``{"pixel_values": (B, C, T, H, W) float32 in [0, 1], "labels": (B,) long}``.
    ``resolution`` resizes + center-crops clips of other sizes first; ``random_flip`` flips each
    clip horizontally with probability 0.5 (the same flip for all its frames) using ``generator``.
    Use it as ``DataLoader(..., collate_fn=collate_video_clips)`` or wrap it with
    ``functools.partial`` to set the options.
    """
    if isinstance(examples, Mapping) or not isinstance(examples, Sequence) or len(examples) == 0:
        raise ValueError("examples must be a non-empty sequence of example dicts")
    transform = VideoClipTransform(resolution, random_flip=random_flip)
    clips, labels = [], []
    for i, ex in enumerate(examples):
        if not isinstance(ex, Mapping) or "video" not in ex:
            raise ValueError(f"examples[{i}] must be a dict with a 'video' entry")
        video = ex["video"]
        if isinstance(video, list):
            video = np.asarray(video, dtype=np.uint8)
        clips.append(transform(video, generator=generator))
        labels.append(_label(ex.get("label", -1)))
    shapes = {tuple(c.shape) for c in clips}
    if len(shapes) != 1:
        raise ValueError(f"clips differ in shape {sorted(shapes)}; pass resolution= to resize them")
    return {"pixel_values": torch.stack(clips), "labels": torch.tensor(labels, dtype=torch.long)}

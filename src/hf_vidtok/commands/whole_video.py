"""Whole videos of any length and size through a tokenizer, clip after clip (``hf-vidtok encode`` and
``reconstruct``).

A video is cut into consecutive clips of the tokenizer's ``num_frames`` (every ``frame_stride``-th frame)
from ``start`` to its last decodable frame; the last clip is padded by repeating the last frame, the rule of
:func:`hf_vidtok.data.read_video_clip` and the official LARP loader. Frames are fitted to the tokenizer's
``image_size`` by ``short_side_crop`` (short-side resize + center crop, as training reads clips) or
``stretch`` (resize both sides, aspect ratio not kept). The per-clip step only uses ``encode(pixel_values)``
-> ``.indices`` (and ``.token_counts`` when the tokenizer has variable-length output) and ``decode``, so any
hf_vidtok tokenizer works.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "RESIZE_MODES",
    "ClipTokens",
    "VideoClipPlan",
    "decode_clips",
    "encode_clips",
    "fit_frames",
    "iter_clip_batches",
    "model_clip_size",
    "plan_clips",
]

RESIZE_MODES = ("short_side_crop", "stretch")
# Source pixels decoded per read (bounds memory on large frames; small frames read whole batches at once).
_READ_BUDGET_BYTES = 256 * 2**20


def model_clip_size(config) -> tuple[int, int, int]:
    """``(num_frames, height, width)`` of the clips a tokenizer reads (``image_size`` is an int or (H, W))."""
    size = config.image_size
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return int(config.num_frames), int(height), int(width)


def fit_frames(frames: np.ndarray, height: int, width: int, resize: str = "short_side_crop") -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> float ``(C, T, height, width)`` in [0, 1]. ``short_side_crop`` resizes the
    shorter side (antialiased bilinear, in uint8 as :class:`~hf_vidtok.data.VideoClipTransform`) so both
    sides cover the target, then center-crops; ``stretch`` resizes to ``height x width``."""
    from hf_vidtok.data import resize_crop_uint8, to_float_clip

    if resize not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}, got {resize!r}")
    if resize == "short_side_crop" and height == width:
        return to_float_clip(resize_crop_uint8(frames, height))
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
    h, w = video.shape[-2:]
    if resize == "stretch":
        size = (height, width)
    else:
        scale = max(height / h, width / w)
        size = (max(height, int(h * scale)), max(width, int(w * scale)))
    if size != (h, w):
        video = F.interpolate(video, size=size, mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((size[0] - height) / 2.0)), int(round((size[1] - width) / 2.0))
    video = video[..., top : top + height, left : left + width]
    return video.permute(1, 0, 2, 3).float().div_(255.0)


@dataclass(frozen=True)
class VideoClipPlan:
    """Consecutive clips over a whole video: clip ``i`` reads source frames ``starts[i] + k * frame_stride``
    (``k < num_frames``, clipped to the last frame); ``valid[i]`` of them are real (not padding).
    ``fps`` is the source frame rate, ``num_source_frames`` the frames that decode."""

    path: str
    num_frames: int
    frame_stride: int
    starts: tuple[int, ...]
    valid: tuple[int, ...]
    fps: float
    num_source_frames: int

    @property
    def num_clips(self) -> int:
        return len(self.starts)

    @property
    def num_output_frames(self) -> int:
        """Frames of the whole (strided) video: the clips' real frames."""
        return int(sum(self.valid))

    @property
    def duration(self) -> float:
        """Seconds of source video the clips cover."""
        first = self.starts[0]
        return (self.num_source_frames - first) / self.fps

    def start_times(self) -> np.ndarray:
        """Start time of every clip in seconds (relative to the first decodable frame)."""
        return np.asarray(self.starts, dtype=np.float64) / self.fps


def plan_clips(path, num_frames: int, frame_stride: int = 1, start: int = 0) -> VideoClipPlan:
    """Probe ``path`` (what decodes, not the header) and lay consecutive clips over it from ``start``."""
    from hf_vidtok.data import probe_video

    index = probe_video(path)
    n = index.num_frames
    if not 0 <= start < n:
        raise ValueError(f"`start` ({start}) must be a frame index of {path}, which has {n} decodable frames")
    times = index.frame_times()
    fps = (n - 1) / float(times[-1] - times[0]) if n > 1 and times[-1] > times[0] else float(index.frame_rate)
    step = num_frames * frame_stride
    starts = tuple(range(start, n, step))
    valid = tuple(min(num_frames, -(-(n - s) // frame_stride)) for s in starts)
    return VideoClipPlan(str(path), num_frames, frame_stride, starts, valid, fps, n)


def iter_clip_batches(
    plan: VideoClipPlan, height: int, width: int, *, batch_size: int, resize: str = "short_side_crop"
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield ``(clip numbers, pixel_values (b, C, num_frames, height, width))`` for batches of at most
    ``batch_size`` consecutive clips of ``plan``, in order. Frames are decoded with
    :class:`hf_vidtok.data.VideoFile` (frame-exact; one seek per read of several clips)."""
    from hf_vidtok.data import VideoFile

    with VideoFile(plan.path) as video:
        frame_bytes = max(1, 3 * video.index.width * video.index.height)
        per_read = max(1, min(batch_size, _READ_BUDGET_BYTES // (frame_bytes * plan.num_frames)))
        offsets = np.arange(plan.num_frames, dtype=np.int64) * plan.frame_stride
        for first in range(0, plan.num_clips, batch_size):
            numbers = list(range(first, min(first + batch_size, plan.num_clips)))
            clips = []
            for i in range(0, len(numbers), per_read):
                part = numbers[i : i + per_read]
                starts = np.asarray([plan.starts[c] for c in part], dtype=np.int64)
                idx = np.minimum(starts[:, None] + offsets, plan.num_source_frames - 1)  # pad: repeat the last
                frames = video.read_frames(idx.reshape(-1))
                frames = frames.reshape(len(part), plan.num_frames, *frames.shape[1:])
                clips += [fit_frames(f, height, width, resize) for f in frames]
            yield numbers, torch.stack(clips)


@dataclass
class ClipTokens:
    """Token ids of a batch of clips: ``indices (B, L)`` long (``-1`` pads variable-length outputs) and, for
    tokenizers with variable-length output, ``token_counts (B, num_blocks)`` (else None)."""

    indices: torch.Tensor
    token_counts: torch.Tensor | None = None

    def lengths(self) -> torch.Tensor:
        """Tokens of every clip ``(B,)``."""
        if self.token_counts is not None:
            return self.token_counts.sum(dim=1)
        return torch.full((self.indices.shape[0],), self.indices.shape[1], dtype=torch.long)


def encode_clips(tokenizer, pixel_values: torch.Tensor, selection: dict | None = None) -> ClipTokens:
    """``tokenizer.encode(pixel_values)`` -> :class:`ClipTokens` (with ``token_counts`` when the output has them).
    ``selection``: token-budget arguments for an EVATok tokenizer's router (``encode(..., **selection)``)."""
    out = tokenizer.encode(pixel_values, **selection) if selection else tokenizer.encode(pixel_values)
    counts = getattr(out, "token_counts", None)
    return ClipTokens(out.indices.long(), None if counts is None else counts.long())


def decode_clips(tokenizer, tokens: ClipTokens) -> torch.Tensor:
    """Video ``(B, C, T, H, W)`` in [0, 1] from :class:`ClipTokens` (``decode(indices[, token_counts])``)."""
    if tokens.token_counts is None:
        video = tokenizer.decode(tokens.indices)
    else:
        video = tokenizer.decode(tokens.indices, tokens.token_counts)
    return video.clamp(0, 1).float()

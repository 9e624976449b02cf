"""Write frames to a video file with PyAV (H.264 mp4 by default)."""

from __future__ import annotations

import os
import tempfile

import numpy as np

__all__ = ["export_to_video"]


def _as_uint8_frames(frames) -> np.ndarray:
    if hasattr(frames, "detach"):  # torch tensor (T, H, W, C) or (T, C, H, W)
        frames = frames.detach().float().cpu().numpy()
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("`frames` is empty")
        frames = np.stack([np.asarray(f) for f in frames])
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"`frames` must be (T, H, W, C) (or a list of (H, W, C) frames), got shape {frames.shape}")
    if frames.shape[-1] not in (1, 3) and frames.shape[1] in (1, 3):
        frames = frames.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    if frames.shape[-1] != 3:
        raise ValueError(f"`frames` must have 1 or 3 channels, got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return frames
    if not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(f"`frames` must be uint8 in [0, 255] or float in [0, 1], got dtype {frames.dtype}")
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def export_to_video(frames, output_video_path: str | None = None, fps: float = 8, codec: str = "libx264", crf: int = 18) -> str:
    """Encode ``frames`` (``(T, H, W, C)`` uint8 or float in [0, 1], a list of such frames or of
    ``PIL.Image``, or a ``(T, C, H, W)`` tensor) to ``output_video_path`` (a temporary ``.mp4`` when
    None) and return the path. Odd sizes are padded by edge replication (H.264 4:2:0 needs even sizes)."""
    import av
    from fractions import Fraction

    data = _as_uint8_frames(frames)
    if fps <= 0:
        raise ValueError(f"`fps` must be positive, got {fps}")
    t, h, w, _ = data.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    if output_video_path is None:
        output_video_path = tempfile.NamedTemporaryFile(suffix=".mp4", delete=False).name
    os.makedirs(os.path.dirname(os.path.abspath(output_video_path)), exist_ok=True)
    with av.open(output_video_path, mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = data.shape[2], data.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf)}
        for frame in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return output_video_path

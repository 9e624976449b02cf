"""PSNR / SSIM / LPIPS / FVD between a folder of real and a folder of generated videos.

From the command line: ``hf-vidtok evaluate --real DIR --generated DIR --num_frames 16 --resolution 128
--lpips_weights PATH_OR_REPO --i3d_weights PATH_OR_REPO [--output results.json]``.

Every video is read with :func:`hf_vidtok.data.read_video_clip` (``num_frames`` frames from
``start``, default 0, every ``frame_stride``-th frame; short videos repeat their last frame),
optionally short-side resized and center-cropped to ``resolution``, and scaled to ``[0, 1]``.
PSNR, SSIM and LPIPS compare videos **paired by relative path without extension** (so
``a/b.mp4`` matches ``a/b.avi``) and average per video as LARP's evaluator; FVD uses every
video of each folder. Files that cannot be decoded are skipped and listed. The result is one
dict (``hf-vidtok evaluate`` prints it as JSON).
"""

from __future__ import annotations

import logging
import os

import torch

from .fvd import FVD
from .image_quality import psnr, ssim
from .lpips_vgg import LPIPS

__all__ = ["list_video_files", "load_clip", "evaluate_folders", "main"]

logger = logging.getLogger("hf_vidtok.metrics")
_METRICS = ("psnr", "ssim", "lpips", "fvd")


def list_video_files(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path without extension: path}`` of every video file under ``folder``."""
    from ..data.video_reader import VIDEO_EXTENSIONS

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"video folder {folder!r} does not exist")
    out = {}
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                path = os.path.join(root, name)
                key = os.path.splitext(os.path.relpath(path, folder))[0]
                if key in out:
                    raise ValueError(f"two videos share the name {key!r} in {folder!r}: {out[key]} and {path}")
                out[key] = path
    return dict(sorted(out.items()))


def load_clip(path: str, num_frames: int, resolution: int | None = None, frame_stride: int = 1, start: int = 0) -> torch.Tensor:
    """Decode one clip as float ``(3, T, H, W)`` in ``[0, 1]`` (see the module docstring)."""
    from ..data.transforms import resize_crop_uint8, to_float_clip
    from ..data.video_reader import read_video_clip

    frames = read_video_clip(path, num_frames, frame_stride=frame_stride, start=start)
    if resolution is not None:
        frames = resize_crop_uint8(frames, resolution)
    return to_float_clip(frames)


def _batches(items, batch_size):
    for i in range(0, len(items), batch_size):
        yield items[i : i + batch_size]


def evaluate_folders(
    real_dir: str | os.PathLike,
    generated_dir: str | os.PathLike,
    metrics=_METRICS,
    num_frames: int = 16,
    resolution: int | None = None,
    frame_stride: int = 1,
    start: int = 0,
    batch_size: int = 8,
    lpips: LPIPS | None = None,
    fvd: FVD | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Compute the requested ``metrics``; ``lpips`` / ``fvd`` models are needed for those two."""
    from ..data.video_reader import BrokenVideoError

    metrics = tuple(metrics)
    unknown = sorted(set(metrics) - set(_METRICS))
    if unknown or not metrics:
        raise ValueError(f"`metrics` must be a non-empty subset of {list(_METRICS)}, got {list(metrics)}")
    if "lpips" in metrics and lpips is None:
        raise ValueError("the 'lpips' metric needs LPIPS weights (--lpips-weights / `lpips=`)")
    if "fvd" in metrics and fvd is None:
        raise ValueError("the 'fvd' metric needs I3D weights (--i3d-weights / `fvd=`)")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    real, generated = list_video_files(real_dir), list_video_files(generated_dir)
    result: dict = {"num_real": len(real), "num_generated": len(generated), "skipped": []}
    device = torch.device(device)
    if lpips is not None:
        lpips = lpips.to(device)
    if fvd is not None:
        fvd = fvd.to(device)
        fvd.reset()

    def load(path):
        try:
            return load_clip(path, num_frames, resolution, frame_stride, start)
        except BrokenVideoError as e:
            logger.warning("skipping %s: %s", path, e)
            result["skipped"].append(path)
            return None

    paired = [m for m in metrics if m != "fvd"]
    sums = {m: 0.0 for m in paired}
    num_pairs = 0
    if paired:
        keys = sorted(set(real) & set(generated))
        if not keys:
            raise ValueError(f"no video names are common to {real_dir!r} and {generated_dir!r}; paired metrics need them")
        for chunk in _batches(keys, batch_size):
            pairs = [(load(real[k]), load(generated[k])) for k in chunk]
            pairs = [(r, g) for r, g in pairs if r is not None and g is not None]
            if not pairs:
                continue
            r = torch.stack([p[0] for p in pairs]).to(device)
            g = torch.stack([p[1] for p in pairs]).to(device)
            if r.shape != g.shape:
                raise ValueError(f"real and generated clips differ in size ({tuple(r.shape)} vs {tuple(g.shape)}); pass --resolution")
            with torch.no_grad():
                if "psnr" in sums:
                    sums["psnr"] += float(psnr(g, r, reduction="none").sum())
                if "ssim" in sums:
                    sums["ssim"] += float(ssim(g, r, reduction="none").sum())
                if "lpips" in sums:
                    sums["lpips"] += float(lpips(g, r).double().sum())
            num_pairs += len(pairs)
            if "fvd" in metrics:  # reuse the decoded clips of the pairs
                fvd.update(r, real=True)
                fvd.update(g, real=False)
        result["num_pairs"] = num_pairs
        for m in paired:
            result[m] = sums[m] / num_pairs if num_pairs else float("nan")
    if "fvd" in metrics:
        done = set(real) & set(generated) if paired else set()
        for source, is_real in ((real, True), (generated, False)):
            rest = [source[k] for k in source if k not in done]
            for chunk in _batches(rest, batch_size):
                clips = [c for c in (load(p) for p in chunk) if c is not None]
                if clips:
                    fvd.update(torch.stack(clips).to(device), real=is_real)
        result["fvd"] = fvd.compute()
    return result

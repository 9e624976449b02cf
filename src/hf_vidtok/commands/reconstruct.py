"""``hf-vidtok reconstruct``: video -> reconstructed mp4 + PSNR / SSIM."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import add_model_arguments, check_files, export_video, load_model, non_negative_int, positive_int
from .encode import clip_shape, read_clip

__all__ = ["register", "run"]


def register(sub) -> None:
    p = sub.add_parser("reconstruct", help="encode + decode a video; write the mp4 and print PSNR/SSIM")
    p.add_argument("video", help="video file")
    p.add_argument("--model", required=True, help="tokenizer folder, pipeline folder or Hub repo id")
    p.add_argument("--output", required=True, help="output .mp4")
    p.add_argument("--frame_stride", type=positive_int, default=1)
    p.add_argument("--start", type=non_negative_int, default=0, help="first frame of the clip")
    p.add_argument("--side_by_side", action="store_true", help="write input | reconstruction side by side")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: the clip's)")
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hf_vidtok.metrics import psnr, ssim

    (video,) = check_files([args.video])
    tokenizer = load_model(args.model, "tokenizer", args.revision, args.device)
    num_frames, resolution = clip_shape(tokenizer.config)
    clip, seconds = read_clip(video, num_frames, resolution, args.frame_stride, args.start)
    target = clip.unsqueeze(0).to(args.device)
    with torch.no_grad():
        indices = tokenizer.encode(target).indices
        recon = tokenizer.decode(indices).clamp(0, 1).float()
    result = {
        "output": None,
        "psnr": float(psnr(recon.cpu(), target.cpu())),
        "ssim": float(ssim(recon.cpu(), target.cpu())),
        "tokens": int(indices.shape[1]),
    }
    frames = recon[0].permute(1, 2, 3, 0).cpu()  # (T, H, W, C)
    if args.side_by_side:
        frames = torch.cat([target[0].permute(1, 2, 3, 0).cpu(), frames], dim=2)
    fps = args.fps or (num_frames / seconds if seconds and seconds > 0 else 8.0)
    result["output"] = export_video(frames.numpy(), Path(args.output), fps)
    return result

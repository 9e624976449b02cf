"""``hf-vidtok evaluate``: two folders of videos (paired by file name) -> PSNR / SSIM / LPIPS / FVD."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import CLIError, add_command, non_negative_int, positive_int

__all__ = ["register", "run"]


def register(sub) -> None:
    p = add_command(sub, "evaluate", "metrics between two folders of videos (paired by file name)")
    p.add_argument("--real", required=True, help="folder of reference videos")
    p.add_argument("--generated", required=True, help="folder of reconstructed / generated videos")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        choices=("psnr", "ssim", "lpips", "fvd"),
        help="default: psnr ssim, plus lpips / fvd when their weights are given",
    )
    p.add_argument("--num_frames", type=positive_int, default=16, help="frames per clip")
    p.add_argument("--frame_stride", type=positive_int, default=1, help="take every n-th frame")
    p.add_argument("--start", type=non_negative_int, default=0, help="first frame of every clip")
    p.add_argument("--resolution", type=positive_int, default=None, help="short-side resize + center crop")
    p.add_argument("--batch_size", type=positive_int, default=8, help="clips per metric call")
    p.add_argument("--lpips_weights", default=None, help="LPIPS safetensors file, folder or Hub repo")
    p.add_argument("--i3d_weights", default=None, help="I3D safetensors file, folder or Hub repo (FVD)")
    p.add_argument("--output", default=None, help="also write the results to this JSON file")
    p.add_argument("--device", default="cpu", help="torch device")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hf_vidtok.metrics import FVD, LPIPS
    from hf_vidtok.metrics.evaluate_folders import evaluate_folders

    for name in ("real", "generated"):
        if not Path(getattr(args, name)).is_dir():
            raise CLIError(f"--{name}: no such folder: {getattr(args, name)}")
    metrics = args.metrics
    if metrics is None:  # PSNR and SSIM always; LPIPS / FVD when their weights are given
        metrics = ["psnr", "ssim"] + ["lpips"] * bool(args.lpips_weights) + ["fvd"] * bool(args.i3d_weights)
    if "lpips" in metrics and not args.lpips_weights:
        raise CLIError("the lpips metric needs --lpips_weights (an hf_vidtok LPIPS safetensors file or Hub repo)")
    if "fvd" in metrics and not args.i3d_weights:
        raise CLIError("the fvd metric needs --i3d_weights (an hf_vidtok I3D safetensors file or Hub repo)")
    results = evaluate_folders(
        args.real,
        args.generated,
        metrics,
        num_frames=args.num_frames,
        resolution=args.resolution,
        frame_stride=args.frame_stride,
        start=args.start,
        batch_size=args.batch_size,
        lpips=LPIPS.from_pretrained(args.lpips_weights) if "lpips" in metrics else None,
        fvd=FVD.from_pretrained(args.i3d_weights) if "fvd" in metrics else None,
        device=args.device,
    )
    results = dict(results)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    return results

"""``hf-vidtok reconstruct``: a whole video -> its reconstruction (mp4 at the source frame rate) + PSNR / SSIM
over all of it and the token count per second."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    VIDEO_SUFFIXES,
    add_command,
    check_files,
    check_output,
    export_video,
    load_model,
    positive_float,
    set_threads,
)
from .encode import add_clip_arguments, check_selection, progress_bar, selection_arguments
from .whole_video import decode_clips, encode_clips, iter_clip_batches, model_clip_size, plan_clips

__all__ = ["register", "run"]


def register(sub) -> None:
    p = add_command(sub, "reconstruct", "encode + decode a whole video; write the mp4 and print PSNR/SSIM")
    p.add_argument("video", help="video file")
    p.add_argument("--output", required=True, help=f"output video ({', '.join(VIDEO_SUFFIXES)}); never the input")
    p.add_argument("--side_by_side", action="store_true", help="write input | reconstruction side by side")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="output frame rate (default: the source's frame rate / --frame_stride)")
    add_clip_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """PSNR is ``-10 log10`` of the MSE over every frame of the (fitted) video, SSIM the mean over its frames;
    padding frames of the last clip are left out of the metrics and of the written video."""
    import numpy as np
    import torch

    from hf_vidtok.metrics import ssim

    (video,) = check_files([args.video])
    output = check_output(args.output, [video], suffixes=VIDEO_SUFFIXES)
    tokenizer = load_model(args.model, "tokenizer", args.revision, args.device)
    set_threads(args, tokenizer)
    selection = selection_arguments(args)
    check_selection(tokenizer, selection, args.model)
    num_frames, height, width = model_clip_size(tokenizer.config)
    plan = plan_clips(video, num_frames, args.frame_stride, args.start)
    assignments = []  # tokens per block of every clip (variable-length tokenizers)
    squared_error, ssim_sum, num_tokens = 0.0, 0.0, 0
    written = []  # uint8 (T, H, W', 3) pieces of the output video
    disable = args.no_progress or plan.num_clips <= args.batch_size
    with torch.no_grad(), progress_bar(plan.num_clips, disable, "reconstruct") as bar:
        for numbers, target in iter_clip_batches(plan, height, width, batch_size=args.batch_size, resize=args.resize):
            tokens = encode_clips(tokenizer, target.to(args.device), selection)
            if tokens.token_counts is not None:
                assignments += tokens.token_counts.cpu().tolist()
            recon = decode_clips(tokenizer, tokens).cpu()
            num_tokens += int(tokens.lengths().sum())
            for clip, real, n in zip(recon, target, (plan.valid[c] for c in numbers)):
                clip, real = clip[:, :n], real[:, :n]  # (C, n, H, W): drop the padding frames
                squared_error += float((clip.double() - real.double()).pow(2).sum())
                ssim_sum += float(ssim(clip[None], real[None], check_range=False)) * n
                frames = torch.cat([real, clip], dim=-1) if args.side_by_side else clip
                written.append((frames.permute(1, 2, 3, 0) * 255).round().to(torch.uint8).numpy())
            bar.update(len(numbers))
    frames_out = plan.num_output_frames
    mse = squared_error / (frames_out * 3 * height * width)
    fps = args.fps if args.fps is not None else plan.fps / args.frame_stride
    output = export_video(np.concatenate(written), output, fps)
    return {
        "output": output,
        "frames": frames_out,
        "fps": round(fps, 6),
        "seconds": round(frames_out / fps, 6),
        "clips": plan.num_clips,
        "psnr": float(-10.0 * np.log10(mse)) if mse > 0 else float("inf"),
        "ssim": ssim_sum / frames_out,
        "tokens": num_tokens,
        "tokens_per_second": round(num_tokens / plan.duration, 3),
        **({"assignments": assignments} if assignments else {}),
    }

"""``hf-vidtok encode``: video file(s) -> token ids (safetensors) and tokens per second."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .common import CLIError, add_model_arguments, check_files, load_model, non_negative_int, positive_int

__all__ = ["clip_shape", "read_clip", "register", "run"]


def register(sub) -> None:
    p = sub.add_parser("encode", help="encode video file(s) to token ids (safetensors)")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--model", required=True, help="tokenizer folder, pipeline folder or Hub repo id")
    p.add_argument("--output", required=True, help="output .safetensors file (tensor 'indices' (videos, N))")
    p.add_argument("--num_frames", type=int, default=None, help="frames per clip (must match the tokenizer)")
    p.add_argument("--frame_stride", type=positive_int, default=1, help="take every n-th frame")
    p.add_argument("--start", type=non_negative_int, default=0, help="first frame of the clip")
    p.add_argument("--batch_size", type=positive_int, default=8)
    add_model_arguments(p)
    p.set_defaults(func=run)


def clip_shape(config) -> tuple[int, int]:
    """(frames per clip, square frame size) a tokenizer reads, from its config."""
    return int(config.num_frames), int(config.image_size)


def read_clip(path: Path, num_frames: int, resolution: int, frame_stride: int, start: int):
    """(float clip (C, T, H, W) in [0, 1], clip duration in seconds)."""
    from hf_vidtok.data import VideoClipTransform, probe_video, read_video_clip

    frames = read_video_clip(path, num_frames, frame_stride=frame_stride, start=start)
    index = probe_video(path)
    times = index.frame_times()
    frame_period = float(times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0 / index.frame_rate
    seconds = num_frames * frame_stride * frame_period if frame_period > 0 else float("nan")
    return VideoClipTransform(resolution)(frames), seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    videos = check_files(args.videos)
    tokenizer = load_model(args.model, "tokenizer", args.revision, args.device)
    num_frames, resolution = clip_shape(tokenizer.config)
    if args.num_frames is not None and args.num_frames != num_frames:
        raise CLIError(f"--num_frames {args.num_frames} does not match the tokenizer's {num_frames} frames per clip")
    clips, seconds = [], []
    for path in videos:
        clip, duration = read_clip(path, num_frames, resolution, args.frame_stride, args.start)
        clips.append(clip)
        seconds.append(duration)
    indices = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(clips), args.batch_size):
            batch = torch.stack(clips[i : i + args.batch_size]).to(args.device)
            indices.append(tokenizer.encode(batch).indices.cpu())
    elapsed = time.perf_counter() - start
    ids = torch.cat(indices).to(torch.long).contiguous()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "paths": json.dumps([str(p) for p in videos]),
        "model": args.model,
        "num_frames": str(num_frames),
        "resolution": str(resolution),
        "frame_stride": str(args.frame_stride),
        "start": str(args.start),
        "clip_seconds": json.dumps(seconds),
    }
    save_file({"indices": ids}, str(output), metadata=metadata)
    tokens_per_clip = int(ids.shape[1])
    mean_seconds = sum(seconds) / len(seconds)
    return {
        "output": str(output),
        "videos": len(videos),
        "tokens_per_clip": tokens_per_clip,
        "clip_seconds": round(mean_seconds, 6),
        "tokens_per_second": round(tokens_per_clip / mean_seconds, 3) if mean_seconds > 0 else float("nan"),
        "encode_tokens_per_s": round(ids.numel() / elapsed, 1) if elapsed > 0 else float("inf"),
    }

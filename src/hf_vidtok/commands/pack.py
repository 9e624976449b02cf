"""``hf-vidtok pack``: a local (or remote) folder / CSV of video files -> webdataset or Parquet shards with a dataset
card, optionally pushed to the Hub as a dataset repo (``hf_vidtok.data.pack_videos`` +
``hf_vidtok.hub.video_dataset_card`` / ``publish_dataset_folder``).

    hf-vidtok pack data/webvid --layout folder --format webdataset --max_shard_size 500MB --output_dir shards/webvid
    hf-vidtok pack data/webvid/train.csv --layout csv --format parquet --output_dir shards/webvid \\
        --push_to_hub --repo_id you/webvid-shards

Prints one JSON object: the output folder, per split the videos, shards, bytes, frames and durations, the codecs,
the skipped files (path -> reason) and, with ``--push_to_hub``, the commit.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .common import CLIError, add_command, positive_int

__all__ = ["register", "run"]


def register(sub) -> None:
    p = add_command(sub, "pack", help="pack video files into webdataset / Parquet shards (+ dataset card, Hub upload)")
    p.add_argument("data_dir", help="videos: folder, UCF-101 root or CSV (local, Hub dataset repo or fsspec URL)")
    p.add_argument("--output_dir", required=True, help="new (or empty) folder for data/<split>-*.tar|parquet + README.md")
    p.add_argument("--format", choices=("webdataset", "parquet"), default="webdataset", help="shard format")
    p.add_argument("--layout", choices=("folder", "ucf101", "csv"), default="folder", help="layout of data_dir")
    p.add_argument("--split", action="append", default=None,
                   help="split to pack (repeat for several; default: every split data_dir has)")
    p.add_argument("--max_shard_size", default="500MB", help="bytes per shard: an int or e.g. 100MB, 1GiB")
    p.add_argument("--max_videos_per_shard", type=positive_int, default=None, help="videos per shard at most")
    p.add_argument("--video_root", default=None, help="base of the CSV's relative paths (csv layout)")
    p.add_argument("--push_to_hub", action="store_true", help="upload the folder as a Hub dataset repo")
    p.add_argument("--repo_id", default=None, help="user/name of the dataset repo (with --push_to_hub)")
    p.add_argument("--private", action="store_true", help="make the dataset repo private (with --push_to_hub)")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / the stored login)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hf_vidtok.data import pack_videos
    from hf_vidtok.hub import publish_dataset_folder, video_dataset_card

    if args.push_to_hub and not args.repo_id:
        raise CLIError("--push_to_hub needs --repo_id user/name")
    if args.repo_id and not args.push_to_hub:
        raise CLIError("--repo_id is only used with --push_to_hub")
    summary = pack_videos(
        args.data_dir, args.output_dir, format=args.format, layout=args.layout, splits=args.split,
        max_shard_size=args.max_shard_size, max_videos_per_shard=args.max_videos_per_shard, video_root=args.video_root,
    )
    out = os.path.abspath(args.output_dir)
    card = video_dataset_card(summary, args.repo_id if args.push_to_hub else out)
    card.save(os.path.join(out, "README.md"))
    result = {
        "output_dir": out,
        "format": summary["format"],
        "splits": {name: {k: v for k, v in s.items() if k != "files"} for name, s in summary["splits"].items()},
        "class_names": summary["class_names"],
        "skipped": len(summary["skipped"]),
        "skipped_files": summary["skipped"],
    }
    if args.push_to_hub:
        info = publish_dataset_folder(out, args.repo_id, private=args.private or None, token=args.token,
                                      commit_message=f"Upload {summary['format']} shards with hf-vidtok pack")
        result.update(repo_id=args.repo_id, commit=info.oid, url=str(info.commit_url))
    return result

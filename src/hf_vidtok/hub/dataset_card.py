"""Dataset cards of packed video shards (``hf-vidtok pack``) and uploading a dataset folder (huggingface_hub only).

:func:`video_dataset_card` turns the summary of :func:`hf_vidtok.data.pack_videos` into a
``huggingface_hub.DatasetCard``: YAML with ``configs`` (the shard files of each split, so ``datasets.load_dataset``
finds them), ``size_categories``, tags, an ``hf_vidtok`` entry (layout and class names, which
``hf_vidtok.data.load_video_dataset`` reads) and, for Parquet, the ``dataset_info`` features; a body with the
counts, sizes, durations and codecs per split, the classes and every skipped file with its reason.
:func:`publish_dataset_folder` uploads a folder as a Hub dataset repo in one commit.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from .publishing import check_repo_id

__all__ = ["publish_dataset_folder", "video_dataset_card"]

_SKIPPED_SHOWN = 50

_TEMPLATE = """---
{card_data}
---

# {title}

Video files packed by [hf_vidtok](https://github.com/) (`hf-vidtok pack`) from `{source}` ({layout} layout) into
{format} shards of at most {max_shard_size}: every video's bytes unchanged, stored with its dataset key (its path
relative to the packed folder or CSV){label_note}.

| split | videos | shards | size | frames | duration total | min / mean / max per video |
|---|---|---|---|---|---|---|
{split_rows}

Codecs: {codecs}.

{classes_line}

Skipped files (nothing decodes): {num_skipped}.
{skipped_list}
## Use

```python
from hf_vidtok.data import load_video_dataset
clips = load_video_dataset("{repo_or_path}", layout="{format}", split="{first_split}", num_frames=16, resolution=128,
                           streaming=True)
```

The shards stream to every process and DataLoader worker without a full download (one shard per worker at a time);
the same seed gives exactly the clips of the original files. Training scripts take
`--train_data_dir {repo_or_path} --dataset_layout {format}`.
"""


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _size_category(n: int) -> str:
    for limit, name in ((1000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def video_dataset_card(summary: Mapping[str, Any], repo_or_path: str, *, title: str | None = None) -> DatasetCard:
    """The card of a packed dataset (``summary``: what :func:`hf_vidtok.data.pack_videos` returns); ``repo_or_path``
    is what the usage example loads (the Hub repo id, or the local folder)."""
    fmt, splits = summary["format"], summary["splits"]
    ext = "tar" if fmt == "webdataset" else "parquet"
    class_names = list(summary.get("class_names") or [])
    total = sum(s["videos"] for s in splits.values())
    data = DatasetCardData(
        pretty_name=title or f"Video clips ({fmt} shards)",
        size_categories=_size_category(total),
        task_categories=["video-classification"] if class_names else None,
        tags=["video", "hf_vidtok", fmt],
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f"data/{s}-*.{ext}"} for s in splits if splits[s]["shards"]]}],
        hf_vidtok={"layout": fmt, "class_names": class_names, "num_videos": total},
        **({"dataset_info": summary["dataset_info"]} if summary.get("dataset_info") else {}),
    )
    rows = []
    codecs: dict = {}
    for name, s in splits.items():
        d = s["duration_s"]
        rows.append(f"| {name} | {s['videos']} | {s['shards']} | {_size(s['bytes'])} | {s['frames']} | "
                    f"{d['total']:.1f} s | {d['min']:.2f} / {d['mean']:.2f} / {d['max']:.2f} s |")
        for codec, n in s["codecs"].items():
            codecs[codec] = codecs.get(codec, 0) + n
    skipped = list((summary.get("skipped") or {}).items())
    skipped_list = "".join(f"- `{path}`: {reason}\n" for path, reason in skipped[:_SKIPPED_SHOWN])
    if len(skipped) > _SKIPPED_SHOWN:
        skipped_list += f"- ... and {len(skipped) - _SKIPPED_SHOWN} more\n"
    if class_names:
        counts: dict = {}
        for s in splits.values():
            for c, n in s["classes"].items():
                counts[c] = counts.get(c, 0) + n
        classes_line = f"Classes ({len(class_names)}, videos each): " + ", ".join(
            f"{c} ({counts.get(c, 0)})" for c in class_names) + "."
    else:
        classes_line = "No class labels."
    text = _TEMPLATE.format(
        card_data=data.to_yaml(), title=title or f"Video dataset ({fmt} shards)", source=summary["source"],
        layout=summary["layout"], format=fmt, max_shard_size=_size(int(summary["max_shard_size"])),
        label_note=", label (`.cls` / `.json`) and caption" if fmt == "webdataset" else
        " in the `key` column, the video in `video` (a `datasets.Video` struct), `label` and `caption`",
        split_rows="\n".join(rows), codecs=", ".join(f"{c} ({n})" for c, n in sorted(codecs.items())) or "none",
        classes_line=classes_line, num_skipped=len(skipped), skipped_list=skipped_list,
        repo_or_path=repo_or_path, first_split=next(iter(splits), "train"),
    )
    return DatasetCard(text)


def publish_dataset_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str = "Upload dataset with hf_vidtok",
    allow_patterns: Iterable[str] | None = None,
):
    """Upload ``folder`` (only ``allow_patterns`` when given) as the Hub dataset repo ``repo_id`` (created when
    missing) in one commit; returns the ``CommitInfo``."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no such folder: {folder}")
    api = HfApi(token=token)
    repo_id = api.create_repo(check_repo_id(repo_id), repo_type="dataset", private=private, exist_ok=True).repo_id
    return api.upload_folder(folder_path=os.fspath(folder), repo_id=repo_id, repo_type="dataset",
                             allow_patterns=None if allow_patterns is None else list(allow_patterns),
                             commit_message=commit_message)

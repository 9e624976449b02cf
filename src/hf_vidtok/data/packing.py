"""Pack a folder / CSV of video files into webdataset ``.tar`` or Parquet shards (``hf-vidtok pack``).

:func:`pack_videos` reads every video of the chosen splits once, in listing order, checks that it decodes
(:func:`~hf_vidtok.data.probe_video`; videos where nothing decodes are left out and listed as skipped) and writes
its unchanged bytes into shards of at most ``max_shard_size`` bytes (and ``max_videos_per_shard`` videos), named
``data/<split>-00000-of-00004.<tar|parquet>`` as ``datasets`` expects. Each video keeps its dataset key (its path
relative to the packed folder or CSV), so the shards give exactly the clips the files give
(:mod:`hf_vidtok.data.shards`). Nothing is overwritten: the output folder must be new or empty.

* webdataset: per video ``<stem>.<ext>`` (the file's bytes), ``<stem>.json`` (``key``, and ``label``, ``class_name``,
  ``caption`` when there are), ``<stem>.cls`` (the label); members have mtime 0 and no owner, so the same videos
  give byte-identical tar files.
* Parquet: columns ``key``, ``video`` (the ``{bytes, path}`` struct of ``datasets.Video``), ``label``
  (``ClassLabel``) and ``caption``, with the ``datasets`` features in the schema metadata (``load_dataset`` reads
  them); row groups of :data:`ROWS_PER_GROUP` videos (a remote reader fetches one group at a time).

The returned summary (counts, bytes, frames, durations, codecs, classes, skipped files per split) is what
:func:`hf_vidtok.hub.video_dataset_card` turns into the dataset card.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import tarfile
from collections import Counter
from typing import Optional

from .layouts import FILE_LAYOUTS, SHARD_LAYOUTS, list_videos
from .shards import SHARD_SUFFIXES
from .video_reader import BrokenVideoError, probe_video
from .video_source import VideoSource

__all__ = ["ROWS_PER_GROUP", "pack_videos", "parse_size"]

logger = logging.getLogger("hf_vidtok.data")

ROWS_PER_GROUP = 8


def parse_size(size) -> int:
    """Bytes from an int or a string such as ``"500MB"`` / ``"1GiB"`` / ``"1048576"`` (``datasets``' parser)."""
    from datasets.utils.py_utils import convert_file_size_to_int

    if isinstance(size, bool):
        raise TypeError(f"max_shard_size must be an int or a size string like '500MB', got {size!r}")
    try:
        value = int(size) if isinstance(size, int) or (isinstance(size, str) and size.strip().isdigit()) else \
            convert_file_size_to_int(str(size).strip())
    except ValueError as e:
        raise ValueError(f"max_shard_size must be bytes or a size like '500MB' / '1GiB', got {size!r}") from e
    if value < 1:
        raise ValueError(f"max_shard_size must be positive, got {size!r}")
    return value


def _parquet_features(class_names: list):
    import datasets

    return datasets.Features({
        "key": datasets.Value("string"), "video": datasets.Video(),
        "label": datasets.ClassLabel(names=list(class_names)), "caption": datasets.Value("string"),
    })


class _TarShard:
    """One webdataset shard being written (deterministic member headers)."""

    def __init__(self, path: str):
        self.path, self.videos, self.bytes = path, 0, 0
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        self._stems: set = set()

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
        self._tar.addfile(info, io.BytesIO(data))

    def add(self, key: str, data: bytes, label: int, class_name: str, caption: str) -> None:
        import json

        folder, base = posixpath.split(key)
        stem, ext = posixpath.splitext(base)
        stem = posixpath.join(folder, stem.replace(".", "_") or "video")  # webdataset: the first dot starts the extension
        unique, n = stem, 1
        while unique in self._stems:
            unique, n = f"{stem}_{n}", n + 1
        self._stems.add(unique)
        meta = {"key": key}
        if label >= 0:
            meta.update(label=label, class_name=class_name)
        if caption:
            meta["caption"] = caption
        self._member(f"{unique}.{(ext.lstrip('.') or 'mp4').lower()}", data)
        self._member(f"{unique}.json", json.dumps(meta, sort_keys=True).encode())
        if label >= 0:
            self._member(f"{unique}.cls", str(label).encode())
        self.videos += 1
        self.bytes = self._tar.fileobj.tell()

    def close(self) -> None:
        self._tar.close()


class _ParquetShard:
    """One Parquet shard being written (``datasets`` features in the schema, :data:`ROWS_PER_GROUP` per group)."""

    def __init__(self, path: str, class_names: list):
        import pyarrow.parquet as pq

        self.path, self.videos, self.bytes = path, 0, 0
        self._schema = _parquet_features(class_names).arrow_schema
        self._writer = pq.ParquetWriter(path, self._schema, compression="none", use_dictionary=False,
                                        write_statistics=False)
        self._rows: list = []

    def add(self, key: str, data: bytes, label: int, class_name: str, caption: str) -> None:
        self._rows.append({"key": key, "video": {"bytes": data, "path": key}, "label": label, "caption": caption})
        self.videos += 1
        self.bytes += len(data)
        if len(self._rows) == ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self.bytes = os.path.getsize(self.path)


def _read_bytes(entry, storage_options) -> bytes:
    if "://" in entry.path or "::" in entry.path:
        with VideoSource.from_url(entry.path, size=entry.size, version=entry.version,
                                  storage_options=storage_options).open() as f:
            return f.read()
    with open(entry.path, "rb") as f:
        return f.read()


def _codec(data: bytes) -> str:
    import av

    with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
        return container.streams.video[0].codec_context.name


def _check_output_dir(output_dir) -> str:
    out = os.path.abspath(os.fspath(output_dir))
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(f"output_dir {out!r} exists and is not an empty folder: pack never overwrites, pick a new one")
    return out


def pack_videos(
    data_dir,
    output_dir,
    *,
    format: str = "webdataset",
    layout: str = "folder",
    splits=None,
    max_shard_size="500MB",
    max_videos_per_shard: Optional[int] = None,
    fold: int = 1,
    split_dir=None,
    video_root=None,
    extensions=None,
    storage_options: Optional[dict] = None,
) -> dict:
    """Pack the videos of ``data_dir`` (``layout`` as in :func:`~hf_vidtok.data.list_videos`; local or remote)
    into ``format`` (``"webdataset"`` or ``"parquet"``) shards under ``output_dir/data`` (see the module docstring).

    ``splits``: the splits to pack (None: every split the layout lists); ``max_shard_size``: bytes per shard (int or
    ``"500MB"``); a video larger than it gets a shard of its own. Returns the summary: ``format``, ``layout``,
    ``source``, ``class_names``, ``splits`` (per split: ``videos``, ``shards``, ``bytes``, ``frames``,
    ``duration_s`` total/min/mean/max, ``codecs``, ``classes`` counts, ``files``), ``skipped`` (path -> reason).
    """
    if format not in SHARD_LAYOUTS:
        raise ValueError(f"format must be one of {SHARD_LAYOUTS}, got {format!r}")
    if layout not in FILE_LAYOUTS:
        raise ValueError(f"layout must be one of {FILE_LAYOUTS} (the layout of the videos to pack), got {layout!r}")
    limit = parse_size(max_shard_size)
    if max_videos_per_shard is not None and (isinstance(max_videos_per_shard, bool)
                                             or not isinstance(max_videos_per_shard, int) or max_videos_per_shard < 1):
        raise ValueError(f"max_videos_per_shard must be None or a positive int, got {max_videos_per_shard!r}")
    out = _check_output_dir(output_dir)
    from .layouts import canonical_split

    wanted = None if splits is None else [canonical_split(s) for s in ([splits] if isinstance(splits, str) else splits)]
    listing = list_videos(layout, data_dir, split=wanted[0] if wanted and len(wanted) == 1 else None, fold=fold,
                          split_dir=split_dir, video_root=video_root, extensions=extensions,
                          storage_options=storage_options)
    names = wanted or sorted(listing.splits, key=["train", "validation", "test"].index)
    missing = [s for s in names if not listing.splits.get(s)]
    if missing:
        raise ValueError(f"{os.fspath(data_dir)!r} ({layout} layout) lists no videos for split(s) {missing}; "
                         f"it has {sorted(s for s in listing.splits if listing.splits[s])}")
    class_names = list(listing.class_names)
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    suffix = SHARD_SUFFIXES[format]
    summary = {"format": format, "layout": layout, "source": os.fspath(data_dir), "class_names": class_names,
               "max_shard_size": limit, "splits": {}, "skipped": {}}
    for split in names:
        shards, durations, frames = [], [], 0
        codecs, classes = Counter(), Counter()
        shard = None
        for entry in listing.splits[split]:
            try:
                data = _read_bytes(entry, storage_options)
                index = probe_video(VideoSource.from_bytes(data, name=entry.path))
                codec = _codec(data)
            except BrokenVideoError as e:
                summary["skipped"][entry.path] = e.reason
                logger.warning("Skipping video file %r: %s", entry.path, e.reason)
                continue
            except Exception as e:  # noqa: BLE001 - a bad file is listed, it does not stop the packing
                summary["skipped"][entry.path] = f"unreadable ({type(e).__name__}: {e})"
                logger.warning("Skipping video file %r: %s", entry.path, summary["skipped"][entry.path])
                continue
            full = shard is not None and (shard.bytes + len(data) > limit
                                          or shard.videos == (max_videos_per_shard or -1))
            if shard is None or full:
                if shard is not None:
                    shard.close()
                tmp = os.path.join(out, "data", f".{split}-{len(shards):05d}{suffix}.tmp")
                shard = _TarShard(tmp) if format == "webdataset" else _ParquetShard(tmp, class_names)
                shards.append(shard)
            name = class_names[entry.label] if 0 <= entry.label < len(class_names) else ""
            shard.add(entry.key, data, entry.label, name, entry.caption)
            frames += index.num_frames
            durations.append(float(index.frame_times()[-1]) + 1.0 / index.frame_rate)  # last frame start + its length
            codecs[codec] += 1
            classes[name or "(none)"] += 1
        if shard is not None:
            shard.close()
        files = []
        for i, s in enumerate(shards):
            final = os.path.join(out, "data", f"{split}-{i:05d}-of-{len(shards):05d}{suffix}")
            os.replace(s.path, final)
            files.append({"path": os.path.relpath(final, out).replace(os.sep, "/"), "videos": s.videos,
                          "bytes": os.path.getsize(final)})
        summary["splits"][split] = {
            "videos": sum(f["videos"] for f in files), "shards": len(files), "bytes": sum(f["bytes"] for f in files),
            "frames": frames,
            "duration_s": {"total": round(sum(durations), 3), "min": round(min(durations, default=0.0), 3),
                           "mean": round(sum(durations) / max(len(durations), 1), 3),
                           "max": round(max(durations, default=0.0), 3)},
            "codecs": dict(sorted(codecs.items())), "classes": dict(sorted(classes.items())), "files": files,
        }
    if format == "parquet":
        import datasets

        summary["dataset_info"] = datasets.DatasetInfo(features=_parquet_features(class_names))._to_yaml_dict()
    return summary

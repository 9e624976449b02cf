"""Videos stored as bytes in shards: webdataset ``.tar`` files and Parquet files, local or remote (Hub, fsspec).

Layouts (``layout=`` of :func:`~hf_vidtok.data.load_video_dataset`, ``--dataset_layout`` of the scripts):

* ``webdataset``: ``.tar`` files, one video per sample. Members are grouped into samples the webdataset way
  (``<key>.<ext>``, with ``datasets``' own ``base_plus_ext``); a sample's video is its member with a video
  extension (``mp4``, ``webm``, ``avi``, ...), its label the ``.cls`` member (an int or a class name) or the
  ``label`` of its ``.json`` member, its caption the ``caption`` of the ``.json`` (or a ``.txt`` member).
* ``parquet``: ``.parquet`` files with a column of video bytes: ``video`` (binary, or the ``{bytes, path}`` struct
  of a ``datasets.Video`` column, as ``Dataset.push_to_hub`` writes it), else the first binary column; optional
  ``key``, ``label`` (int or class name), ``caption`` and ``action``/``class``/``class_name`` columns.

Every shard file is one shard of the dataset (DataLoader workers, :func:`~hf_vidtok.data.files_of_process` and
:class:`~hf_vidtok.data.ShardedClipStream` deal out whole shards, so no video is read twice), and its split comes
from its path, as in ``datasets``: a ``train/``, ``validation/`` (``val/``) or ``test/`` folder or a file name
starting ``train-`` / ``validation-`` / ``test-`` (``hf-vidtok pack`` writes ``data/train-00000-of-00004.tar``);
other files are ``train``.

Keys: a video's key (which seeds its clip starts) is the ``key`` its shard stores (the ``.json``'s ``key``, the
``key`` column), which ``hf-vidtok pack`` sets to the video's key in the packed folder or CSV, so the packed videos
give exactly the clips of the originals. Without one: the video member's name (webdataset), the ``path`` of the
``Video`` struct (its file name when absolute), or ``<shard key>#<row>`` (Parquet).

Class names come from ``class_names=``, else from the dataset card (``README.md`` at the root: the ``hf_vidtok``
entry ``hf-vidtok pack`` writes, or a ``class_label`` feature under ``dataset_info``), else for Parquet from the
``datasets`` features in the first file's schema, else from one pass over the shards that reads the labels only
(the ``.cls`` / ``.json`` members; the label columns of Parquet files).

A sample without a video, with damaged metadata or bytes that do not decode is skipped and counted like a bad
file (its name: ``<shard>#<member>``); a damaged or cut tar file gives what it holds up to the damage, plus one
skipped entry for the rest. Bytes are decoded in memory (:class:`~hf_vidtok.data.VideoSource`).

Hand-written instead of ``datasets``' ``webdataset`` / ``parquet`` builders: those decode videos with torchcodec
(not usable with this torch build), infer webdataset features from the first samples, stop a whole shard at the
first bad member and yield whole videos, not clips. The tar is read with the stdlib ``tarfile`` in stream mode
(one sequential pass, as ``datasets`` reads archives), Parquet with ``pyarrow`` (row group by row group, the video
column only where it is needed); no ``webdataset`` package is needed.
"""

from __future__ import annotations

import json
import logging
import posixpath
import tarfile
from dataclasses import dataclass
from typing import Iterator, Optional

from .listing import _SPLIT_ALIASES, SHARD_LAYOUTS, VideoListing, canonical_split, label_scheme
from .locations import DataLocation, resolve_location
from .video_reader import VIDEO_EXTENSIONS

__all__ = ["ShardEntry", "ShardVideo", "iter_shard_videos", "list_shards", "shard_label", "SHARD_SUFFIXES"]

logger = logging.getLogger("hf_vidtok.data")

SHARD_SUFFIXES = {"webdataset": ".tar", "parquet": ".parquet"}
_VIDEO_EXTS = {e.lstrip(".") for e in VIDEO_EXTENSIONS}
_LABEL_COLUMNS = ("label", "action", "class", "class_name")
_CARD = "README.md"


@dataclass(frozen=True)
class ShardEntry:
    """One shard file: ``path`` (local path or URL), ``layout`` (``webdataset`` or ``parquet``), ``key`` (its
    path relative to the dataset root), ``size`` and ``version`` (from the listing, None when it does not say; they
    fingerprint the cache)."""

    path: str
    layout: str
    key: str
    size: Optional[int]
    version: Optional[str] = None


@dataclass
class ShardVideo:
    """One video of a shard: ``key`` (seeds its clips), ``name`` (``<shard>#<member or row>``, for messages and
    skip counts), ``data`` (the file's bytes), ``labels`` (the raw label fields, str values, for
    :func:`shard_label`), ``caption``; ``problem`` says why it cannot be read (then ``data`` is None)."""

    key: str
    name: str
    data: Optional[bytes]
    labels: dict
    caption: str = ""
    problem: Optional[str] = None


def shard_label(labels: dict, class_names: list) -> int:
    """The class index of a sample's raw label fields: an integer ``label`` as it is (-1 when out of range), a
    class name looked up in ``class_names`` (``label`` first, then ``action``/``class``/``class_name``); -1: none."""
    for column in _LABEL_COLUMNS:
        value = str(labels.get(column, "") or "").strip()
        if not value:
            continue
        if column == "label":
            try:
                index = int(float(value)) if float(value).is_integer() else None
            except ValueError:
                index = None
            if index is not None:
                return index if 0 <= index < len(class_names) else -1
        if value in class_names:
            return class_names.index(value)
    return -1


# ------------------------------------------------------------------------------------------- listing
def _shard_split(rel: str) -> str:
    parts = rel.split("/")
    for name, aliases in _SPLIT_ALIASES.items():
        if any(p.lower() in aliases for p in parts[:-1]):
            return name
    stem = parts[-1].lower()
    for name, aliases in _SPLIT_ALIASES.items():
        if any(stem.startswith(a + sep) for a in aliases for sep in "-_."):
            return name
    return "train"


def _card_class_names(loc: DataLocation) -> Optional[list]:
    """Class names from the dataset card at the root (``hf_vidtok.class_names``, or a ``class_label`` feature
    named ``label`` / ``cls`` under ``dataset_info``); None when there is no card or it names none."""
    if loc.is_file():
        return None
    try:
        with loc.open(_CARD, "rt") as f:
            text = f.read()
    except (OSError, ValueError):
        return None
    from huggingface_hub import DatasetCard

    data = DatasetCard(text).data
    ours = data.get("hf_vidtok") or {}
    if isinstance(ours, dict) and isinstance(ours.get("class_names"), list):
        return [str(n) for n in ours["class_names"]]
    if data.get("dataset_info") is None:
        return None
    import datasets
    from datasets.info import DatasetInfosDict

    for info in DatasetInfosDict.from_dataset_card_data(data).values():
        for column in ("label", "cls"):
            feature = (info.features or {}).get(column)
            if isinstance(feature, datasets.ClassLabel):
                return list(feature.names)
    return None


def list_shards(
    layout: str, data_dir, *, split: Optional[str] = None, storage_options: Optional[dict] = None,
    class_names: Optional[list] = None,
) -> VideoListing:
    """The shard files of ``data_dir`` (a shard file, or a folder / Hub repo / URL holding them) by split, as a
    :class:`~hf_vidtok.data.VideoListing` whose splits list :class:`ShardEntry` items (see the module docstring
    for splits and class names). ``ValueError`` when ``data_dir`` holds no shard of ``layout``."""
    if layout not in SHARD_LAYOUTS:
        raise ValueError(f"shard layout must be one of {SHARD_LAYOUTS}, got {layout!r}")
    loc = resolve_location(data_dir, storage_options)
    suffix = SHARD_SUFFIXES[layout]
    files = [f for f in loc.files() if f.rel.lower().endswith(suffix) or (not f.rel and loc.root.endswith(suffix))]
    files = [f for f in files if not any(p.startswith((".", "__")) for p in f.rel.split("/") if p)]
    if not files:
        raise ValueError(f"{layout} layout: {loc.url!r} holds no {suffix} files")
    single = loc.is_file()
    splits: dict = {}
    for f in files:
        name = (canonical_split(split) if split else "train") if single else _shard_split(f.rel)
        key = f.rel or posixpath.basename(loc.root)
        splits.setdefault(name, []).append(ShardEntry(loc.url_of(f.rel), layout, key, f.size, f.version))
    if class_names is None:
        class_names = _card_class_names(loc)
    if class_names is None and layout == "parquet":
        class_names = _parquet_class_names(next(iter(splits.values()))[0], loc.storage_options)
    if class_names is None:
        class_names = _scan_class_names(layout, [e for entries in splits.values() for e in entries], loc.storage_options)
    return VideoListing(list(class_names), splits, has_caption=True, sources={s: loc.url for s in splits})


def _parquet_class_names(entry: ShardEntry, storage_options: dict) -> Optional[list]:
    """The names of a ``ClassLabel`` ``label`` column in the ``datasets`` features a Parquet file's schema carries
    (``Dataset.to_parquet`` / ``push_to_hub`` and ``hf-vidtok pack`` write them); None without them."""
    import datasets
    import pyarrow.parquet as pq

    try:
        with _open_shard(entry, storage_options) as f:
            schema = pq.ParquetFile(f).schema_arrow
        feature = datasets.Features.from_arrow_schema(schema).get("label")
    except Exception:  # noqa: BLE001 - unreadable here: the reading pass reports the shard
        return None
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _scan_class_names(layout: str, entries: list, storage_options: dict) -> list:
    logger.info("no class names in a dataset card: reading the labels of %d %s shard(s) first (`hf-vidtok pack` "
                "writes a card that names them)", len(entries), layout)
    rows = []
    for entry in entries:
        for video in iter_shard_videos(entry, storage_options, labels_only=True):
            if video.problem is None:
                rows.append({k: v for k, v in video.labels.items() if v != ""})
    return label_scheme(rows)[0]


# ----------------------------------------------------------------------------------------- reading
def _open_shard(entry: ShardEntry, storage_options: Optional[dict]):
    if "://" in entry.path or "::" in entry.path:
        import fsspec

        return fsspec.open(entry.path, "rb", **(storage_options or {})).open()
    return open(entry.path, "rb")


def iter_shard_videos(
    entry: ShardEntry, storage_options: Optional[dict] = None, *, labels_only: bool = False
) -> Iterator[ShardVideo]:
    """The videos of one shard, in stored order (``labels_only``: without their bytes, for the class-name scan).
    Never raises for damaged data: a video that cannot be read comes with ``problem`` set."""
    try:
        f = _open_shard(entry, storage_options)
    except Exception as e:  # noqa: BLE001 - a missing or unreachable shard is one bad entry, not the end of a run
        yield ShardVideo(entry.key, entry.path, None, {}, problem=f"shard cannot be opened ({type(e).__name__}: {e})")
        return
    with f:
        if entry.layout == "webdataset":
            yield from _tar_videos(entry, f, labels_only)
        else:
            yield from _parquet_videos(entry, f, labels_only)


def _base_plus_ext(name: str):
    from datasets.packaged_modules.webdataset.webdataset import base_plus_ext

    return base_plus_ext(name)


def _tar_samples(entry: ShardEntry, f, labels_only: bool) -> Iterator[tuple]:
    """``(sample key, {ext: bytes}, problem)`` per webdataset sample; ``problem``: the archive broke there (the sample
    key is then the name of the member being read, or ``<start>``)."""
    current, fields = None, {}
    members, reading = 0, None
    try:
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            for member in tar:
                reading = member.name
                if not member.isreg():
                    continue
                base, ext = _base_plus_ext(member.name)
                if base is None or posixpath.basename(member.name).startswith((".", "__")):
                    continue
                if base != current:
                    if current is not None:
                        yield current, fields, None
                    current, fields = base, {}
                last = ext.rsplit(".", 1)[-1].lower()
                if labels_only and last in _VIDEO_EXTS:
                    fields[ext] = b""  # present, not read
                else:
                    fields[ext] = tar.extractfile(member).read()
                members += 1
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        where = f"after {members} good member(s), in {reading!r}" if reading else "at its start"
        yield reading or "<start>", fields, f"the tar archive is damaged {where}: {type(e).__name__}: {e}"
        return
    if current is not None:
        yield current, fields, None


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").strip()


def _tar_videos(entry: ShardEntry, f, labels_only: bool) -> Iterator[ShardVideo]:
    for base, fields, broken in _tar_samples(entry, f, labels_only):
        if broken is not None:
            yield ShardVideo(base, f"{entry.path}#{base}", None, {}, problem=broken)
            return
        video_ext = next((e for e in fields if e.rsplit(".", 1)[-1].lower() in _VIDEO_EXTS), None)
        member = f"{base}.{video_ext}" if video_ext else base
        name = f"{entry.path}#{member}"
        meta, labels, caption = {}, {}, ""
        try:
            if "json" in fields:
                meta = json.loads(fields["json"].decode("utf-8"))
                if not isinstance(meta, dict):
                    raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
        except (ValueError, UnicodeDecodeError) as e:
            yield ShardVideo(member, name, None, {}, problem=f"unreadable .json member ({type(e).__name__}: {e})")
            continue
        for column in _LABEL_COLUMNS:
            if meta.get(column) is not None:
                labels[column] = str(meta[column])
        if "cls" in fields:
            labels["label"] = _text(fields["cls"])
        caption = str(meta.get("caption") or "") or next(
            (_text(fields[e]) for e in ("txt", "caption", "text") if e in fields), "")
        key = str(meta["key"]) if isinstance(meta.get("key"), str) and meta["key"] else member
        if video_ext is None:
            yield ShardVideo(key, name, None, labels, caption,
                             problem=f"no video member in sample {base!r} (members: {sorted(fields)})")
            continue
        yield ShardVideo(key, name, None if labels_only else fields[video_ext], labels, caption)


def _video_column(schema) -> Optional[str]:
    import pyarrow as pa

    def holds_bytes(t):
        return pa.types.is_binary(t) or pa.types.is_large_binary(t) or (
            pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields)))

    names = list(schema.names)
    if "video" in names and holds_bytes(schema.field("video").type):
        return "video"
    return next((n for n in names if holds_bytes(schema.field(n).type)), None)


def _parquet_videos(entry: ShardEntry, f, labels_only: bool) -> Iterator[ShardVideo]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
    except Exception as e:  # noqa: BLE001 - not a Parquet file, cut, damaged
        yield ShardVideo(entry.key, f"{entry.path}#<file>", None, {},
                         problem=f"unreadable Parquet file ({type(e).__name__}: {e})")
        return
    video_col = _video_column(schema)
    if video_col is None:
        yield ShardVideo(entry.key, f"{entry.path}#<file>", None, {},
                         problem=f"no column of video bytes (columns: {list(schema.names)})")
        return
    meta_cols = [c for c in ("key", "caption", *_LABEL_COLUMNS) if c in schema.names and c != video_col]
    if labels_only and not any(c in _LABEL_COLUMNS for c in meta_cols):
        return  # no labels in this file: nothing to read
    columns = meta_cols + ([] if labels_only else [video_col])
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=8, columns=columns):
            for values in batch.to_pylist():
                name = f"{entry.path}#{row}"
                cell = values.get(video_col)
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                struct_path = cell.get("path") if isinstance(cell, dict) else None
                if not struct_path:
                    struct_path = f"{entry.key}#{row}"
                elif posixpath.isabs(struct_path):  # an absolute path names a place, not the video
                    struct_path = posixpath.basename(struct_path)
                key = values.get("key") or struct_path
                labels = {c: "" if values.get(c) is None else str(values[c]) for c in _LABEL_COLUMNS if c in values}
                caption = str(values.get("caption") or "")
                row += 1
                if labels_only:
                    yield ShardVideo(str(key), name, None, labels, caption)
                elif not data:
                    yield ShardVideo(str(key), name, None, labels, caption, problem="empty video cell (no bytes)")
                else:
                    yield ShardVideo(str(key), name, bytes(data), labels, caption)
    except Exception as e:  # noqa: BLE001 - a damaged row group: what came before it stands
        yield ShardVideo(entry.key, f"{entry.path}#{row}", None, {},
                         problem=f"the Parquet file is damaged at row {row}: {type(e).__name__}: {e}")

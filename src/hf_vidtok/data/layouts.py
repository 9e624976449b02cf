"""Listing the videos of a dataset: ``folder``, ``ucf101`` and ``csv`` layouts of video files.

``folder`` and ``csv`` also list remote data (a Hub dataset repo, ``hf://`` or other fsspec URLs, see
:mod:`hf_vidtok.data.locations`): the same files give the same entries and keys, with URLs as paths. The shard
layouts ``webdataset`` and ``parquet`` are listed by :mod:`hf_vidtok.data.shards` (:func:`list_videos` hands them on).

Every problem found here (wrong layout, missing directory, split file or ``path`` column) raises
``ValueError`` before any video is read; problems with individual video files are left to the
reader, which skips them.

* ``folder``: ``data_dir/<class>/**/<video>``, or ``data_dir/<split>/<class>/**/<video>`` with
  split folders ``train``, ``val``/``validation``, ``test``. Labels index the sorted class names
  (union over the split folders).
* ``ucf101``: ``data_dir`` holds the class folders of UCF-101 (``UCF-101/`` inside it is found
  too) and the official split files ``classInd.txt``, ``trainlist0{1,2,3}.txt`` and
  ``testlist0{1,2,3}.txt`` (in ``split_dir``, default ``data_dir/ucfTrainTestlist``, ``data_dir`` or
  its parent's ``ucfTrainTestlist``). Class names follow ``classInd.txt``.
* ``csv``: a CSV file (or several joined by ``+``), or a directory holding ``<split>.csv``; column
  ``path`` (relative paths are taken from ``video_root``, default the CSV's folder), optional
  ``label`` (int or class name), ``caption``, and ``action``/``class`` naming integer labels;
  the official LARP CSV ``id,path,action,label`` is accepted.

Every video gets a ``key``: its path relative to the dataset root (``data_dir`` for ``folder``, the
split file's path for ``ucf101``, the path relative to ``video_root`` / the CSV's folder for ``csv``,
even when the CSV lists it by its absolute path). The key seeds the clip sampling, so moving the data
changes no clip. CSV rows naming files outside that root are keyed by their path relative to the
deepest folder holding all of them (a single such file: its name), never by an absolute path.
"""

from __future__ import annotations

import csv
import os
import posixpath
from pathlib import Path
from typing import Optional, Sequence

from .listing import (  # noqa: F401  (the listing types and label rules, re-exported: their home before listing.py)
    _SPLIT_ALIASES,
    FILE_LAYOUTS,
    LAYOUTS,
    SHARD_LAYOUTS,
    VideoEntry,
    VideoListing,
    canonical_split,
    label_index,
    label_scheme,
)
from .video_reader import VIDEO_EXTENSIONS

__all__ = ["FILE_LAYOUTS", "LAYOUTS", "SHARD_LAYOUTS", "VideoEntry", "VideoListing", "canonical_split", "label_index",
           "label_scheme", "list_videos"]

def _dir(path, what: str) -> Path:
    p = Path(os.fspath(path)).expanduser()
    if not p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is not an existing directory")
    return p


def _abs(path) -> str:
    """Absolute, normalised path; symlinks are kept (a link's own name identifies the video)."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def _relative_key(path: str, root: str) -> Optional[str]:
    """``path`` (absolute) relative to ``root`` as a POSIX path; None when it lies outside ``root``."""
    try:
        rel = os.path.relpath(path, root)
    except ValueError:  # another drive (Windows)
        return None
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return None
    return Path(rel).as_posix()


def _common_root_keys(paths: list) -> list:
    """Keys of absolute ``paths`` (or URLs) relative to the deepest folder that holds all of them."""
    if not paths:
        return []
    if any("://" in p for p in paths):  # URLs: POSIX paths after the protocol (a file per protocol at worst)
        parts = [p.split("://", 1)[-1].split("/") for p in paths]
        common = 0
        while all(len(q) > common + 1 and q[common] == parts[0][common] for q in parts):
            common += 1
        return ["/".join(q[common:]) for q in parts]
    try:
        root = os.path.commonpath(paths)
    except ValueError:  # different drives (Windows): nothing in common
        return [Path(os.path.splitdrive(p)[1]).as_posix().lstrip("/") for p in paths]
    if root in paths:  # a single file (or one listed repeatedly): key by its name
        root = os.path.dirname(root)
    return [Path(os.path.relpath(p, root)).as_posix() for p in paths]


def _is_video(p: Path, extensions: Sequence[str]) -> bool:
    # broken symlinks are listed too: the reader then skips them with a warning ("file not found")
    return (p.is_file() or p.is_symlink()) and not p.name.startswith(".") and p.suffix.lower() in extensions


def _norm_ext(extensions) -> tuple:
    if extensions is None:
        return VIDEO_EXTENSIONS
    if isinstance(extensions, str):
        extensions = (extensions,)
    out = tuple(("." + e.lower().lstrip(".")) for e in extensions)
    if not out:
        raise ValueError("extensions must name at least one file extension")
    return out


# --------------------------------------------------------------------------------------- folder
def _list_folder(data_dir: Path, extensions) -> VideoListing:
    roots = {}
    for name, aliases in _SPLIT_ALIASES.items():
        for alias in aliases:
            if (data_dir / alias).is_dir():
                roots[name] = data_dir / alias
                break
    if not roots:
        roots = {"train": data_dir}
    class_dirs = {s: sorted(d.name for d in r.iterdir() if d.is_dir() and not d.name.startswith(".")) for s, r in roots.items()}
    class_names = sorted(set().union(*class_dirs.values()))
    if not class_names:
        raise ValueError(f"folder layout: {str(data_dir)!r} has no class sub-folders (expected data_dir/<class>/<video>)")
    label_of = {c: i for i, c in enumerate(class_names)}
    splits = {}
    for s, root in roots.items():
        entries = []
        for c in class_dirs[s]:
            for p in sorted((root / c).rglob("*")):
                if _is_video(p, extensions):
                    entries.append(VideoEntry(_abs(p), label_of[c], p.relative_to(data_dir).as_posix()))
        splits[s] = entries
    return VideoListing(class_names, splits, sources={s: str(r) for s, r in roots.items()})


# --------------------------------------------------------------------------------------- ucf101
def _read_lines(path: Path) -> list:
    with open(path, encoding="utf-8", errors="replace") as f:
        return [ln.strip() for ln in f.read().splitlines() if ln.strip()]


def _list_ucf101(data_dir: Path, fold: int, split_dir, video_root) -> VideoListing:
    if fold not in (1, 2, 3):
        raise ValueError(f"fold must be 1, 2 or 3 for the UCF-101 splits, got {fold!r}")
    if split_dir is not None:
        candidates = [_dir(split_dir, "split_dir")]
    else:
        candidates = [data_dir / "ucfTrainTestlist", data_dir, data_dir.parent / "ucfTrainTestlist"]
    sdir = next((d for d in candidates if (d / "classInd.txt").is_file()), None)
    if sdir is None:
        raise ValueError(
            "ucf101 layout: classInd.txt not found in " + ", ".join(repr(str(d)) for d in candidates)
            + " (pass split_dir= pointing at the folder of classInd.txt / trainlist01.txt / testlist01.txt)"
        )
    if video_root is not None:
        vroot = _dir(video_root, "video_root")
    elif (data_dir / "UCF-101").is_dir():
        vroot = data_dir / "UCF-101"
    else:
        vroot = data_dir
    class_names, index_of = [], {}
    for i, line in enumerate(_read_lines(sdir / "classInd.txt")):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{sdir / 'classInd.txt'} line {i + 1}: expected '<index> <ClassName>', got {line!r}")
        if int(parts[0]) != len(class_names) + 1:
            raise ValueError(f"{sdir / 'classInd.txt'}: class indices must run 1, 2, 3, ...; got {line!r}")
        index_of[parts[1].lower()] = len(class_names)
        class_names.append(parts[1])
    splits, sources = {}, {}
    for split, stem in (("train", "trainlist"), ("test", "testlist")):
        list_file = sdir / f"{stem}0{fold}.txt"
        if not list_file.is_file():
            continue
        entries = []
        for i, line in enumerate(_read_lines(list_file)):
            parts = line.replace("\\", "/").split()
            rel = parts[0]
            cls = rel.split("/")[0].lower() if "/" in rel else None
            if len(parts) > 1:
                if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(class_names):
                    raise ValueError(f"{list_file} line {i + 1}: label must be 1..{len(class_names)}, got {line!r}")
                label = int(parts[1]) - 1
            elif cls in index_of:
                label = index_of[cls]
            else:
                raise ValueError(f"{list_file} line {i + 1}: class folder of {rel!r} is not in classInd.txt")
            entries.append(VideoEntry(_abs(vroot / rel), label, rel))
        splits[split] = entries
        sources[split] = str(list_file)
    if not splits:
        raise ValueError(f"ucf101 layout: neither trainlist0{fold}.txt nor testlist0{fold}.txt is in {str(sdir)!r}")
    return VideoListing(class_names, splits, sources=sources)


# ------------------------------------------------------------------------------------------ csv
def _csv_files(data_dir: str) -> dict:
    """Map split -> list of CSV paths, or {None: [...]} for explicitly given files."""
    if "+" in data_dir and not os.path.exists(data_dir):
        parts = data_dir.split("+")
        for p in parts:
            if not Path(p).expanduser().is_file():
                raise ValueError(f"csv layout: CSV file {p!r} (from {data_dir!r}) does not exist")
        return {None: [Path(p).expanduser() for p in parts]}
    p = Path(data_dir).expanduser()
    if p.is_file():
        return {None: [p]}
    if not p.is_dir():
        raise ValueError(f"csv layout: data_dir {data_dir!r} is neither a CSV file nor a directory")
    found = {}
    for name, aliases in _SPLIT_ALIASES.items():
        for alias in aliases:
            if (p / f"{alias}.csv").is_file():
                found[name] = [p / f"{alias}.csv"]
                break
    if not found:
        raise ValueError(f"csv layout: {data_dir!r} holds no train.csv / validation.csv (val.csv) / test.csv")
    return found


def _read_csv_rows(f, name: str) -> tuple:
    """``(rows, has_caption)`` of an open CSV (rows: stripped str dicts with a non-empty ``path``)."""
    reader = csv.DictReader(f)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "path" not in header:
        raise ValueError(f"csv layout: {name!r} has no 'path' column (columns: {header})")
    rows = []
    for row in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if row.get("path"):
            rows.append(row)
    return rows, "caption" in header


def _csv_listing(rows_by_split: dict, has_caption: bool, sources: dict) -> VideoListing:
    """The listing of CSV rows that hold ``_abs`` (the video's path or URL) and ``_key`` (None: outside the root)."""
    all_rows = [r for rows in rows_by_split.values() for r in rows]
    outside = [r for r in all_rows if r["_key"] is None]  # files outside the CSV's folder / video_root
    for r, key in zip(outside, _common_root_keys([r["_abs"] for r in outside])):
        r["_key"] = key
    try:
        class_names, mode = label_scheme(all_rows)
    except ValueError as e:
        raise ValueError(f"csv layout: {e}") from None
    splits = {}
    for split, rows in rows_by_split.items():
        splits[split] = [
            VideoEntry(r["_abs"], label_index(r, class_names, mode), r["_key"], r.get("caption", ""),
                       r.get("_size"), r.get("_version"))
            for r in rows
        ]
    return VideoListing(class_names, splits, has_caption, sources)


def _list_csv(data_dir, video_root, requested_split: Optional[str]) -> VideoListing:
    files = _csv_files(os.fspath(data_dir))
    if None in files:
        files = {requested_split or "train": files[None]}
    vroot = _dir(video_root, "video_root") if video_root is not None else None
    rows_by_split, has_caption = {}, False
    for split, paths in files.items():
        rows = []
        for path in paths:
            with open(path, newline="", encoding="utf-8-sig") as f:
                file_rows, caption = _read_csv_rows(f, str(path))
            has_caption |= caption
            base = vroot or Path(_abs(path.parent))
            for row in file_rows:
                row["_abs"] = _abs(base / row["path"])
                row["_key"] = _relative_key(row["_abs"], _abs(base))
            rows.extend(file_rows)
        rows_by_split[split] = rows
    return _csv_listing(rows_by_split, has_caption, {s: "+".join(map(str, p)) for s, p in files.items()})


# ------------------------------------------------------------------------- remote (fsspec) layouts
def _split_roots(top_dirs) -> dict:
    """split -> folder name, for the split folders among ``top_dirs`` (``{"train": ""}`` when there are none)."""
    roots = {}
    for name, aliases in _SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in top_dirs:
                roots[name] = alias
                break
    return roots or {"train": ""}


def _list_folder_remote(loc, extensions) -> VideoListing:
    """The ``folder`` layout of a remote root: what :func:`_list_folder` lists for the same files on disk."""
    files = loc.files()
    parts = [(f, f.rel.split("/")) for f in files]
    roots = _split_roots({p[0] for _, p in parts if len(p) > 1})
    depth = {s: (1 if r else 0) for s, r in roots.items()}
    class_dirs = {
        s: sorted({p[depth[s]] for _, p in parts if (not r or p[0] == r) and len(p) > depth[s] + 1
                   and not p[depth[s]].startswith(".")})
        for s, r in roots.items()
    }
    class_names = sorted(set().union(*class_dirs.values()))
    if not class_names:
        raise ValueError(f"folder layout: {loc.url!r} has no class sub-folders (expected data_dir/<class>/<video>)")
    label_of = {c: i for i, c in enumerate(class_names)}
    splits = {}
    for s, r in roots.items():
        d = depth[s]
        splits[s] = [
            VideoEntry(loc.url_of(f.rel), label_of[p[d]], f.rel, "", f.size, f.version)
            for f, p in parts
            if (not r or p[0] == r) and len(p) > d + 1 and p[d] in label_of and p[d] in class_dirs[s]
            and not p[-1].startswith(".") and posixpath.splitext(p[-1])[1].lower() in extensions
        ]
    return VideoListing(class_names, splits, sources={s: loc.url_of(r) for s, r in roots.items()})


def _list_csv_remote(loc, video_root, requested_split: Optional[str]) -> VideoListing:
    """The ``csv`` layout of a remote CSV file (or a remote folder of ``<split>.csv``); relative ``path`` values
    are taken from the CSV's folder (or ``video_root``, a URL or path), URLs as they are."""
    from .locations import resolve_location

    if loc.is_file():
        csv_files = {requested_split or "train": ""}
    else:
        names = {f.rel for f in loc.files() if "/" not in f.rel}
        csv_files = {}
        for name, aliases in _SPLIT_ALIASES.items():
            alias = next((a for a in aliases if f"{a}.csv" in names), None)
            if alias is not None:
                csv_files[name] = f"{alias}.csv"
        if not csv_files:
            raise ValueError(f"csv layout: {loc.url!r} holds no train.csv / validation.csv (val.csv) / test.csv")
    base = resolve_location(video_root, loc.storage_options) if video_root is not None else None
    known = {}  # sizes and versions of the files below the base folders (one listing each)
    rows_by_split, has_caption = {}, False
    for split, rel in csv_files.items():
        with loc.open(rel, "rt") as f:
            rows, caption = _read_csv_rows(f, loc.url_of(rel))
        has_caption |= caption
        folder = base or resolve_location(posixpath.dirname(loc.url_of(rel)), loc.storage_options)
        if folder.url not in known:
            try:
                known[folder.url] = {folder.url_of(g.rel): g for g in folder.files()}
            except ValueError:
                known[folder.url] = {}
        for row in rows:
            url = row["path"] if "://" in row["path"] else folder.url_of(posixpath.normpath(row["path"]))
            row["_abs"] = url
            inside = url.startswith(folder.url.rstrip("/") + "/")
            row["_key"] = url[len(folder.url.rstrip("/")) + 1:] if inside else None
            info = known[folder.url].get(url)
            if info is not None:
                row["_size"], row["_version"] = info.size, info.version
        rows_by_split[split] = rows
    return _csv_listing(rows_by_split, has_caption, {s: loc.url_of(r) for s, r in csv_files.items()})


def list_videos(
    layout: str,
    data_dir,
    *,
    split: Optional[str] = None,
    fold: int = 1,
    split_dir=None,
    video_root=None,
    extensions=None,
    storage_options: Optional[dict] = None,
) -> VideoListing:
    """List the videos and class names of ``data_dir`` in ``layout`` (see the module docstring).

    ``split`` (canonical name) only matters for a ``csv`` layout given as a single CSV file, whose
    rows then form that split. ``data_dir`` may be remote (a Hub dataset repo id, ``hf://`` or other fsspec
    URL, see :mod:`hf_vidtok.data.locations`; ``folder`` and ``csv`` layouts, ``storage_options`` for fsspec). For
    the shard layouts (``webdataset``, ``parquet``) the splits list :class:`~hf_vidtok.data.shards.ShardEntry`
    items, one per shard file (see :func:`hf_vidtok.data.shards.list_shards`).
    Raises ``ValueError`` for a bad layout, directory or split file.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if data_dir is None:
        raise ValueError("data_dir must be given (a directory, or a CSV file for layout='csv')")
    if layout in SHARD_LAYOUTS:
        from .shards import list_shards

        return list_shards(layout, data_dir, split=split, storage_options=storage_options)
    from .locations import is_remote_location, resolve_location

    if is_remote_location(data_dir):
        loc = resolve_location(data_dir, storage_options)
        if layout == "folder":
            return _list_folder_remote(loc, _norm_ext(extensions))
        if layout == "csv":
            return _list_csv_remote(loc, video_root, split)
        raise ValueError(f"the ucf101 layout needs a local folder (got {data_dir!r}); use the folder or csv layout")
    if layout == "csv":
        return _list_csv(data_dir, video_root, split)
    root = _dir(data_dir, "data_dir")
    if layout == "folder":
        return _list_folder(root, _norm_ext(extensions))
    return _list_ucf101(root, fold, split_dir, video_root)

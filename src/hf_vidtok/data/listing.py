"""What a dataset listing is, shared by the file layouts (:mod:`hf_vidtok.data.layouts`) and the shard layouts
(:mod:`hf_vidtok.data.shards`): the layout names, split names, :class:`VideoEntry` / :class:`VideoListing` and the
label rules of CSV-like rows. A module of its own so that ``layouts`` (which hands shard layouts to ``shards``) and
``shards`` (which builds the same listings) do not import each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

__all__ = ["FILE_LAYOUTS", "LAYOUTS", "SHARD_LAYOUTS", "VideoEntry", "VideoListing", "canonical_split", "label_index",
           "label_scheme"]

#: Layouts of video files (``FILE_LAYOUTS``) and of shards holding the videos' bytes (``SHARD_LAYOUTS``,
#: see :mod:`hf_vidtok.data.shards`).
FILE_LAYOUTS = ("folder", "ucf101", "csv")
SHARD_LAYOUTS = ("webdataset", "parquet")
LAYOUTS = FILE_LAYOUTS + SHARD_LAYOUTS
_SPLIT_ALIASES = {
    "train": ("train", "training"),
    "validation": ("validation", "val", "valid"),
    "test": ("test", "testing"),
}


def canonical_split(split: str) -> str:
    """``'val'`` -> ``'validation'``, ``'training'`` -> ``'train'``, ...; ValueError for others."""
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    for name, aliases in _SPLIT_ALIASES.items():
        if split.lower() in aliases:
            return name
    raise ValueError(f"split must be one of {sorted(_SPLIT_ALIASES)} (or val/training/testing), got {split!r}")


@dataclass(frozen=True)
class VideoEntry:
    """One video to read: absolute ``path`` (or URL of a remote file), ``label`` (-1: none), ``key`` (its path
    relative to the dataset root, independent of where the data lies; seeds the clip sampling), ``caption`` (""
    when none), and for a remote file the ``size`` and ``version`` its listing gave (None: unknown)."""

    path: str
    label: int
    key: str
    caption: str = ""
    size: Optional[int] = None
    version: Optional[str] = None


@dataclass
class VideoListing:
    """All splits of a dataset: ``splits[name]`` lists :class:`VideoEntry`; labels index ``class_names``."""

    class_names: list
    splits: dict
    has_caption: bool = False
    sources: dict = field(default_factory=dict)  # split -> files/folders it was listed from


def _int_or_none(value: str):
    try:
        return int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            return None
        return int(f) if f.is_integer() else None


def label_scheme(rows: list) -> tuple:
    """``(class_names, mode)`` of label rows (dicts with optional ``label`` and ``action``/``class``/``class_name``):
    integer labels (``mode="int"``; names from the class column, else ``"0"``, ``"1"``, ...) or, when any label
    is not an integer, the sorted strings of the ``label`` column (else the class column) as class names (``mode``:
    that column; None when no row has a label)."""
    raw_labels = [r.get("label", "") for r in rows]
    names_col = next((c for c in ("action", "class", "class_name") if any(c in r for r in rows)), None)
    int_labels = [_int_or_none(v) for v in raw_labels if v != ""]
    if raw_labels and any(v != "" for v in raw_labels) and all(v is not None for v in int_labels):
        names = {}
        for r in rows:
            lab = _int_or_none(r.get("label", "")) if r.get("label", "") != "" else None
            if lab is None or lab < 0:
                continue
            name = r.get(names_col, "") if names_col else ""
            if name and names.get(lab, name) != name:
                raise ValueError(f"label {lab} is used for both {names[lab]!r} and {name!r}")
            if name:
                names[lab] = name
            names.setdefault(lab, "")
        top = max(names) + 1 if names else 0
        class_names = [names.get(i) or str(i) for i in range(top)]
        if len(set(class_names)) != len(class_names):
            class_names = [f"{i}:{n}" for i, n in enumerate(class_names)]
        return class_names, "int"
    col = "label" if any(v != "" for v in raw_labels) else names_col
    return (sorted({r.get(col, "") for r in rows} - {""}) if col else []), col


def label_index(row: dict, class_names: list, mode: Optional[str]) -> int:
    """The label of one row under :func:`label_scheme`'s ``(class_names, mode)``; -1 when it has none."""
    if mode == "int":
        v = row.get("label", "")
        return -1 if v == "" else max(_int_or_none(v), -1)
    value = row.get(mode, "") if mode else ""
    return class_names.index(value) if value in class_names else -1

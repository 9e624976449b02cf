"""Where a dataset lies: a local path, a Hub dataset repo, or any fsspec URL, listed and opened through fsspec.

``data_dir`` (the builder's, and every script's ``--train_data_dir``) is read as:

* an existing local path: a local dataset (the ``folder`` / ``ucf101`` / ``csv`` layouts read it with ``os``);
* a URL with a protocol (``hf://datasets/user/repo/sub``, ``s3://bucket/videos``, ``memory://...``) or an fsspec
  chain such as ``filecache::hf://datasets/user/repo`` (a local copy of each file read: the "local cache" a user asks
  for; ``simplecache::`` keeps it for the session only); ``file://`` URLs are local paths;
* otherwise ``owner/name`` (optionally ``owner/name@revision``): the Hub dataset repo ``hf://datasets/owner/name``.

The Hub is read with ``huggingface_hub.HfFileSystem``, the file system ``datasets`` streams Hub repos with; other
protocols need their fsspec package (``s3fs``, ``gcsfs``, ...) and take ``storage_options``. Listing a remote root
is one recursive ``find`` (sizes and versions included), and files are opened as seekable remote files that
fetch only the byte ranges that are read: nothing is downloaded whole.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Optional

from .video_source import url_version

__all__ = ["DataLocation", "RemoteFile", "is_remote_location", "resolve_location"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[^/\s]+)?$")


def _is_url(text: str) -> bool:
    return "://" in text or "::" in text


def is_remote_location(data_dir) -> bool:
    """True when ``data_dir`` names a Hub repo or a non-local fsspec URL (see the module docstring)."""
    if data_dir is None or isinstance(data_dir, os.PathLike) or not isinstance(data_dir, str):
        return False
    if data_dir.startswith("file://"):
        return False
    if _is_url(data_dir):
        return True
    return not os.path.exists(os.path.expanduser(data_dir)) and bool(_HUB_ID.match(data_dir))


@dataclass(frozen=True)
class RemoteFile:
    """A file below a :class:`DataLocation`: ``rel`` (POSIX path relative to the root; "" when the root is the
    file itself), ``size`` in bytes (None when the listing does not say, e.g. HTTP) and ``version`` (see
    :func:`~hf_vidtok.data.video_source.url_version`)."""

    rel: str
    size: Optional[int]
    version: Optional[str]


@dataclass
class DataLocation:
    """A dataset root on an fsspec file system: ``url`` (what :meth:`url_of` builds on; a plain path for local
    data), ``fs`` and ``root`` (the file system and the root's path on it), ``storage_options`` (for reopening)."""

    url: str
    fs: object
    root: str
    storage_options: dict = field(default_factory=dict)
    remote: bool = True
    given: str = ""  # data_dir as the user gave it

    def __post_init__(self):
        self.given = self.given or self.url

    def is_file(self) -> bool:
        """True when the root is one file (a CSV, a tar or Parquet shard), not a folder."""
        return len(self.files()) == 1 and self.files()[0].rel == ""

    def files(self) -> list:
        """Every file below the root (or the root itself when it is a file), sorted by path components; listed once."""
        if getattr(self, "_files", None) is None:
            self._files = self._list()
        return self._files

    def _list(self) -> list:
        root = self.root.rstrip("/")
        try:
            found = {p.rstrip("/"): i for p, i in self.fs.find(self.root, detail=True).items()
                     if i.get("type", "file") == "file"}
            if not found or set(found) == {root}:  # the root itself is a file (HTTP lists nothing for one)
                if not self.fs.exists(self.root):
                    raise ValueError(f"data_dir {self.given!r} does not exist ({self.url!r} holds nothing)")
                info = found.get(root) or self.fs.info(self.root)
                return [RemoteFile("", _size(info), url_version(info))]
        except OSError as e:  # FileNotFoundError, or no connection (HF_HUB_OFFLINE=1 included)
            if self.given != self.url:  # an owner/name that is no local path: read as a Hub dataset repo
                raise ValueError(f"data_dir {self.given!r} is not an existing local path, and as the Hub dataset repo "
                                 f"{self.url!r} it cannot be listed: {type(e).__name__}: {e}") from e
            raise ValueError(f"data_dir {self.url!r} cannot be listed: {type(e).__name__}: {e}") from e
        out = []
        for path, info in found.items():
            rel = path[len(root) + 1:] if root and path.startswith(root + "/") else posixpath.relpath(path, root or "/")
            out.append(RemoteFile(rel, _size(info), url_version(info)))
        return sorted(out, key=lambda f: tuple(f.rel.split("/")))

    def url_of(self, rel: str) -> str:
        """The URL (or local path) of ``rel`` below the root, to open with :meth:`open` or fsspec."""
        if not rel:
            return self.url
        return os.path.join(self.url, *rel.split("/")) if not self.remote else self.url.rstrip("/") + "/" + rel

    def open(self, rel: str, mode: str = "rb"):
        """``rel`` opened for reading (seekable; remote files read ranges on demand)."""
        path = self.root if not rel else self.root.rstrip("/") + "/" + rel
        return self.fs.open(path, mode)


def _size(info: dict) -> Optional[int]:
    return None if info.get("size") is None else int(info["size"])


def resolve_location(data_dir, storage_options: Optional[dict] = None) -> DataLocation:
    """``data_dir`` as a :class:`DataLocation` (see the module docstring; local paths too, on fsspec's local file
    system). ``ValueError`` when fsspec has no file system for the URL's protocol."""
    import fsspec

    storage_options = dict(storage_options or {})
    if not is_remote_location(data_dir):
        path = os.fspath(data_dir)
        if path.startswith("file://"):
            path = path[len("file://"):]
        path = os.path.normpath(os.path.abspath(os.path.expanduser(path)))
        return DataLocation(path, fsspec.filesystem("file"), path, storage_options, remote=False)
    url = data_dir if _is_url(data_dir) else f"hf://datasets/{data_dir}"
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
    except (ImportError, ValueError) as e:
        raise ValueError(f"data_dir {data_dir!r}: no fsspec file system for it ({type(e).__name__}: {e})") from e
    return DataLocation(url.rstrip("/"), fs, root, storage_options, given=data_dir)

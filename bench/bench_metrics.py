"""Throughput of the metric networks: LPIPS (VGG16) and I3D feature extraction, in clips/s.

    python bench/bench_metrics.py [--device cuda] [--batch_size 4] [--num_frames 16] [--resolution 128]

Prints one JSON object per measurement. Weights are random unless ``--lpips_weights`` /
``--i3d_weights`` are given (speed does not depend on the values). LPIPS is timed on
(real, reconstructed) clip pairs, all frames; I3D includes the FVD preprocessing (resize to
224x224, [-1, 1]). ``--mode train`` times LPIPS forward + backward w.r.t. the input (loss use).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from hf_vidtok.metrics import FVD, LPIPS, InceptionI3D


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), sorted(times)[len(times) // 2]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--num_frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--mode", default="eval", choices=["eval", "train"])
    p.add_argument("--lpips_weights", default=None)
    p.add_argument("--i3d_weights", default=None)
    p.add_argument("--only", nargs="+", default=["lpips", "i3d"], choices=["lpips", "i3d"])
    args = p.parse_args(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    shape = (args.batch_size, 3, args.num_frames, args.resolution, args.resolution)
    real = torch.rand(shape, generator=g).to(device)
    fake = (real + 0.05 * torch.randn(shape, generator=g).to(device)).clamp(0, 1)
    common = {
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch_size": args.batch_size,
        "num_frames": args.num_frames, "resolution": args.resolution, "dtype": args.dtype,
    }  # fmt: skip

    if "lpips" in args.only:
        lpips = (LPIPS.from_pretrained(args.lpips_weights) if args.lpips_weights else LPIPS()).to(device, dtype)

        def run_lpips():
            if args.mode == "train":
                x = fake.to(dtype).requires_grad_(True)
                lpips(x, real.to(dtype)).mean().backward()
            else:
                with torch.no_grad():
                    lpips(fake.to(dtype), real.to(dtype))

        best, median = _time(run_lpips, device, args.warmup, args.repeats)
        print(json.dumps({"bench": "lpips_vgg", "mode": args.mode, **common, "seconds_per_batch": round(best, 4),
                          "median_seconds": round(median, 4), "clips_per_s": round(args.batch_size / best, 3),
                          "frames_per_s": round(args.batch_size * args.num_frames / best, 2)}), flush=True)  # fmt: skip

    if "i3d" in args.only:
        i3d = InceptionI3D.from_pretrained(args.i3d_weights) if args.i3d_weights else InceptionI3D()
        fvd = FVD(i3d.to(device, dtype))
        best, median = _time(lambda: fvd.extract_features(fake), device, args.warmup, args.repeats)
        print(json.dumps({"bench": "i3d_features", **common, "seconds_per_batch": round(best, 4),
                          "median_seconds": round(median, 4), "clips_per_s": round(args.batch_size / best, 3)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Training-step throughput of the LARP recipe (training/train_tokenizer.py's ``train_step``), one JSON
object per measurement on stdout.

    python bench/bench_train.py                      # tiny demo config on CPU: steps/s, clips/s
    python bench/bench_train.py --device cuda        # LARP-L 16x128x128, batch 16, bf16, eager + compiled

Each measurement runs the real step (tokenizer forward with prior CE, discriminator update every
``disc_update_freq`` steps, L1 + LPIPS + GAN + VQ + prior losses, backward, Adam) on synthetic smooth
clips, so data loading is excluded (see bench/bench_data.py). On CUDA the LPIPS network has random
weights (same cost as the real one; no download). Target on one H100: >= 134 clips/s compiled (1.5x the
official code's 89).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling device_info.py
from device_info import cpu_model_name  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "training" / "train_tokenizer.py"
TINY = REPO / "training" / "configs" / "larp_tiny_samples.yaml"
LARP_L = REPO / "training" / "configs" / "larp_l_ucf101_k600.yaml"


def _load_script():
    """train_tokenizer.py's functions (``runpy``: the script is not a package module)."""
    return SimpleNamespace(**runpy.run_path(str(SCRIPT), run_name="train_tokenizer"))


def synthetic_clips(batch: int, config, device, seed: int = 0) -> torch.Tensor:
    """Smooth moving colour patterns ``(B, C, T, H, W)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(config.frame_num).view(1, 1, -1, 1, 1).float()
    y = torch.arange(config.input_size).view(1, 1, 1, -1, 1).float()
    x = torch.arange(config.input_size).view(1, 1, 1, 1, -1).float()
    phase = torch.rand(batch, config.in_channels, 1, 1, 1, generator=g) * 6.28
    freq = 0.05 + 0.2 * torch.rand(batch, 1, 1, 1, 1, generator=g)
    return (0.5 + 0.45 * torch.sin(freq * (x + 0.7 * y) + 0.4 * t + phase)).to(device)


def measure(mode: str, config_path: Path, device: str, batch: int, steps: int, warmup: int, overrides: list[str],
            compile_backend: str = "inductor") -> dict:
    import accelerate

    tt = _load_script()
    from hf_vidtok.training import setup_accelerator

    out_dir = os.path.join("/tmp", f"bench_train_{os.getpid()}")
    argv = ["--config", str(config_path), "--output_dir", out_dir, "--train_batch_size", str(batch),
            "--perceptual_weight", "0", "--train_data_dir", "synthetic", *overrides]
    if mode == "compiled":  # the script's own flag: step numbers become tensors (no recompile per step)
        argv += ["--torch_compile", "--torch_compile_backend", compile_backend]
    if device == "cuda":
        argv += ["--mixed_precision", "bf16"]
    args = tt.parse_args(argv)
    if device == "cpu" and args.torch_num_threads:
        torch.set_num_threads(args.torch_num_threads)
    accelerator = setup_accelerator(
        out_dir, mixed_precision=args.mixed_precision, cpu=device == "cpu",
        dynamo_backend=compile_backend if mode == "compiled" else None,
    )
    torch.manual_seed(0)
    model = tt.build_model(args)
    c = tt.build_components(args, accelerator, model)
    if device == "cuda":
        from hf_vidtok.metrics import LPIPS

        # random LPIPS weights: same cost as the real ones
        c.generator_objective.lpips = LPIPS().to(accelerator.device).eval().requires_grad_(False)
        c.generator_objective.perceptual_weight = args.perceptual_weight = 1.0
    clips = synthetic_clips(batch, model.config, accelerator.device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_compile = time.perf_counter()
    step = 0
    for _ in range(warmup):
        step += 1
        tt.train_step(args, accelerator, c, clips, step)
    sync()
    warm_s = time.perf_counter() - t_compile
    start = time.perf_counter()
    for _ in range(steps):
        step += 1
        logs = tt.train_step(args, accelerator, c, clips, step)
    sync()
    elapsed = time.perf_counter() - start
    result = {
        "bench": "train_tokenizer_step",
        "config": config_path.name,
        "mode": mode,
        "compile_backend": compile_backend if mode == "compiled" else None,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else cpu_model_name(),
        "threads": torch.get_num_threads(),
        "batch_size": batch,
        "clip": [model.config.frame_num, model.config.input_size, model.config.input_size],
        "mixed_precision": args.mixed_precision or "no",
        "perceptual": device == "cuda",
        "disc_update_freq": args.disc_update_freq,
        "steps": steps,
        "steps_per_s": steps / elapsed,
        "clips_per_s": steps * batch / elapsed,
        "warmup_s": warm_s,
        "final_loss": float(logs["loss"]),
        "params_tokenizer": sum(p.numel() for p in accelerator.unwrap_model(c.model).parameters()),
    }
    if device == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    accelerator.end_training()
    accelerate.state.AcceleratorState._reset_state(True)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch_size", type=int, default=None, help="default: 8 (CPU tiny) / 16 (CUDA LARP-L)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--modes", default=None, help="comma list of eager,compiled (CUDA default: both; CPU: eager)")
    p.add_argument("--compile_backend", default="inductor", help="torch.compile backend of the compiled mode")
    p.add_argument("--config", default=None, help="recipe YAML (default: LARP-L on CUDA, the tiny recipe on CPU)")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        config, batch, steps, warmup = Path(a.config or LARP_L), a.batch_size or 16, a.steps or 20, a.warmup or 10
        modes = (a.modes or "eager,compiled").split(",")
    else:
        config, batch, steps, warmup = Path(a.config or TINY), a.batch_size or 8, a.steps or 20, a.warmup or 3
        modes = (a.modes or "eager").split(",")
    for mode in modes:
        print(json.dumps(measure(mode, config, a.device, batch, steps, warmup, [], a.compile_backend)), flush=True)


if __name__ == "__main__":
    main()

"""EVATok stage-2 scoring benchmark: clips/s scoring all m^T assignments with the prefix tree vs brute force.

Prints one JSON object per measurement, then one with the ratio (target >= 2.5x wall-clock; the work ratio
is m^T * T / sum_t m^t = 2500 / 780 = 3.2 at 5 levels x 4 blocks) and the largest tree-vs-brute difference.

CPU (default): a small config (16x64x64 clips, 4 blocks, levels 4..64 = 625 assignments, width 128,
2+2 layers), MSE + SSIM per block, fp32.
GPU (``--device cuda``): the paper's 145M config (16x128x128, levels 32..512) in bf16 weights, plus LPIPS-VGG
(random weights: same cost as the real ones), and the projected GPU-hours to score 100k clips (the paper:
4 x 64 V100 x 12.5 h = 3200 V100-hours).

    python bench/bench_scoring.py [--device cuda] [--batch_size 2] [--threads 1] [--no_brute_force] [--lpips]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.evatok.assignments import num_prefix_nodes
from hf_vidtok.evatok.scoring import score_assignments, score_assignments_brute_force

CONFIGS = {
    "tiny": dict(  # the smoke run of bench/run_all.py: 2 blocks x 3 levels = 9 assignments
        image_size=16, num_frames=4, patch_size=8, temporal_patch_size=2, token_levels=(1, 2, 4), hidden_size=32,
        num_attention_heads=2, encoder_layers=1, decoder_layers=1, codebook_size=64, code_dim=8,
    ),
    "small": dict(
        image_size=64, num_frames=16, patch_size=8, temporal_patch_size=4, token_levels=(4, 8, 16, 32, 64),
        hidden_size=128, num_attention_heads=4, encoder_layers=2, decoder_layers=2, codebook_size=1024,
    ),
    "evatok_145m": dict(),  # the paper's tokenizer: 16x128x128, levels 32..512, codebook 16384
}
PAPER_V100_HOURS = 4 * 64 * 12.5


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, repeats):
    """(wall seconds, process CPU seconds, result) per call. On a shared CPU the process CPU time is the robust
    figure (wall-clock also counts the time other processes hold the cores)."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        out = fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeats, (time.process_time() - c0) / repeats, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", default=None, help="tiny | small | evatok_145m (default: small on CPU, evatok_145m on CUDA)")
    p.add_argument("--batch_size", type=int, default=None, help="clips per lockstep batch (default 2 CPU / 16 CUDA)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--lpips", action="store_true", help="also LPIPS-VGG per block (always on with CUDA)")
    p.add_argument("--no_brute_force", action="store_true", help="skip the brute-force reference")
    p.add_argument("--num_clips_projection", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = args.config or ("evatok_145m" if device.type == "cuda" else "small")
    batch = args.batch_size or (16 if device.type == "cuda" else 2)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    config = EvatokTokenizerConfig(**CONFIGS[name])
    model = EvatokTokenizer(config).to(device=device, dtype=dtype).eval()
    lpips = None
    if args.lpips or device.type == "cuda":
        from hf_vidtok.metrics import LPIPS

        lpips = LPIPS().to(device)  # random weights: timing only
    h, w = config.image_hw
    x = torch.rand(batch, config.in_channels, config.num_frames, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    levels, nb = tuple(config.token_levels), config.num_blocks
    nodes, num_assign = num_prefix_nodes(levels, nb), len(levels) ** nb
    common = {
        "bench": "scoring", "config": name, "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "batch_size": batch, "levels": list(levels), "num_blocks": nb, "assignments": num_assign,
        "metrics": ["mse", "ssim"] + (["lpips"] if lpips is not None else []), "threads": torch.get_num_threads(),
    }
    with torch.no_grad():  # warm-up: a few blocks and one forward
        state = model.init_prefix_state(x)
        for k in levels[:2]:
            model.step_block(state, k)
        model(x, assignment=[levels[0]] * nb)
    sec, cpu, tree = _time(lambda: score_assignments(model, x, lpips=lpips), device, args.repeats)
    tree_cps = batch / sec
    row = dict(common, method="prefix_tree", block_reconstructions=nodes, clips_per_s=round(tree_cps, 4),
               seconds_per_clip=round(sec / batch, 4), cpu_seconds_per_clip=round(cpu / batch, 4))
    if device.type == "cuda":
        row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["projected_gpu_hours"] = round(args.num_clips_projection / tree_cps / 3600, 2)
        row["projected_for_clips"] = args.num_clips_projection
        row["paper_v100_hours"] = PAPER_V100_HOURS
    print(json.dumps(row), flush=True)
    if args.no_brute_force:
        return
    sec_b, cpu_b, brute = _time(lambda: score_assignments_brute_force(model, x, lpips=lpips), device, args.repeats)
    brute_cps = batch / sec_b
    row = dict(common, method="brute_force", block_reconstructions=num_assign * nb, clips_per_s=round(brute_cps, 4),
               seconds_per_clip=round(sec_b / batch, 4), cpu_seconds_per_clip=round(cpu_b / batch, 4))
    if device.type == "cuda":
        row["projected_gpu_hours"] = round(args.num_clips_projection / brute_cps / 3600, 2)
    print(json.dumps(row), flush=True)
    diff = (tree.block_values - brute.block_values).abs()
    print(json.dumps(dict(
        common, method="ratio", speedup=round(tree_cps / brute_cps, 3), cpu_time_speedup=round(cpu_b / cpu, 3), target=2.5,
        work_ratio=round(num_assign * nb / nodes, 3), meets_target=bool(tree_cps / brute_cps >= 2.5),
        max_abs_diff_mse=float(diff[..., 0].max()), max_abs_diff_ssim=float(diff[..., 1].max()),
    )), flush=True)


if __name__ == "__main__":
    main()

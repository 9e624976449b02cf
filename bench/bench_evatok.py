"""EVATok tokenizer speed benchmark; prints one JSON object per measurement.

Encode+decode clips/s under random per-clip assignments (uniform over all candidates: mean 793.6 of
2048 tokens at the paper's levels, scaled with the config) and under the uniform baseline (256 per
block at the paper's levels, scaled), and the training step (forward + backward + Adam) time.

CPU (default): a small config (16x64x64 clips, 8x8 block maps, levels 4..64, width 256, 3+3 layers), batch 8.
GPU (``--device cuda``): the paper's 145M config (16x128x128, levels 32..512) in bf16, eager and compiled
(the Q-Former layers compiled with dynamic shapes), encode+decode at batch 32, train at batch 16, peak memory.

    python bench/bench_evatok.py [--device cuda] [--configs small,evatok_145m] [--steps 3]

Random batches are run as one padded batch (``length_group_size=0``) and in 4 length-sorted groups
(``length_group_size=batch/4``); training also in 4 length-sorted micro-batches (gradient accumulation), so
the cost of padding is visible.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.training.assignment_sampling import length_sorted_micro_batches

CONFIGS = {
    "small": dict(
        image_size=64, num_frames=16, patch_size=8, temporal_patch_size=4, token_levels=(4, 8, 16, 32, 64),
        hidden_size=256, num_attention_heads=4, encoder_layers=3, decoder_layers=3, codebook_size=4096,
    ),
    "evatok_145m": dict(),  # the paper's tokenizer: 16x128x128, levels 32..512, codebook 16384
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timeit(fn, device, warmup, steps):
    """(mean, best) seconds per call over ``steps`` timed calls; the best is robust to a busy machine."""
    for i in range(warmup):
        fn(i)
    _sync(device)
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        fn(warmup + i)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sum(times) / steps, min(times)


def _uniform_level(config) -> int:
    """The level playing the paper's 256 (of levels 32..512): the second largest."""
    levels = config.token_levels
    return levels[-2] if len(levels) > 1 else levels[0]


def bench(name, device, batch_infer, batch_train, steps, warmup, dtype, compile_model):
    torch.manual_seed(0)
    config = EvatokTokenizerConfig(**CONFIGS[name])
    model = EvatokTokenizer(config).to(device)
    shape = (config.in_channels, config.num_frames, *config.image_hw)
    nb = config.num_blocks
    uniform = (_uniform_level(config),) * nb
    draws = [model.random_assignment(max(batch_infer, batch_train), torch.Generator().manual_seed(s)) for s in range(steps + warmup)]
    base = dict(config=name, device=str(device), dtype=str(dtype).replace("torch.", ""), compiled=compile_model,
                params=sum(p.numel() for p in model.parameters()), max_tokens=config.max_tokens)
    results = []

    infer = EvatokTokenizer(config).to(device).eval()
    infer.load_state_dict(model.state_dict())
    if dtype != torch.float32:
        infer = infer.to(dtype)
    if compile_model:
        for layer in (*infer.encoder_layers, *infer.decoder_layers):
            layer.compile(dynamic=True)
    x = torch.rand(batch_infer, *shape, device=device)
    group = max(1, batch_infer // 4)
    modes = [("uniform", None, 0), ("random_padded", "random", 0), ("random_grouped", "random", group)]
    fns = {}
    for mode, kind, group in modes:

        def roundtrip(i, kind=kind, group=group):
            a = draws[i][:batch_infer] if kind == "random" else uniform
            with torch.no_grad():
                enc = infer.encode(x, a, length_group_size=group)
                return infer.decode(enc.indices, enc.token_counts, length_group_size=group)

        fns[mode] = roundtrip
    # modes interleaved step by step, so that a busy machine slows them alike
    times = {mode: [] for mode in fns}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        for mode, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn(i)
            _sync(device)
            if i >= warmup:
                times[mode].append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    for mode, kind, group in modes:
        sec, best = sum(times[mode]) / steps, min(times[mode])
        mean_tokens = sum(uniform) if kind is None else float(torch.stack(draws[warmup:]).sum(-1).float().mean())
        rec = dict(bench="evatok_encode_decode", mode=mode, batch=batch_infer, length_group_size=group,
                   mean_tokens=round(mean_tokens, 1),
                   seconds_per_batch=round(sec, 5), best_seconds_per_batch=round(best, 5),
                   clips_per_s=round(batch_infer / sec, 2), best_clips_per_s=round(batch_infer / best, 2), **base)
        if device.type == "cuda":
            rec["peak_memory_gib_all_modes"] = peak
        results.append(rec)
    del infer

    # ---- training step: forward + L1 + VQ losses + backward + Adam, autocast in `dtype` on GPU
    model.train()
    if compile_model:
        for layer in (*model.encoder_layers, *model.decoder_layers):
            layer.compile(dynamic=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9))
    xt = torch.rand(batch_train, *shape, device=device)
    micro = 4
    for mode, kind, num_micro in (("uniform", None, 1), ("random_padded", "random", 1), ("random_microbatched", "random", micro)):

        def train_step(i):
            a = draws[i][:batch_train] if kind == "random" else torch.tensor(uniform).expand(batch_train, nb)
            for idx in length_sorted_micro_batches(a, num_micro):
                idx_dev = idx.to(device)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    out = model(xt[idx_dev], a[idx])
                    loss = (out.reconstruction.float() - xt[idx_dev]).abs().mean() + 0.25 * out.commitment_loss
                    loss = loss + out.codebook_loss + 0.02 * out.entropy_loss
                (loss * (len(idx) / batch_train)).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sec, best = _timeit(train_step, device, warmup, steps)
        rec = dict(bench="evatok_train_step", mode=mode, batch=batch_train, micro_batches=num_micro,
                   seconds_per_step=round(sec, 5), best_seconds_per_step=round(best, 5),
                   clips_per_s=round(batch_train / sec, 2), **base)
        if device.type == "cuda":
            rec["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        results.append(rec)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", default=None, help="comma list of: " + ",".join(CONFIGS))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--no_compile", action="store_true", help="GPU: skip the compiled runs")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        names = (args.configs or "evatok_145m").split(",")
        runs = [(n, 32, 16, torch.bfloat16, c) for n in names for c in ([False] if args.no_compile else [False, True])]
        steps, warmup = args.steps or 10, args.warmup or 3
    else:
        names = (args.configs or "small").split(",")
        runs = [(n, 8, 8, torch.float32, False) for n in names]
        steps, warmup = args.steps or 3, args.warmup or 1
    for name, bi, bt, dtype, comp in runs:
        for rec in bench(name, device, bi, bt, steps, warmup, dtype, comp):
            rec["torch_threads"] = torch.get_num_threads()
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()

"""EVATok tokenizer speed benchmark; prints one JSON object per measurement.

Encode+decode clips/s under random per-clip assignments (uniform over all candidates: mean 793.6 of
2048 tokens at the paper's levels, scaled with the config) and under the uniform baseline (256 per
block at the paper's levels, scaled), and the training step (forward + backward + Adam) time.

CPU (default): a small config (16x64x64 clips, 8x8 block maps, levels 4..64, width 256, 3+3 layers), batch 8.
GPU (``--device cuda``): the paper's 145M config (16x128x128, levels 32..512) in bf16, eager and compiled, encode+decode
at batch 32, train at batch 16, peak memory.

    python bench/bench_evatok.py [--device cuda] [--configs small,evatok_145m] [--steps 3] [--modes eager,compiled]

Eager: random batches are run as one padded batch (``length_group_size=0``) and in 4 length-sorted groups
(``length_group_size=batch/4``); training also in 4 length-sorted micro-batches (gradient accumulation), so the cost
of padding is visible. Compiled: ``encode``, ``decode`` and the training forward are compiled whole
(``fullgraph=True``); a random batch is padded to the static ``max_tokens`` (``random_padded``) or, as
``train_tokenizer.py --torch_compile`` does, to its longest total rounded up to the largest level
(``random_bucketed``, ``static_padded_length``: at most ``num_blocks`` widths, so a few graphs).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.training.assignment_sampling import length_sorted_micro_batches, static_padded_length

CONFIGS = {
    "tiny": dict(  # the smoke run of bench/run_all.py
        image_size=16, num_frames=4, patch_size=8, temporal_patch_size=2, token_levels=(1, 2, 4), hidden_size=32,
        num_attention_heads=2, encoder_layers=1, decoder_layers=1, codebook_size=64, code_dim=8,
    ),
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


def bench(name, device, batch_infer, batch_train, steps, warmup, dtype, compile_model, compile_backend="inductor"):
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
    encode, decode = infer.encode, infer.decode
    if compile_model:
        encode = torch.compile(encode, fullgraph=True, backend=compile_backend)
        decode = torch.compile(decode, fullgraph=True, backend=compile_backend)
    x = torch.rand(batch_infer, *shape, device=device)
    multiple = max(config.token_levels)
    if compile_model:  # (mode, assignment kind, padded width: None = max_tokens (static), "bucket" = static_padded_length)
        modes = [("uniform", None, None), ("random_padded", "random", None), ("random_bucketed", "random", "bucket")]
    else:  # (mode, assignment kind, length_group_size)
        group = max(1, batch_infer // 4)
        modes = [("uniform", None, 0), ("random_padded", "random", 0), ("random_grouped", "random", group)]
    fns = {}
    for mode, kind, group in modes:

        def roundtrip(i, kind=kind, group=group):
            a = draws[i][:batch_infer] if kind == "random" else uniform
            kw = {"length_group_size": group}
            if compile_model:
                width = static_padded_length(a, multiple) if group == "bucket" else None
                kw = {} if width is None else {"max_length": width}
                a = a.to(device) if torch.is_tensor(a) else a
            with torch.no_grad():
                enc = encode(x, a, **kw)
                return decode(enc.indices, enc.token_counts, **({} if compile_model else kw))

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
        rec = dict(bench="evatok_encode_decode", mode=mode, batch=batch_infer,
                   **({"padded_width": "bucketed" if group == "bucket" else config.max_tokens} if compile_model else
                      {"length_group_size": group}),
                   mean_tokens=round(mean_tokens, 1),
                   seconds_per_batch=round(sec, 5), best_seconds_per_batch=round(best, 5),
                   clips_per_s=round(batch_infer / sec, 2), best_clips_per_s=round(batch_infer / best, 2), **base)
        if device.type == "cuda":
            rec["peak_memory_gib_all_modes"] = peak
        results.append(rec)
    del infer

    # ---- training step: forward + L1 + VQ losses + backward + Adam, autocast in `dtype` on GPU
    model.train()
    forward = torch.compile(model, fullgraph=True, backend=compile_backend) if compile_model else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9))
    xt = torch.rand(batch_train, *shape, device=device)
    micro = 4
    for mode, kind, num_micro in (("uniform", None, 1), ("random_padded", "random", 1), ("random_microbatched", "random", micro)):

        def train_step(i):
            a = draws[i][:batch_train] if kind == "random" else torch.tensor(uniform).expand(batch_train, nb)
            for idx in length_sorted_micro_batches(a, num_micro):
                idx_dev = idx.to(device)
                width = static_padded_length(a[idx], multiple) if compile_model else None
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    out = forward(xt[idx_dev], a[idx], max_length=width)
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
    p.add_argument("--modes", default=None, help="comma list of eager,compiled (GPU default: both; CPU: eager)")
    p.add_argument("--compile_backend", default="inductor", help="torch.compile backend of the compiled mode")
    p.add_argument("--batch_size", type=int, default=None, help="encode+decode batch (default 32 GPU / 8 CPU); train: half on GPU")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--no_compile", action="store_true", help="GPU: skip the compiled runs (same as --modes eager)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    modes = (args.modes or ("eager" if args.no_compile or not gpu else "eager,compiled")).split(",")
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        names = (args.configs or "evatok_145m").split(",")
        bi = args.batch_size or 32
        runs = [(n, bi, max(1, bi // 2), torch.bfloat16, m == "compiled") for n in names for m in modes]
        steps, warmup = args.steps or 10, args.warmup or 3
    else:
        names = (args.configs or "small").split(",")
        bi = args.batch_size or 8
        runs = [(n, bi, bi, torch.float32, m == "compiled") for n in names for m in modes]
        steps, warmup = args.steps or 3, args.warmup or 1
    for name, bi, bt, dtype, comp in runs:
        for rec in bench(name, device, bi, bt, steps, warmup, dtype, comp, args.compile_backend):
            rec["torch_threads"] = torch.get_num_threads()
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()

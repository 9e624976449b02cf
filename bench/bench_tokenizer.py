"""Tokenizer speed benchmark; prints one JSON object per measurement.

CPU (default): a small config (16x64x64, width 256, depth 4, 256 tokens) and LARP-L at batch 1.
GPU (``--device cuda``): LARP-L (16x128x128, 1024 tokens) in bf16, eager and compiled:
encode+decode clips/s at batch 32, train (forward+backward+Adam, bf16 autocast) clips/s at batch 16,
and peak memory.

    python bench/bench_tokenizer.py [--device cuda] [--configs small,larp_l] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

CONFIGS = {
    "small": dict(
        frame_num=16, input_size=64, patch_size=8, temporal_patch_size=4, encoder_hidden_size=256,
        decoder_hidden_size=256, encoder_num_heads=4, decoder_num_heads=4, encoder_depth=4, decoder_depth=4,
        bottleneck_token_num=256, prior_name="gptc-XXS",
    ),
    "larp_l": dict(),  # the release: 16x128x128, 1024 tokens, width 768, depth 12, gptc-S prior
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timeit(fn, device, warmup, steps):
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def bench(name, device, batch_infer, batch_train, steps, warmup, dtype, compile_model):
    torch.manual_seed(0)
    config = LarpTokenizerConfig(**CONFIGS[name])
    model = LarpTokenizer(config).to(device)
    with torch.no_grad():
        model.output_layer.linear.weight.normal_(std=0.02)
    shape = (config.in_channels, config.frame_num, config.input_size, config.input_size)
    results = []

    # ---- encode + decode (eval, deterministic VQ)
    infer = LarpTokenizer(config).to(device).eval()
    infer.load_state_dict(model.state_dict())
    if dtype != torch.float32:
        infer = infer.to(dtype)
    encode, decode = infer.encode, infer.decode
    if compile_model:
        encode, decode = torch.compile(encode), torch.compile(decode)
    x = torch.rand(batch_infer, *shape, device=device)

    @torch.no_grad()
    def roundtrip():
        return decode(encode(x).indices)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sec = _timeit(roundtrip, device, warmup, steps)
    rec = dict(bench="tokenizer_encode_decode", config=name, device=str(device), dtype=str(dtype).replace("torch.", ""),
               compiled=compile_model, batch=batch_infer, seconds_per_batch=round(sec, 5),
               clips_per_s=round(batch_infer / sec, 2), tokens=config.bottleneck_token_num,
               params=sum(p.numel() for p in infer.parameters()))
    if device.type == "cuda":
        rec["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    results.append(rec)
    del infer

    # ---- training step (forward with prior + backward + Adam), autocast in `dtype` on GPU
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9))
    fwd = torch.compile(model) if compile_model else model
    xt = torch.rand(batch_train, *shape, device=device)
    step_counter = [0]

    def train_step():
        step_counter[0] += 1
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = fwd(xt, global_step=step_counter[0], max_steps=1000)
            loss = (out.reconstruction.float() - xt).abs().mean() + 0.1 * out.vq_loss + 0.06 * out.prior_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sec = _timeit(train_step, device, warmup, steps)
    rec = dict(bench="tokenizer_train_step", config=name, device=str(device), dtype=str(dtype).replace("torch.", ""),
               compiled=compile_model, batch=batch_train, seconds_per_step=round(sec, 5),
               clips_per_s=round(batch_train / sec, 2))
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
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        names = (args.configs or "larp_l").split(",")
        runs = [(n, 32, 16, torch.bfloat16, c) for n in names for c in ([False] if args.no_compile else [False, True])]
        steps, warmup = args.steps or 10, args.warmup or 3
    else:
        names = (args.configs or "small,larp_l").split(",")
        runs = [(n, 4 if n == "small" else 1, 4 if n == "small" else 1, torch.float32, False) for n in names]
        steps, warmup = args.steps or 3, args.warmup or 1
    for name, bi, bt, dtype, comp in runs:
        for rec in bench(name, device, bi, bt, steps, warmup, dtype, comp):
            rec["torch_threads"] = torch.get_num_threads()
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()

"""EVATok router cost per clip relative to the tokenizer's encode; prints one JSON object per measurement.

For each router configuration: router forward (eval, no grad) vs ``EvatokTokenizer.encode`` with the paper's
default architecture (16x128x128 clips, 4 blocks, levels 32..512, uniform 256 tokens per block), timed
back to back at the same batch size, as ms per clip and their ratio (target: router <= 5% of encode), plus their
forward FLOPs (``torch.utils.flop_counter``; the machine-independent ratio, as a loaded CPU makes timings noisy). Also the
selection itself (``select_from_scores`` with a per-clip cap and with an average budget over 1024 clips).

Router configurations: the presets of ``ROUTER_PRESETS``: ``paper`` (ViT-S, 12 layers, 4x8x8 patches on the
128 px clip: 1024 patch tokens), ``paper_64px`` (the same ViT-S on the clip resampled to 64 px: 256 patch tokens)
and ``fast`` (64 px, 6 layers).

    python bench/bench_router.py                       # CPU, batch 1, fp32
    python bench/bench_router.py --device cuda         # GPU, batch 32, bf16 autocast
    python bench/bench_router.py --tokenizer tiny --routers tiny --steps 1   # the smoke run of bench/run_all.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling bench_tokenizer.py

from bench_tokenizer import _timeit  # noqa: E402
from bench_evatok import CONFIGS as TOKENIZER_CONFIGS  # noqa: E402

from hf_vidtok import EvatokRouter, EvatokRouterConfig, EvatokTokenizer, EvatokTokenizerConfig  # noqa: E402
from hf_vidtok.models.evatok.configuration_evatok_router import ROUTER_PRESETS  # noqa: E402

#: A router for bench_evatok's tiny tokenizer (smoke runs only).
TINY_ROUTER = dict(token_levels=(1, 2, 4), num_blocks=2, image_size=16, num_frames=4, patch_size=8, temporal_patch_size=2,
                   hidden_size=32, num_attention_heads=2, num_hidden_layers=1)



def _gflops(fn) -> float:
    """Forward GFLOPs counted by ``torch.utils.flop_counter`` (matmuls, convolutions, attention): machine-independent."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _params(model) -> float:
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


@torch.no_grad()
def bench(args):
    device = torch.device(args.device)
    torch.manual_seed(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and not args.fp32)
    tok = EvatokTokenizer(EvatokTokenizerConfig(**TOKENIZER_CONFIGS[args.tokenizer])).to(device).eval()
    c = tok.config
    x = torch.rand(args.batch_size, c.in_channels, c.num_frames, c.image_size, c.image_size, device=device)
    level = c.token_levels[-2] if len(c.token_levels) > 1 else c.token_levels[0]  # the paper's 256 of 32..512
    assignment = torch.full((args.batch_size, c.num_blocks), level, dtype=torch.long, device=device)

    def encode():
        with autocast:
            return tok.encode(x, assignment=assignment).indices

    rows = []
    encode_s = encode_gflops = None
    for name in args.routers.split(","):
        preset = TINY_ROUTER if name == "tiny" else ROUTER_PRESETS[name]
        router = EvatokRouter(EvatokRouterConfig(**preset)).to(device).eval()

        def route():
            with autocast:
                return router(x).scores

        # interleave so that both see the same machine load; encode is re-timed for every router
        r_s = _timeit(route, device, args.warmup, args.steps)
        e_s = _timeit(encode, device, args.warmup, args.steps)
        encode_s = e_s if encode_s is None else min(encode_s, e_s)
        encode_gflops = encode_gflops if rows else _gflops(encode)
        router_gflops = _gflops(route)
        rows.append({
            "bench": "router_vs_encode", "device": device.type, "router": name, "batch_size": args.batch_size,
            "dtype": "bf16" if device.type == "cuda" and not args.fp32 else "fp32",
            "router_params_M": _params(router), "tokenizer_params_M": _params(tok),
            "router_patch_tokens": router.config.num_patches,
            "router_ms_per_clip": round(1e3 * r_s / args.batch_size, 3),
            "encode_ms_per_clip": round(1e3 * e_s / args.batch_size, 3),
            "router_over_encode": round(r_s / e_s, 4),
            "router_gflops_per_clip": round(router_gflops / args.batch_size, 3),
            "encode_gflops_per_clip": round(encode_gflops / args.batch_size, 3),
            "flop_ratio": round(router_gflops / encode_gflops, 4),
        })
        print(json.dumps(rows[-1]), flush=True)

        scores = torch.randn(1024, router.config.num_assignments, device=device)
        # the paper's cap 768 and mean 700 of 2048 tokens, scaled to the tokenizer
        cap, target = int(c.max_tokens * 768 / 2048), c.max_tokens * 700 / 2048
        for label, kwargs in (("cap", {"max_tokens": cap}), ("target_mean", {"target_mean_tokens": target})):
            s = _timeit(lambda: router.select_from_scores(scores, **kwargs), device, 1, args.steps)
            print(json.dumps({"bench": "select_from_scores", "device": device.type, "router": name, "mode": label,
                              "num_clips": 1024, "ms_total": round(1e3 * s, 3),
                              "us_per_clip": round(1e6 * s / 1024, 3)}), flush=True)
        del router
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_size", type=int, default=None, help="default: 1 on CPU, 32 on GPU")
    p.add_argument("--routers", default="paper,paper_64px,fast", help="presets of ROUTER_PRESETS (or tiny)")
    p.add_argument("--tokenizer", default="evatok_145m", choices=sorted(TOKENIZER_CONFIGS),
                   help="the tokenizer config of bench_evatok.py the router's cost is compared with")
    p.add_argument("--steps", type=int, default=None, help="timed iterations (default: 3 on CPU, 20 on GPU)")
    p.add_argument("--warmup", type=int, default=None, help="default: 1 on CPU, 5 on GPU")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast on GPU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    args.batch_size = args.batch_size or (32 if gpu else 1)
    args.steps = args.steps or (20 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    unknown = [r for r in args.routers.split(",") if r not in ROUTER_PRESETS and r != "tiny"]
    if unknown:
        raise ValueError(f"`--routers`: unknown {unknown}, choose from {sorted(ROUTER_PRESETS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    return bench(args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Intra-op CPU threads against model size: the measurements behind ``hf_vidtok.training.threads`` (the thread
count the scripts pick by themselves). One JSON object per measurement on stdout.

    python bench/bench_threads.py                 # tiny and mid-size LARP tokenizers, 1..all cores
    python bench/bench_threads.py --repeats 20

For each tokenizer (the quick-start's tiny one from ``training/configs/larp_tiny_samples.yaml``, and a larger one of
about 20M parameters) and each thread count it times the two loops the scripts run: an eval batch (encode + decode
of 16 clips, as scoring, extraction and evaluation do) and a training step (forward + backward of 8 clips). It reports
the median and best wall time and the count the policy picks (``default_torch_num_threads``). On a machine whose
cores other processes also use, the multi-thread times degrade most.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "training" / "configs" / "larp_tiny_samples.yaml"
# A mid-size tokenizer (same clips, ViT-S-like width): about 20M parameters.
MID = dict(encoder_hidden_size=384, decoder_hidden_size=384, encoder_num_heads=6, decoder_num_heads=6,
           encoder_depth=6, decoder_depth=6, prior_name=None)  # fmt: skip


def _models():
    from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

    tiny = yaml.safe_load(TINY.read_text())["model_config"]
    for name, kwargs in (("larp_tiny", tiny), ("larp_mid", {**tiny, **MID})):
        torch.manual_seed(0)
        yield name, LarpTokenizer(LarpTokenizerConfig(**kwargs))


def _time(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return times


def main(argv=None) -> None:
    from hf_vidtok.training.threads import available_cores, default_torch_num_threads

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=10, help="timed repetitions per measurement")
    p.add_argument("--max_threads", type=int, default=None, help="largest thread count (default: the cores)")
    args = p.parse_args(argv)
    cores = available_cores()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    for name, model in _models():
        params = sum(p.numel() for p in model.parameters())
        c = model.config
        eval_clips = torch.rand(16, c.in_channels, c.frame_num, c.input_size, c.input_size)
        train_clips = eval_clips[:8]

        def eval_batch():
            with torch.no_grad():
                model.eval().decode(model.encode(eval_clips).indices)

        def train_step():
            model.train()
            out = model(train_clips, global_step=0, max_steps=100)
            out.reconstruction.float().mean().backward()
            model.zero_grad(set_to_none=True)

        for threads in range(1, (args.max_threads or cores) + 1):
            torch.set_num_threads(threads)
            for loop, fn in (("eval_encode_decode_16", eval_batch), ("train_step_8", train_step)):
                times = _time(fn, args.repeats)
                print(json.dumps({
                    "bench": "threads", "model": name, "parameters": params, "loop": loop, "threads": threads,
                    "median_s": round(statistics.median(times), 5), "best_s": round(min(times), 5),
                    "policy_threads": default_torch_num_threads(params, cores=cores), "cores": cores, "cpu": cpu,
                }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

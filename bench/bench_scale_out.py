#!/usr/bin/env python
"""Time per step of every training script, and clips/s of scoring and extraction, at 1 and at N processes
(``accelerate launch --multi_gpu --num_processes N``; on CPU with ``ACCELERATE_USE_CPU=1``, gloo), one JSON object per
measurement on stdout.

    python bench/bench_scale_out.py --output_dir outputs/bench-scale-out [--num_processes 2] [--device cuda]

Every script runs as a user runs it, from the command line, on the tiny recipes of the sample videos:
``train_tokenizer.py`` (LARP ``larp_tiny_samples.yaml``, EVATok ``evatok_tiny_samples.yaml``), ``train_router.py``
(``evatok_router_tiny_samples.yaml``), ``train_ar.py`` (``ar_tiny_samples.yaml`` on extracted tokens),
``score_assignments.py`` and ``extract_tokens.py``. A training script's time per step is the difference of two runs
that differ only in their step count (``--short_steps`` and ``--long_steps``), divided by the step difference, so
start-up, the final validation and saving cancel out; the batch per process is the recipe's, so N processes train
N times the clips per step. Scoring and extraction report clips per second of the whole run (start-up included).
The inputs of the router (a score table) and of the AR model (a token dataset) are made first, at one process.
Report the CPU (``lscpu``) with the figures: on a 2-core machine two processes share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _launcher(n: int, port: int) -> list[str]:
    if n == 1:
        return [sys.executable]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]


def _run(cmd: list[str], log: Path, env: dict) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}); see {log}")
    return time.perf_counter() - t0


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--num_processes", type=int, default=2)
    p.add_argument("--short_steps", type=int, default=20)
    p.add_argument("--long_steps", type=int, default=80)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args(argv)
    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if args.device == "cpu":
        env["ACCELERATE_USE_CPU"] = "1"
    device = _cpu_name() if args.device == "cpu" else "cuda"
    quiet = ["--validation_steps", "100000", "--checkpointing_steps", "100000"]
    tok_quiet = quiet + ["--skip_initial_validation", "--num_validation_clips", "6"]
    py = "training/"
    scripts = {
        "train_tokenizer (LARP)": [py + "train_tokenizer.py", "--config", "training/configs/larp_tiny_samples.yaml", *tok_quiet],
        "train_tokenizer (EVATok)": [py + "train_tokenizer.py", "--config", "training/configs/evatok_tiny_samples.yaml", *tok_quiet],
    }
    results = []

    # inputs of the router and the AR model, made once at one process
    inputs = out / "inputs"
    inputs.mkdir(exist_ok=True)
    proxy, larp = inputs / "proxy", inputs / "larp"
    for folder, recipe in ((proxy, "evatok_tiny_samples.yaml"), (larp, "larp_tiny_samples.yaml")):
        if not (folder / "model.safetensors").is_file():
            _run([sys.executable, py + "train_tokenizer.py", "--config", f"training/configs/{recipe}", *tok_quiet,
                  "--max_train_steps", "10", "--output_dir", str(folder)], inputs / f"{folder.name}.log", env)
    data = str(proxy / "sample_data")
    score = [py + "score_assignments.py", "--tokenizer_name_or_path", str(proxy), "--train_data_dir", data,
             "--dataset_layout", "csv", "--split", "train", "--clips_per_video", "12", "--quality_metric", "ssim",
             "--torch_num_threads", "1"]
    extract = [py + "extract_tokens.py", "--tokenizer_name_or_path", str(larp), "--sample_videos", "--clips_per_video", "16",
               "--flip_augment", "--torch_num_threads", "1"]
    if not (inputs / "scores" / "score_table.json").is_file():
        _run([sys.executable, *score, "--output_dir", str(inputs / "scores")], inputs / "scores.log", env)
    if not (inputs / "tokens" / "token_info.json").is_file():
        _run([sys.executable, *extract, "--output_dir", str(inputs / "tokens")], inputs / "tokens.log", env)
    scripts["train_router"] = [py + "train_router.py", "--config", "training/configs/evatok_router_tiny_samples.yaml",
                               "--no-sample_videos", "--train_data_dir", data, "--score_table", str(inputs / "scores"),
                               "--validation_fraction", "0.34", "--torch_num_threads", "1", *quiet]
    scripts["train_ar"] = [py + "train_ar.py", "--config", "training/configs/ar_tiny_samples.yaml",
                           "--token_dataset", str(inputs / "tokens"), *quiet]

    port = 29400 + os.getpid() % 400
    for n in (1, args.num_processes):
        for name, cmd in scripts.items():
            times = {}
            for steps in (args.short_steps, args.long_steps):
                run = out / f"{name.split()[0]}-{name.split('(')[-1].rstrip(')') if '(' in name else 'x'}-{n}-{steps}"
                times[steps] = _run(_launcher(n, port) + cmd + ["--max_train_steps", str(steps), "--output_dir", str(run)],
                                    out / f"{run.name}.log", env)
            per_step = (times[args.long_steps] - times[args.short_steps]) / (args.long_steps - args.short_steps)
            row = {"script": name, "processes": n, "seconds_per_step": round(per_step, 4),
                   "steps_per_second": round(1.0 / per_step, 3), "device": device,
                   "wall_seconds": {str(k): round(v, 1) for k, v in times.items()}}
            results.append(row)
            print(json.dumps(row), flush=True)
        for name, cmd, clips in (("score_assignments", score, 36), ("extract_tokens", extract, 96)):
            seconds = _run(_launcher(n, port) + cmd + ["--output_dir", str(out / f"{name}-{n}")], out / f"{name}-{n}.log", env)
            row = {"script": name, "processes": n, "clips": clips, "seconds": round(seconds, 1),
                   "clips_per_second": round(clips / seconds, 3), "device": device}
            results.append(row)
            print(json.dumps(row), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()

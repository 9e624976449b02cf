#!/usr/bin/env python
"""EVATok's promise on mixed-complexity video: the final adaptive tokenizer with its router against fixed-length
tokenizers of the same recipe, at equal mean tokens, on held-out clips (issue "EVATok's promise, measured").

    python bench/bench_evatok_mixed.py --seed 0 --output_dir outputs/evatok-mixed/seed0
    python bench/bench_evatok_mixed.py --report outputs/evatok-mixed/seed0 outputs/evatok-mixed/seed1 ... \\
        --output_dir outputs/evatok-mixed

One seed runs every stage's real script in a subprocess, ``--jobs`` at a time in dependency order (one intra-op
thread each), and times it:

* ``data``: :mod:`hf_vidtok.data.mixed_complexity` (shared by the seeds: ``--data_dir``, written once);
* ``proxy`` (stage 1, random assignments) and ``fixed_K`` for every ``--fixed_levels`` K (``uniform:K``), all with
  ``training/configs/evatok_mixed.yaml`` and the same steps;
* ``score_train`` / ``score_held_out`` (stage 2, SSIM reward, or ``--quality_metric mse`` / ``lpips``), ``labels``,
  ``router`` (stage 3, ``evatok_mixed_router.yaml``);
* ``calibrate``: the preference w_q at which the router gives the *training* clips ``--target_mean_tokens`` tokens
  per clip on average (bisection; the held-out clips are not used);
* ``final`` (stage 4): the same tokenizer recipe on the router's assignments at that w_q;
* ``evaluate_proxy`` / ``evaluate_final`` / ``evaluate_fixed_K``: ``evaluate_adaptive.py --per_clip`` on the held-out
  clips.

Then it writes ``results.json`` and prints its figures as JSON lines:

* ``final_vs_fixed``: the final tokenizer + router at the calibrated w_q (and at every w_q / budget evaluated) against
  the fixed-length tokenizers at equal mean tokens (the fixed-length curve interpolated linearly in tokens between the
  two bracketing lengths: a realisable baseline, each clip coded by one of the two tokenizers), PSNR / SSIM gaps and
  the tokens saved at equal PSNR / SSIM;
* ``proxy``: router vs max-reward oracle vs uniform on the proxy (gaps at equal tokens, Eq. 8 percentile);
* ``categories``: mean tokens the final tokenizer's router gives each category (still / slow / fast / cut / video) and
  each block, on the held-out clips;
* ``reward_analysis`` (in ``results.json``): the max-reward oracle's tokens per category and the reward metric's gain
  per token, on the proxy's held-out score table; ``carry_analysis``: the proxy's PSNR per block and category when only
  block 0 gets the most tokens, i.e. how much of block 0's quality the later blocks keep (``carry_loss_db``);
  ``reference_codec``: the proxy's PSNR per category at every uniform level against a trivial code with no more
  bits per block (a k-means-palette thumbnail of each block), i.e. how much of its bits' worth it gets;
  ``repeat_analysis``: the max-reward oracle at mean budgets when a clip's last blocks may also *repeat* the previous
  block's reconstruction at no token cost (a level the tokenizer does not have; scored from the proxy's own
  reconstructions), against the score table's assignments alone.

``--lpips_weights PATH_OR_ID`` (hf_vidtok LPIPS safetensors: ``python -m hf_vidtok.metrics.convert_lpips_weights``)
adds LPIPS to every evaluation and figure (``final_vs_fixed``: ``gap_lpips``, negative is better, and the tokens saved
at equal LPIPS; a third panel in ``quality_cost.png``); a Hub id is fetched once here, the stages then run offline.
The score tables hold LPIPS only with ``--quality_metric lpips`` (the paper's reward): every clip's 256 assignments
through VGG, hours on a CPU.

The clips' size (``num_frames``, ``resolution``) is the tokenizer recipe's (``model_config``), so a recipe at another
resolution builds (and needs) its own ``--data_dir``. A recipe with a top-level ``frame_stride: S`` reads every S-th
frame: its clips are built with ``(num_frames - 1) * S + 1`` frames (the motion per built frame as always), and every
stage reads them at that stride (e.g. 4 frames at stride 4 with ``temporal_patch_size: 1``: one frame per block).

``--report DIRS`` aggregates seeds: ``report.json`` (every figure per seed, mean and spread), ``quality_cost.png``
(PSNR against mean tokens: fixed-length, final + router, proxy uniform / router / oracle, every seed) and
``held_out_grid.png`` (held-out clips of each category with the counts per block the router gives them).
``--proxy_only`` stops after the proxy's stages (proxy, scores, labels, router, calibration, the proxy's evaluation)
and writes their figures (``proxy``, ``reward_analysis``, ``carry_analysis``, ``repeat_analysis``): a recipe's reward
and carry in about a third of the time, without the final and fixed-length tokenizers. ``--smoke`` runs the same stages on a tiny data
set and tiny step counts (CI).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TOKENIZER_RECIPE = "training/configs/evatok_mixed.yaml"
ROUTER_RECIPE = "training/configs/evatok_mixed_router.yaml"
CATEGORIES = ("still", "slow", "fast", "cut", "video")
SMOKE_DATA = dict(clips_per_photograph=1, train_clips_per_video=1, held_out_clips_per_video=1,
                  photographs=("astronaut", "brick", "coffee", "grass", "moon", "rocket"))


def _recipe_clip_size(recipe: str) -> dict:
    """``num_frames`` / ``resolution`` of the benchmark clips the tokenizer recipe reads, and its ``frame_stride``
    (a top-level key of the recipe, as for ``train_tokenizer.py``; default 1): the recipe's tokenizers take
    ``model_config.num_frames`` frames, every ``frame_stride``-th, so the clips hold ``(num_frames - 1) *
    frame_stride + 1`` frames (a recipe of single-frame blocks, ``temporal_patch_size: 1``, spans the same time as
    the 16-frame recipe with 4 frames at stride 4)."""
    import yaml

    with open(recipe) as f:
        config = yaml.safe_load(f) or {}
    model = config.get("model_config") or {}
    size = model.get("image_size", 32)
    if not isinstance(size, int):
        raise ValueError(f"`--tokenizer_recipe` {recipe}: the benchmark's clips are square, got image_size {size!r}")
    stride = config.get("frame_stride", 1)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"`--tokenizer_recipe` {recipe}: `frame_stride` must be a positive int, got {stride!r}")
    frames = int(model.get("num_frames", 16))
    return {"num_frames": (frames - 1) * stride + 1, "resolution": size, "frame_stride": stride}


# ----------------------------------------------------------------------------------------------- stages


def stage_commands(args, out: str) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    """Every stage: (command, the stages it needs). ``final`` and the evaluations read ``calibrate``'s w_q at run
    time (``{w_q}`` in the command)."""
    py, data = sys.executable, args.data_dir
    lpips = ["--lpips_weights", args.lpips_weights] if args.lpips_weights else []
    # the tokenizers read frame_stride from their recipe, the router and evaluate_proxy / _final from the score
    # table; only given when not 1, so that the stages of earlier runs keep their signatures
    stride = _recipe_clip_size(args.tokenizer_recipe)["frame_stride"]
    stride = ["--frame_stride", str(stride)] if stride != 1 else []
    smoke = ["--max_train_steps", "4", "--validation_steps", "4", "--checkpointing_steps", "1000",
             "--num_validation_clips", "4", "--skip_initial_validation"] if args.smoke else []
    steps = ["--max_train_steps", str(args.steps)] if args.steps and not args.smoke else []
    tok = [py, "training/train_tokenizer.py", "--config", args.tokenizer_recipe, "--train_data_dir", data,
           "--seed", str(args.seed), *steps, *smoke, *args.tokenizer_args]
    score = [py, "training/score_assignments.py", "--train_data_dir", data, "--dataset_layout", "csv",
             "--tokenizer_name_or_path", f"{out}/proxy", "--quality_metric", args.quality_metric, "--batch_size", "8",
             "--torch_num_threads", "1", *stride, *(lpips if args.quality_metric == "lpips" else [])]
    evaluate = [py, "training/evaluate_adaptive.py", "--score_table", f"{out}/scores_held_out", "--per_clip",
                "--w_q", *map(str, args.eval_w_q), "{w_q}", "--target_mean_tokens", *map(str, args.budgets), *lpips]
    stages = {
        "proxy": (tok + ["--output_dir", f"{out}/proxy"], ()),
        "score_train": (score + ["--split", "train", "--output_dir", f"{out}/scores_train"], ("proxy",)),
        "score_held_out": (score + ["--split", "validation", "--output_dir", f"{out}/scores_held_out"], ("proxy",)),
        "labels": ([py, "training/label_assignments.py", "--score_table", f"{out}/scores_train",
                    "--output_dir", f"{out}/labels"], ("score_train",)),
        "router": ([py, "training/train_router.py", "--config", args.router_recipe, "--train_data_dir", data,
                    "--score_table", f"{out}/scores_train", "--validation_score_table", f"{out}/scores_held_out",
                    "--reward_stats", f"{out}/labels/reward_stats.json", "--seed", str(args.seed),
                    *(["--max_train_steps", "4", "--validation_steps", "4", "--train_batch_size", "2"] if args.smoke else []),
                    "--output_dir", f"{out}/router"], ("labels", "score_held_out")),
        "calibrate": (["calibrate"], ("router",)),
        "final": (tok + ["--router", f"{out}/router", "--router_w_q", "{w_q}", "--output_dir", f"{out}/final"],
                  ("router", "calibrate")),
        "evaluate_proxy": (evaluate + ["--tokenizer_name_or_path", f"{out}/proxy", "--router_name_or_path",
                                       f"{out}/router", "--output_dir", f"{out}/eval_proxy"], ("router", "calibrate")),
        "evaluate_final": (evaluate + ["--tokenizer_name_or_path", f"{out}/final", "--output_dir", f"{out}/eval_final"],
                           ("final", "score_held_out")),
    }
    if args.proxy_only:  # stages 1-3 and the proxy's evaluation: what the reward and the router make of a recipe
        return {name: stage for name, stage in stages.items() if name not in ("final", "evaluate_final")}
    fixed_tok = tok[:3] + [_fixed_recipe(args)] + tok[4:]  # (tok[3]: the tokenizer recipe)
    for k in args.fixed_levels:
        stages[f"fixed_{k}"] = (fixed_tok + ["--assignment_sampling", f"uniform:{k}", "--output_dir", f"{out}/fixed_{k}"], ())
        stages[f"evaluate_fixed_{k}"] = (
            [py, "training/evaluate_adaptive.py", "--tokenizer_name_or_path", f"{out}/fixed_{k}", "--no_router",
             "--data_dir", data, "--dataset_layout", "csv", "--split", "validation", "--per_clip",
             *stride, *lpips, "--output_dir", f"{out}/eval_fixed_{k}"], (f"fixed_{k}",))
    return stages


def _fixed_recipe(args) -> str:
    """The fixed-length tokenizers' recipe: ``--fixed_recipe``, else the tokenizer recipe."""
    return getattr(args, "fixed_recipe", None) or args.tokenizer_recipe


def _load_clips(data_dir: str, split: str, config, frame_stride: int = 1):
    """Every clip of ``split`` at ``config``'s size (a tokenizer or router config): ``(N, C, T, H, W)`` floats in
    [0, 1] and the category labels ``(N,)``."""
    import numpy as np
    import torch

    from hf_vidtok.data import load_video_dataset

    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    examples = list(load_video_dataset(data_dir, layout="csv", split=split, num_frames=config.num_frames,
                                       frame_stride=frame_stride, resolution=size, streaming=True))
    videos = torch.from_numpy(np.stack([ex["video"] for ex in examples])).permute(0, 4, 1, 2, 3).float() / 255
    return videos, np.asarray([ex["label"] for ex in examples])


def _w_q_spending(mean_tokens, target: float, steps: int) -> float:
    """The smallest w_q in [0, 2] (to ``steps`` halvings) at which ``mean_tokens(w_q)``, growing with w_q (w_l =
    2 - w_q), reaches ``target``; 2.0 when it never does."""
    lo, hi = 0.0, 2.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_tokens(mid) < target else (lo, mid)
    return hi


def calibrate_w_q(router_dir: str, data_dir: str, target: float, frame_stride: int = 1) -> dict:
    """The preference w_q in [0, 2] at which the router gives the *training* clips ``target`` tokens per clip on
    average (bisection: the mean grows with w_q). Calibrated on the router's own predictions, not on the oracle:
    a quality head trained on a few hundred clips predicts compressed quality differences, so the oracle's w_q
    makes it pick far fewer tokens (the held-out clips are not used)."""
    import torch

    from hf_vidtok.models.evatok import EvatokRouter

    router = EvatokRouter.from_pretrained(router_dir).eval()
    videos, _ = _load_clips(data_dir, "train", router.config, frame_stride)
    with torch.no_grad():
        scores = torch.cat([router(x).scores for x in videos.split(32)])

    def mean_tokens(w):
        return float(router.select_from_scores(scores, w_q=w).sum(1).double().mean())

    w = round(_w_q_spending(mean_tokens, target, 30), 4)
    return {"w_q": w, "target_mean_tokens": target, "train_router_mean_tokens": mean_tokens(w), "train_clips": len(videos)}


def _stage_signature(args, out: str, command: list[str]) -> dict:
    """What a stage's outputs depend on, independent of where the files live: its arguments after the interpreter
    with the output and data folders (and the LPIPS weights) as ``{out}`` / ``{data}`` (/ ``{lpips}``), and the
    SHA-256 of the two recipes (and of the LPIPS weights file)."""
    argv, files = command[1:], [("tokenizer", args.tokenizer_recipe), ("router", args.router_recipe)]
    if _fixed_recipe(args) != args.tokenizer_recipe and _fixed_recipe(args) in argv:  # (the fixed-length stages)
        files.append(("fixed", _fixed_recipe(args)))
    if args.lpips_weights and args.lpips_weights in argv:  # (only the stages that read them)
        argv = ["{lpips}" if c == args.lpips_weights else c for c in argv]
        files.append(("lpips", args.lpips_weights))
    argv = [c.replace(out, "{out}").replace(args.data_dir, "{data}") for c in argv]
    recipes = {role: hashlib.sha256(Path(path).read_bytes()).hexdigest() for role, path in files}
    return {"argv": argv, "recipes": recipes}


def stale_stages(args, out: str, stages: dict, done: dict) -> list[str]:
    """The done stages of ``out`` that ran with other settings than ``args`` give now (another recipe or recipe
    file content, metric, seed, steps, ...; the interpreter and the folders' locations may differ), ``calibrate``
    when its target differs, and every done stage that needs one of those: running on would mix their outputs with
    the new settings' ones. Stages recorded before signatures were kept are not checked themselves."""
    calibration = Path(out, "calibration.json")
    calibrated = json.loads(calibration.read_text()) if calibration.is_file() else None
    w_q = calibrated["w_q"] if calibrated else None
    stale = []
    for name in (name for name in stages if name in done):  # in stage order: a stage's needs come before it
        command, needs = stages[name]
        if any(need in stale for need in needs):
            stale.append(name)
        elif command == ["calibrate"]:
            if calibrated and calibrated["target_mean_tokens"] != args.target_mean_tokens:
                stale.append(name)
        elif "signature" in done[name]:
            if done[name]["signature"] != _stage_signature(args, out, [c.replace("{w_q}", str(w_q)) for c in command]):
                stale.append(name)
    return stale


def run_stages(args, out: str) -> dict:
    """Run every stage not yet done (``<out>/stages.json`` records the done ones), ``--jobs`` at a time. Refuses an
    ``out`` whose done stages ran with other settings (:func:`stale_stages`)."""
    stages = stage_commands(args, out)
    done_path = Path(out) / "stages.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    stale = stale_stages(args, out, stages, done)
    if stale:
        raise ValueError(
            f"`--output_dir` {out} holds stages {stale} run with other settings than these (see its stages.json): "
            "use a new --output_dir, or delete those stages' folders and entries to run them again"
        )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def launch(name):
        cmd, _ = stages[name]
        t0 = time.perf_counter()
        if cmd == ["calibrate"]:
            result = calibrate_w_q(f"{out}/router", args.data_dir, args.target_mean_tokens,
                                       _recipe_clip_size(args.tokenizer_recipe)["frame_stride"])
            Path(out, "calibration.json").write_text(json.dumps(result, indent=1))
            return name, 0, time.perf_counter() - t0, json.dumps(result)
        w_q = json.loads(Path(out, "calibration.json").read_text())["w_q"] if any("{w_q}" in c for c in cmd) else None
        cmd = [c.replace("{w_q}", str(w_q)) for c in cmd]
        with open(Path(out) / f"{name}.log", "w") as log:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        return name, rc, time.perf_counter() - t0, cmd

    pending = [s for s in stages if s not in done]
    running = {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        while pending or running:
            ready = [s for s in pending if all(d in done for d in stages[s][1])]
            for name in ready[: args.jobs - len(running)]:
                pending.remove(name)
                running[pool.submit(launch, name)] = name
            if not running:
                raise RuntimeError(f"stages {pending} wait on stages that did not finish")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                del running[future]
                name, rc, seconds, command = future.result()
                print(json.dumps({"stage": name, "seconds": round(seconds, 1), "returncode": rc}), flush=True)
                if rc != 0:
                    raise RuntimeError(f"stage {name} failed (exit {rc}); see {out}/{name}.log")
                record = {"seconds": round(seconds, 1)}
                if isinstance(command, list):
                    record.update(command=" ".join(command), signature=_stage_signature(args, out, command))
                else:  # calibrate: its result
                    record.update(command=command)
                done[name] = record
                done_path.write_text(json.dumps(done, indent=1))
    return done


# ---------------------------------------------------------------------------------------------- figures


def _curve(points, key="mean_psnr"):
    pts = sorted((p["avg_tokens"], p[key]) for p in points)
    return [p[0] for p in pts], [p[1] for p in pts]


def _interp(xs, ys, x):
    """Linear interpolation inside ``xs`` (None outside)."""
    if not xs or x < xs[0] - 1e-9 or x > xs[-1] + 1e-9:
        return None
    import numpy as np

    return float(np.interp(x, xs, ys))


#: the figures' quality metrics; LPIPS only where every point has it (``--lpips_weights``)
QUALITY_METRICS = ("psnr", "ssim", "lpips")
LOWER_IS_BETTER = {"psnr": False, "ssim": False, "lpips": True}


def _metrics_of(points) -> list[str]:
    return [m for m in QUALITY_METRICS if points and all(p.get(f"mean_{m}") is not None for p in points)]


def _tokens_at(xs, ys, y, lower_is_better: bool = False):
    """The fewest tokens at which the curve (better with more tokens) reaches quality ``y`` (None outside its
    range); ``lower_is_better`` for a distance (LPIPS)."""
    if lower_is_better:
        ys, y = [-v for v in ys], -y
    for i in range(1, len(xs)):
        if ys[i - 1] <= y <= ys[i] and ys[i] > ys[i - 1]:
            return float(xs[i - 1] + (y - ys[i - 1]) / (ys[i] - ys[i - 1]) * (xs[i] - xs[i - 1]))
    return None


#: the mean tokens per clip at which ``reward_analysis`` reads the oracle's tokens per category (the 16..128 range)
ORACLE_BUDGETS = (32, 48, 64, 80, 96)


def reward_analysis(out: str, w_qs, budgets=ORACLE_BUDGETS) -> dict:
    """Why the router gives each category what it gives, on the proxy's held-out score table and the stage-2 reward:

    * ``oracle_tokens``: at the calibrated w_q (``w_qs[0]``) and every other one, the mean tokens the max-reward oracle gives each category;
    * ``oracle_at_budget``: for each mean budget in ``budgets``, the w_q at which the oracle spends it on the held-out
      clips (bisection; the oracle's mean is a step function of w_q, so ``mean_tokens`` says what it reached) and the
      mean tokens, whole clip and per block, the oracle gives each category there: whether any budget, not only the
      calibrated one, orders the categories differently;
    * ``gain_per_token``: per category, the reward metric's mean gain per added token (sign-corrected: higher is
      better) for every step between consecutive levels, with the step in block 0 only (the other blocks at the
      lowest level) and in every block at once. The router learns the reward's choices; where a category's gain per
      token is larger, the reward spends more tokens on it."""
    import numpy as np

    from hf_vidtok.evatok.reward import HIGHER_IS_BETTER, RewardStats, best_assignment, proxy_reward
    from hf_vidtok.evatok.score_table import load_score_table

    table = load_score_table(str(Path(out, "scores_held_out")))
    stats = RewardStats.from_dict(json.loads(Path(out, "labels", "reward_stats.json").read_text()))
    metric = np.asarray(table.metric(stats.quality_metric), dtype=np.float64)
    metric = metric if HIGHER_IS_BETTER[stats.quality_metric] else -metric
    assignments, labels, lengths = np.asarray(table.assignments), np.asarray(table.labels), np.asarray(table.lengths)
    levels, nb = list(table.levels), table.num_blocks

    def column(counts):
        return int(np.flatnonzero((assignments == np.asarray(counts)).all(1))[0])

    scores = table.metric(stats.quality_metric)

    def oracle_choice(w):
        return best_assignment(proxy_reward(scores, stats, w), stats=stats).numpy()

    oracle = {}
    for i, w in enumerate(w_qs):
        chosen = oracle_choice(w)
        oracle["calibrated" if i == 0 else f"w_q {w:g}"] = {name: float(lengths[chosen][labels == c].mean()) for c, name in enumerate(CATEGORIES)
                            if (labels == c).any()}
    at_budget = {}
    for budget in budgets:
        hi = _w_q_spending(lambda w: lengths[oracle_choice(w)].mean(), budget, 24)
        chosen = oracle_choice(hi)
        at_budget[f"{budget:g}"] = {
            "w_q": round(hi, 4), "mean_tokens": float(lengths[chosen].mean()),
            "categories": {name: float(lengths[chosen][labels == c].mean()) for c, name in enumerate(CATEGORIES) if (labels == c).any()},
            "category_blocks": {name: assignments[chosen][labels == c].mean(0).round(2).tolist()
                                for c, name in enumerate(CATEGORIES) if (labels == c).any()}}
    gains = {}
    for c, name in enumerate(CATEGORIES):
        m = labels == c
        if not m.any():
            continue
        rows = {}
        for lo, hi in zip(levels, levels[1:]):
            first = [column([hi] + [levels[0]] * (nb - 1)), column([lo] + [levels[0]] * (nb - 1))]
            every = [column([hi] * nb), column([lo] * nb)]
            rows[f"{lo}->{hi}"] = {
                "block_0": float((metric[m, first[0]] - metric[m, first[1]]).mean() / (hi - lo)),
                "every_block": float((metric[m, every[0]] - metric[m, every[1]]).mean() / ((hi - lo) * nb)),
            }
        gains[name] = rows
    return {"quality_metric": stats.quality_metric, "calibrated_w_q": w_qs[0], "oracle_tokens": oracle,
            "oracle_at_budget": at_budget, "gain_per_token": gains}


def carry_analysis(out: str, data_dir: str, frame_stride: int = 1) -> dict:
    """How much of block 0's quality the proxy keeps in the later blocks, per category, on the held-out clips.

    ``block_psnr``: per category and assignment (every block at the lowest level, block 0 at the highest and the
    others at the lowest, every block at the highest), the mean PSNR of every temporal block. ``carry_loss_db``: per
    category, block 0's PSNR minus the mean of the later blocks' when only block 0 gets the most tokens. A still
    clip repeats block 0, so a tokenizer that carried it forward would lose nothing there (0 dB) and its later
    blocks would need no more than the fewest tokens; what it loses is what later-block tokens buy back, and the
    reward then spends them (the still > fast ordering of ``reward_analysis``)."""
    import numpy as np
    import torch

    from hf_vidtok.models.evatok import EvatokTokenizer

    tokenizer = EvatokTokenizer.from_pretrained(str(Path(out, "proxy"))).eval()
    c = tokenizer.config
    videos, labels = _load_clips(data_dir, "validation", c, frame_stride)
    lo, hi, nb = min(c.token_levels), max(c.token_levels), c.num_blocks
    assignments = {"uniform_min": [lo] * nb, "block_0_max": [hi] + [lo] * (nb - 1), "uniform_max": [hi] * nb}
    block_psnr = {}
    with torch.no_grad():
        for tag, counts in assignments.items():
            psnr = []
            for i in range(0, len(videos), 16):
                x = videos[i : i + 16]
                rec = tokenizer(x, assignment=torch.tensor([counts] * len(x))).reconstruction.clamp(0, 1)
                mse = (rec - x).square().unflatten(2, (nb, -1)).mean(dim=(1, 3, 4, 5))  # (B, num_blocks)
                psnr.append(10 * torch.log10(1.0 / mse.double().clamp_min(1e-12)))
            psnr = torch.cat(psnr).numpy()
            block_psnr[tag] = {name: psnr[labels == k].mean(0).round(3).tolist() for k, name in enumerate(CATEGORIES)
                               if (labels == k).any()}
    first_only = block_psnr["block_0_max"]
    loss = {name: float(v[0] - np.mean(v[1:])) for name, v in first_only.items()} if nb > 1 else {}
    return {"assignments": assignments, "block_psnr": block_psnr, "carry_loss_db": loss}


def repeat_analysis(out: str, data_dir: str, frame_stride: int = 1, budgets=ORACLE_BUDGETS, batch_size: int = 25) -> dict:
    """What a *repeat* level would buy (not a level of the tokenizer): 0 tokens in a block that then repeats the
    previous block's reconstruction exactly, as a codec's skip blocks do. Candidates: the ``m ** T`` assignments of
    the score table plus every ``(k_0, ..., k_j, 0, ..., 0)``, ``j < T - 1`` (repeats only at the clip's end, so no
    block is ever decoded after a repeated one and the proxy, which was never trained with them, gives their exact
    reconstruction). Both candidate sets are scored from the proxy's own prefix-tree reconstructions of the training
    and held-out clips; the reward is stage 2's (its metric, ``w_l = 2 - w_q``), standardised over each set's training
    (clip, assignment) pairs. For each mean budget in ``budgets`` and each set: the max-reward oracle's mean tokens,
    PSNR against the proxy's uniform assignments at equal tokens (linear between the uniform levels), tokens per
    category and per block. ``standard`` is ``reward_analysis``'s oracle re-derived with the stats of all pairs."""
    import itertools

    import numpy as np
    import torch

    from hf_vidtok.evatok.reward import HIGHER_IS_BETTER
    from hf_vidtok.evatok.scoring import BlockQualityMetric
    from hf_vidtok.models.evatok import EvatokTokenizer

    metric_name = json.loads(Path(out, "labels", "reward_stats.json").read_text())["quality_metric"]
    if metric_name not in ("mse", "ssim"):
        return {"skipped": f"reward metric {metric_name!r}: the analysis scores MSE and SSIM only"}
    tokenizer = EvatokTokenizer.from_pretrained(str(Path(out, "proxy"))).eval()
    c = tokenizer.config
    nb, levels = c.num_blocks, list(c.token_levels)
    if levels[0] == 0:
        return {"skipped": "the tokenizer has a repeat level (0 tokens) of its own"}
    candidates = [tuple(a) for a in itertools.product(levels, repeat=nb)]  # class order of the score table
    candidates += [p + (0,) * (nb - len(p)) for j in range(1, nb) for p in itertools.product(levels, repeat=j)]
    column = {a: i for i, a in enumerate(candidates)}
    metric = BlockQualityMetric()
    col = metric.names.index(metric_name)

    @torch.no_grad()
    def block_scores(videos):  # (N, candidates, blocks, [mse, ssim])
        values = np.zeros((len(videos), len(candidates), nb, len(metric.names)))
        for start in range(0, len(videos), batch_size):
            x = videos[start : start + batch_size]
            rows = slice(start, start + len(x))
            targets = x.unflatten(2, (nb, -1)).unbind(2)

            def walk(state, prefix, per_block, last):
                if prefix:
                    repeats = [metric(last, targets[t]).numpy() for t in range(len(prefix), nb)]
                    values[rows, column[prefix + (0,) * (nb - len(prefix))]] = np.stack(per_block + repeats, 1)
                    if len(prefix) == nb:
                        return
                for k in levels:
                    block, child = tokenizer.step_block(state, k)
                    rec = block.reconstruction
                    walk(child, prefix + (k,), per_block + [metric(rec, targets[len(prefix)]).numpy()], rec)

            walk(tokenizer.init_prefix_state(x), (), [], None)
        return values

    train, _ = _load_clips(data_dir, "train", c, frame_stride)
    held_out, labels = _load_clips(data_dir, "validation", c, frame_stride)
    train_scores, scores = block_scores(train), block_scores(held_out)
    sign = 1.0 if HIGHER_IS_BETTER[metric_name] else -1.0
    lengths = np.array([sum(a) for a in candidates], dtype=np.float64)
    uniform = [column[(k,) * nb] for k in levels]
    clip_psnr = -10 * np.log10(np.maximum(scores[..., metric.names.index("mse")].mean(-1), 1e-12))  # (N, candidates)
    uniform_tokens, uniform_psnr = [k * nb for k in levels], [float(clip_psnr[:, u].mean()) for u in uniform]
    result = {"quality_metric": metric_name, "budgets": {}}
    sets = {"standard": np.array([0 not in a for a in candidates]), "with_repeats": np.ones(len(candidates), bool)}
    for name, keep in sets.items():
        result[f"{name}_candidates"] = int(keep.sum())
        quality_train = train_scores[:, keep][..., col].mean(-1)
        q_mean, q_std = quality_train.mean(), quality_train.std()
        length, assign = lengths[keep], np.asarray(candidates)[keep]
        l_mean, l_std = length.mean(), length.std()
        quality = sign * (scores[:, keep][..., col].mean(-1) - q_mean) / q_std
        psnr = clip_psnr[:, keep]

        # (the reward of hf_vidtok.evatok.reward written out: its proxy_reward / best_assignment take the m ** T
        # classes of a RewardStats, and the repeat suffixes are not among them)
        def choice(w_q, quality=quality, length=length, l_mean=l_mean, l_std=l_std):
            reward = w_q * quality - (2.0 - w_q) * (length - l_mean) / l_std
            return np.where(reward == reward.max(1, keepdims=True), length, np.inf).argmin(1)  # ties: shorter

        for budget in budgets:
            w_q = _w_q_spending(lambda w: length[choice(w)].mean(), budget, 24)
            chosen = choice(w_q)
            tokens, mean_psnr = length[chosen], float(psnr[np.arange(len(chosen)), chosen].mean())
            at = float(np.interp(tokens.mean(), uniform_tokens, uniform_psnr))
            result["budgets"].setdefault(f"{budget:g}", {})[name] = {
                "w_q": round(w_q, 4), "mean_tokens": float(tokens.mean()), "psnr": mean_psnr,
                "uniform_psnr_at_equal_tokens": at, "gap_psnr": mean_psnr - at,
                "categories": {n: float(tokens[labels == k].mean()) for k, n in enumerate(CATEGORIES) if (labels == k).any()},
                "category_blocks": {n: assign[chosen][labels == k].mean(0).round(2).tolist()
                                    for k, n in enumerate(CATEGORIES) if (labels == k).any()}}
    return result


def _kmeans(points, k: int, iterations: int = 25, seed: int = 0):
    """Palette of ``k`` colours for ``points (N, 3)``: Lloyd's k-means from ``k`` distinct random points (seeded;
    an empty cluster keeps its centre). Hand-written: a dozen lines, and scikit-learn is not a dependency."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    unique = torch.unique(points, dim=0)
    centres = unique[torch.randperm(len(unique), generator=generator)[: min(k, len(unique))]].clone()
    for _ in range(iterations):
        nearest = torch.cdist(points, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, nearest, points)
        counts = torch.bincount(nearest, minlength=len(centres)).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return centres


def reference_codec_analysis(out: str, data_dir: str, frame_stride: int = 1) -> dict:
    """How much quality the proxy gets from its bits, against a trivial code with no more bits, per category, on
    the held-out clips.

    For every token level k the proxy spends ``k * log2(codebook_size)`` bits on a block. The reference spends at
    most as many: every temporal block as a ``g x g`` grid of cell colours (each the mean of the block's frames over
    the cell), each cell's colour one of a palette of ``2 ** b`` colours (k-means on the training clips' cells, at
    most 4096 colours), decoded by bilinear upsampling and repeated over the block's frames; ``g`` (a power of two up
    to the patch grid) and ``b`` (``g * g * b`` <= the bits) chosen by PSNR on the training clips. It codes no
    motion and no detail inside a cell, and the palette is not counted as bits (it is part of the codec, like the
    tokenizer's codebook). ``psnr``: the reference's held-out PSNR per category; ``proxy_psnr``: the proxy's with
    k tokens in every block (from ``evaluate_proxy``'s per-clip uniform points)."""
    import math

    import numpy as np
    import torch
    import torch.nn.functional as F

    from hf_vidtok.models.evatok import EvatokTokenizerConfig

    c = EvatokTokenizerConfig.from_pretrained(str(Path(out, "proxy")))
    size = c.image_size if isinstance(c.image_size, int) else c.image_size[0]
    nb, bits_per_token = c.num_blocks, math.log2(c.codebook_size)
    per_clip = json.loads(Path(out, "eval_proxy", "adaptive_per_clip.json").read_text())
    proxy_labels = np.asarray(per_clip["labels"])
    proxy_uniform = {p["level"]: np.asarray(p["psnr"]) for p in per_clip["points"] if p["curve"] == "uniform"}

    def block_means(video):  # (B, C, T, H, W) -> (B * nb, C, H, W): every block's mean frame
        return video.unflatten(2, (nb, -1)).mean(3).transpose(1, 2).flatten(0, 1)

    def decode(cells, b):  # (B * nb, C, g, g) -> (B, C, T, H, W)
        frames = F.interpolate(cells, size=(size, size), mode="bilinear", align_corners=False)
        return frames.unflatten(0, (b, nb)).transpose(1, 2).repeat_interleave(c.num_frames // nb, dim=2)

    def psnr(rec, video):  # per clip
        return (10 * torch.log10(1.0 / (rec.clamp(0, 1) - video).square().mean(dim=(1, 2, 3, 4)).clamp_min(1e-12))).numpy()

    train, _ = _load_clips(data_dir, "train", c, frame_stride)
    held_out, labels = _load_clips(data_dir, "validation", c, frame_stride)
    means = {"train": block_means(train), "held_out": block_means(held_out)}
    grids = [g for g in (1, 2, 4, 8, 16) if g <= min(c.patch_grid)]
    palettes = {}  # (g, b) -> palette, fitted once
    levels = {}
    for k in (k for k in c.token_levels if k > 0):  # (a repeat level spends no bits)
        budget = k * bits_per_token
        best = None
        for g in grids:
            b = min(12, int(budget // (g * g)))
            if b < 1:
                continue
            if (g, b) not in palettes:
                palettes[g, b] = _kmeans(F.adaptive_avg_pool2d(means["train"], g).permute(0, 2, 3, 1).reshape(-1, 3), 2 ** b)

            def code(m, palette=palettes[g, b], g=g):
                cells = F.adaptive_avg_pool2d(m, g).permute(0, 2, 3, 1).reshape(-1, 3)
                q = palette[torch.cdist(cells, palette).argmin(1)]
                return q.reshape(m.shape[0], g, g, 3).permute(0, 3, 1, 2)

            train_psnr = float(psnr(decode(code(means["train"]), len(train)), train).mean())
            if best is None or train_psnr > best[0]:
                best = (train_psnr, g, b, code)
        _, g, b, code = best
        reference = psnr(decode(code(means["held_out"]), len(held_out)), held_out)
        levels[str(k)] = {
            "bits_per_block": budget, "grid": g, "palette_bits": b,
            "psnr": {name: float(reference[labels == i].mean()) for i, name in enumerate(CATEGORIES) if (labels == i).any()},
            "proxy_psnr": {name: float(proxy_uniform[k][proxy_labels == i].mean()) for i, name in enumerate(CATEGORIES)
                           if (proxy_labels == i).any()},
        }
    return {"levels": levels}


def _load_eval(out: str, name: str) -> dict:
    return json.loads(Path(out, name, "adaptive_quality_cost.json").read_text())


def figures(args, out: str) -> dict:
    """The seed's figures from the evaluation outputs (see the module docstring); with ``--proxy_only`` the proxy's
    (no ``fixed`` / ``final_vs_fixed`` / ``final_uniform`` / ``categories``)."""
    calibration = json.loads(Path(out, "calibration.json").read_text())
    w_q = calibration["w_q"]
    proxy = _load_eval(out, "eval_proxy")
    proxy_rows = []
    # the proxy's uniform baseline: k > 0 tokens in every block (with a repeat level, uniform 0 is every frame
    # decoded from the null token alone, not a code of the clip)
    uniform = [p for p in proxy["curves"]["uniform"] if p["level"] > 0]
    for curve in ("router", "max_reward"):
        for p in proxy["curves"].get(curve, []):
            xs, ys = _curve(uniform)
            at = _interp(xs, ys, p["avg_tokens"])
            proxy_rows.append({"curve": curve, **{k: p[k] for k in ("w_q", "target_mean_tokens") if k in p},
                               "avg_tokens": p["avg_tokens"], **{m: p[f"mean_{m}"] for m in _metrics_of([p])},
                               "uniform_psnr_at_equal_tokens": at, "gap_psnr": None if at is None else p["mean_psnr"] - at})
    final = None if args.proxy_only else _final_figures(args, out, w_q)
    stride = _recipe_clip_size(args.tokenizer_recipe)["frame_stride"]
    times = json.loads(Path(out, "stages.json").read_text())
    return {
        "seed": args.seed,
        "data_dir": args.data_dir,
        "calibration": calibration,
        **({} if final is None else {k: final[k] for k in ("fixed", "final_vs_fixed", "final_uniform")}),
        "proxy_uniform": [{"level": p["level"], "avg_tokens": p["avg_tokens"], **{m: p[f"mean_{m}"] for m in _metrics_of([p])}}
                          for p in uniform],
        "proxy": proxy_rows,
        **({} if final is None else {"categories": final["categories"]}),
        "reward_analysis": reward_analysis(out, [w_q, *args.eval_w_q]),
        "carry_analysis": carry_analysis(out, args.data_dir, stride),
        "repeat_analysis": repeat_analysis(out, args.data_dir, stride),
        "reference_codec": reference_codec_analysis(out, args.data_dir, stride),
        "num_held_out_clips": (proxy if final is None else final)["num_clips"],
        "stage_seconds": {k: v["seconds"] for k, v in times.items()},
        "total_seconds": round(sum(v["seconds"] for v in times.values()), 1),
    }


def _final_figures(args, out: str, w_q: float) -> dict:
    """The final tokenizer + router against the fixed-length tokenizers, and the router's tokens per category.
    ``gap_<metric>``: final minus fixed at equal mean tokens (for LPIPS, a distance, negative is better)."""
    import numpy as np

    fixed = []
    for k in args.fixed_levels:
        point = next(p for p in _load_eval(out, f"eval_fixed_{k}")["curves"]["uniform"] if p["level"] == k)
        fixed.append({"level": k, "tokenizer": f"fixed_{k}", "avg_tokens": point["avg_tokens"],
                      **{f"mean_{m}": point[f"mean_{m}"] for m in _metrics_of([point])}})
    final = _load_eval(out, "eval_final")
    metrics = [m for m in _metrics_of(fixed) if m in _metrics_of(final["curves"].get("router", []))]
    comparisons = []
    for p in final["curves"].get("router", []):
        row = {k: p[k] for k in ("w_q", "target_mean_tokens") if k in p}
        row.update(avg_tokens=p["avg_tokens"], mean_block_tokens=p["mean_block_tokens"], **{m: p[f"mean_{m}"] for m in metrics})
        for metric in metrics:
            xs, ys = _curve(fixed, f"mean_{metric}")
            at = _interp(xs, ys, p["avg_tokens"])
            row[f"fixed_{metric}_at_equal_tokens"] = at
            row[f"gap_{metric}"] = None if at is None else p[f"mean_{metric}"] - at
            tokens = _tokens_at(xs, ys, p[f"mean_{metric}"], LOWER_IS_BETTER[metric])
            row[f"fixed_tokens_at_equal_{metric}"] = tokens
            row[f"saving_at_equal_{metric}"] = None if tokens is None else 1.0 - p["avg_tokens"] / tokens
        row["headline"] = row.get("w_q") == w_q
        comparisons.append(row)
    per_clip = json.loads(Path(out, "eval_final", "adaptive_per_clip.json").read_text())
    headline = next(p for p in per_clip["points"] if p["curve"] == "router" and p.get("w_q") == w_q)
    labels = np.asarray(per_clip["labels"])
    counts = np.asarray(headline["block_tokens"], dtype=np.float64)
    categories = {}
    for c, name in enumerate(CATEGORIES):
        m = labels == c
        if m.any():
            categories[name] = {"clips": int(m.sum()), "mean_tokens": float(counts[m].sum(1).mean()),
                                "mean_block_tokens": counts[m].mean(0).round(3).tolist(),
                                "psnr": float(np.mean(np.asarray(headline["psnr"])[m]))}
    return {"fixed": fixed, "final_vs_fixed": comparisons, "final_uniform": final["curves"]["uniform"],
            "categories": categories, "num_clips": final["num_clips"]}


# ----------------------------------------------------------------------------------------------- report


def report(dirs: list[str], output_dir: str) -> dict:
    """Aggregate the seeds' ``results.json``: mean and spread of the headline figures, two PNGs."""
    import numpy as np

    runs = [json.loads(Path(d, "results.json").read_text()) for d in dirs]
    partial = [d for d, r in zip(dirs, runs) if "final_vs_fixed" not in r]
    if partial:
        raise ValueError(f"`--report` needs whole runs; {partial} ran with --proxy_only (their results.json has the "
                         "proxy's figures only)")
    heads = [next(r for r in run["final_vs_fixed"] if r["headline"]) for run in runs]

    def spread(values):
        v = np.asarray([x for x in values if x is not None], dtype=np.float64)
        return {"values": [None if x is None else round(float(x), 4) for x in values],
                "mean": None if not v.size else float(v.mean()), "min": None if not v.size else float(v.min()),
                "max": None if not v.size else float(v.max())}

    summary = {"seeds": [r["seed"] for r in runs]}
    metrics = [m for m in QUALITY_METRICS if all(f"gap_{m}" in h for h in heads)]  # LPIPS where every seed has it
    for key in ["avg_tokens"] + [f"{k}{m}{e}" for m in metrics for k, e in (("", ""), ("fixed_", "_at_equal_tokens"),
                                                                          ("gap_", ""), ("saving_at_equal_", ""))]:
        summary[key] = spread([h[key] for h in heads])
    summary["at_or_above_fixed_psnr"] = sum(h["gap_psnr"] is not None and h["gap_psnr"] >= 0 for h in heads)
    summary["categories"] = {c: spread([r["categories"].get(c, {}).get("mean_tokens") for r in runs]) for c in CATEGORIES}
    summary["category_blocks"] = {c: np.mean([r["categories"][c]["mean_block_tokens"] for r in runs if c in r["categories"]], 0).round(2).tolist()
                                  for c in CATEGORIES if any(c in r["categories"] for r in runs)}
    proxy = {}
    for r in runs:
        for row in r["proxy"]:
            tag = f"{row['curve']} " + (f"w_q {row['w_q']:g}" if "w_q" in row else f"budget {row['target_mean_tokens']:g}")
            proxy.setdefault(tag, []).append(row["gap_psnr"])
    summary["proxy_gap_psnr"] = {tag: spread(v) for tag, v in proxy.items()}
    analyses = [r["reward_analysis"] for r in runs if "reward_analysis" in r]  # (results.json of older runs lack it)
    if analyses:
        tags = [t for t in analyses[0]["oracle_tokens"] if all(t in a["oracle_tokens"] for a in analyses)]
        summary["oracle_categories"] = {t: {c: spread([a["oracle_tokens"][t].get(c) for a in analyses]) for c in CATEGORIES}
                                        for t in tags}
        budgets = [b for b in analyses[0].get("oracle_at_budget", {}) if all(b in a.get("oracle_at_budget", {}) for a in analyses)]
        summary["oracle_at_budget"] = {
            b: {"mean_tokens": spread([a["oracle_at_budget"][b]["mean_tokens"] for a in analyses]),
                "categories": {c: spread([a["oracle_at_budget"][b]["categories"].get(c) for a in analyses]) for c in CATEGORIES},
                "seeds_still_below_fast": sum(cats["still"] < cats["fast"] for cats in (a["oracle_at_budget"][b]["categories"] for a in analyses)
                                              if "still" in cats and "fast" in cats)}
            for b in budgets}
        summary["gain_per_token"] = {
            c: {step: {scope: float(np.mean([a["gain_per_token"][c][step][scope] for a in analyses]))
                       for scope in ("block_0", "every_block")}
                for step in analyses[0]["gain_per_token"][c]}
            for c in CATEGORIES if all(c in a["gain_per_token"] for a in analyses)}
        summary["reward_metric"] = analyses[0]["quality_metric"]
    repeats = [r["repeat_analysis"] for r in runs if "budgets" in r.get("repeat_analysis", {})]
    if repeats:
        summary["repeat_analysis"] = {
            b: {name: {"mean_tokens": spread([a["budgets"][b][name]["mean_tokens"] for a in repeats]),
                       "gap_psnr": spread([a["budgets"][b][name]["gap_psnr"] for a in repeats]),
                       "categories": {c: spread([a["budgets"][b][name]["categories"].get(c) for a in repeats]) for c in CATEGORIES},
                       "seeds_still_below_fast": sum(cats["still"] < cats["fast"] for cats in (a["budgets"][b][name]["categories"] for a in repeats)
                                                     if "still" in cats and "fast" in cats)}
                for name in ("standard", "with_repeats")}
            for b in repeats[0]["budgets"] if all(b in a["budgets"] for a in repeats)}
    references = [r["reference_codec"] for r in runs if "reference_codec" in r]
    if references:  # (the reference depends on the data only; the proxy on the seed)
        summary["reference_codec"] = {
            k: {**{key: v[key] for key in ("bits_per_block", "grid", "palette_bits", "psnr")},
                "proxy_psnr": {c: spread([r["levels"][k]["proxy_psnr"].get(c) for r in references]) for c in v["proxy_psnr"]}}
            for k, v in references[0]["levels"].items() if all(k in r["levels"] for r in references)}
    carries = [r["carry_analysis"] for r in runs if "carry_analysis" in r]
    if carries:
        summary["carry_loss_db"] = {c: spread([a["carry_loss_db"].get(c) for a in carries]) for c in CATEGORIES
                                    if any(c in a["carry_loss_db"] for a in carries)}
    os.makedirs(output_dir, exist_ok=True)
    summary["quality_cost_png"] = _plot_curves(runs, os.path.join(output_dir, "quality_cost.png"))
    summary["held_out_grid_png"] = _plot_grid(dirs[0], runs[0], os.path.join(output_dir, "held_out_grid.png"))
    Path(output_dir, "report.json").write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    return summary


def _plot_curves(runs, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in QUALITY_METRICS if all(m in r for run in runs for r in run["final_vs_fixed"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2))
    for i, run in enumerate(runs):
        alpha = 1.0 if i == 0 else 0.55
        label = (lambda s: s) if i == 0 else (lambda s: None)
        for ax, metric in zip(axes, metrics):
            f = sorted(run["fixed"], key=lambda p: p["avg_tokens"])
            ax.plot([p["avg_tokens"] for p in f], [p[f"mean_{metric}"] for p in f], "s-", color="tab:gray", alpha=alpha,
                    label=label("fixed-length tokenizers"))
            rows = sorted((r for r in run["final_vs_fixed"] if "w_q" in r), key=lambda r: r["avg_tokens"])
            ax.plot([r["avg_tokens"] for r in rows], [r[metric] for r in rows], "o-", color="tab:red", alpha=alpha,
                    label=label("final tokenizer + router (w_q)"))
            head = next(r for r in run["final_vs_fixed"] if r["headline"])
            ax.plot([head["avg_tokens"]], [head[metric]], "*", ms=14, color="tab:red", alpha=alpha,
                    label=label("final, calibrated w_q"))
            u = [p for p in run["proxy_uniform"] if metric in p]
            ax.plot([p["avg_tokens"] for p in u], [p[metric] for p in u], "^:", color="tab:blue", alpha=alpha * 0.8,
                    label=label("proxy, uniform"))
            for curve, style, color in (("router", "v--", "tab:green"), ("max_reward", "x--", "tab:purple")):
                pts = sorted((r for r in run["proxy"] if r["curve"] == curve and "w_q" in r and metric in r),
                             key=lambda r: r["avg_tokens"])
                ax.plot([r["avg_tokens"] for r in pts], [r[metric] for r in pts], style, color=color, alpha=alpha * 0.8,
                        label=label(f"proxy, {curve.replace('_', '-')}"))
            ax.set_xlabel("mean tokens per clip")
            ax.set_ylabel(metric.upper() + (" (lower is better)" if LOWER_IS_BETTER[metric] else ""))
            ax.grid(alpha=0.3)
    axes[0].set_title(f"held-out clips, {len(runs)} seeds")
    axes[1].legend(fontsize=7, loc="lower right")  # (the LPIPS panel, when there, keeps its corner free)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_grid(out: str, run: dict, path: str, per_category: int = 3) -> str:
    """Held-out clips (frames 0, 5, 10, 15) of each category with the counts per block the router gives them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from hf_vidtok.data import VideoFile

    per_clip = json.loads(Path(out, "eval_final", "adaptive_per_clip.json").read_text())
    w_q = run["calibration"]["w_q"]
    head = next(p for p in per_clip["points"] if p["curve"] == "router" and p.get("w_q") == w_q)
    data_dir = run["data_dir"]
    rows = []
    for c, name in enumerate(CATEGORIES):
        idx = [i for i, label in enumerate(per_clip["labels"]) if label == c][:per_category]
        rows += [(name, i) for i in idx]
    fig, axes = plt.subplots(len(rows), 1, figsize=(6.4, 0.95 * len(rows) + 0.4))
    for ax, (name, i) in zip(np.atleast_1d(axes), rows):
        key = per_clip["keys"][i].rsplit("#", 1)[0]
        with VideoFile(os.path.join(data_dir, key)) as vf:
            frames = vf.read_frames(range(len(vf)))
        ax.imshow(np.concatenate([frames[t] for t in range(0, len(frames), max(1, len(frames) // 4))], axis=1))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        counts = head["block_tokens"][i]
        ax.set_title(f"tokens per block {counts} (total {sum(counts)}), PSNR {head['psnr'][i]:.1f} dB", fontsize=7, pad=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--seed", type=int, default=0, help="training seed of every stage (the data is the same for all seeds)")
    p.add_argument("--data_dir", default="data/mixed-complexity", help="the benchmark (built here when missing)")
    p.add_argument("--window_fraction", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="the benchmark's photograph windows (hf_vidtok.data.mixed_complexity; default: its own)")
    p.add_argument("--clips_per_photograph", type=int, default=None,
                   help="clips per photograph and category in each split (hf_vidtok.data.mixed_complexity; default: "
                        "its own, 4): more clips of the same photographs, e.g. for the router; a new --data_dir")
    p.add_argument("--jobs", type=int, default=2, help="stages run at once (one thread each)")
    p.add_argument("--steps", type=int, default=None, help="tokenizer training steps (default: the recipe's)")
    p.add_argument("--fixed_levels", type=int, nargs="+", default=[4, 8, 16, 32],
                   help="fixed-length baselines: tokens per block (up to the largest level, so that the tokens saved at equal quality fall inside the curve)")
    p.add_argument("--quality_metric", default="ssim", choices=["ssim", "mse", "lpips"],
                   help="the reward's quality metric (stage-2 scoring; the table also holds PSNR, SSIM and MSE); "
                        "lpips needs --lpips_weights and runs every assignment through VGG (hours on a CPU)")
    p.add_argument("--lpips_weights", default=None,
                   help="hf_vidtok LPIPS safetensors file / folder / Hub id: LPIPS in every evaluation and figure")
    p.add_argument("--target_mean_tokens", type=float, default=48.0,
                   help="the final tokenizer's preference is calibrated to this mean on the training table")
    p.add_argument("--eval_w_q", type=float, nargs="+", default=[1.0, 1.2, 1.4, 1.6], help="more router preferences evaluated")
    p.add_argument("--budgets", type=float, nargs="+", default=[32, 48, 64], help="router average budgets evaluated")
    p.add_argument("--tokenizer_recipe", default=TOKENIZER_RECIPE, help="YAML of every tokenizer (proxy, fixed, final)")
    p.add_argument("--fixed_recipe", default=None,
                   help="YAML of the fixed-length tokenizers (default: --tokenizer_recipe), e.g. the recipe without "
                        "a repeat level when the proxy and final tokenizer have one; same clip size")
    p.add_argument("--router_recipe", default=ROUTER_RECIPE, help="YAML of the router")
    p.add_argument("--tokenizer_args", nargs=argparse.REMAINDER, default=[], help="flags added to every tokenizer training")
    p.add_argument("--report", nargs="+", default=None, help="aggregate these seed folders instead of running")
    p.add_argument("--proxy_only", action="store_true",
                   help="stop after the proxy's stages (proxy, scores, labels, router, its evaluation): the reward "
                        "and carry analyses of a recipe without training the final and fixed-length tokenizers")
    p.add_argument("--smoke", action="store_true", help="tiny data and step counts (CI)")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.report:
        summary = report(args.report, args.output_dir)
        print(json.dumps(summary), flush=True)
        return summary
    if args.quality_metric == "lpips" and not args.lpips_weights:
        raise ValueError("`--quality_metric lpips` needs `--lpips_weights` (an hf_vidtok LPIPS safetensors file, "
                         "folder or Hub id; or pick ssim / mse)")
    lpips_given = args.lpips_weights
    if args.lpips_weights:  # fetched (Hub id) and checked here, once: the stages run offline on the local file
        from hf_vidtok.hub.loading import resolve_file
        from hf_vidtok.metrics.lpips_vgg import LPIPS, LPIPS_WEIGHTS_NAME

        args.lpips_weights = os.path.abspath(resolve_file(args.lpips_weights, LPIPS_WEIGHTS_NAME))
        LPIPS.from_pretrained(args.lpips_weights)  # a file that is not LPIPS weights fails now, not in a stage
    from hf_vidtok.data.mixed_complexity import build_mixed_complexity_dataset

    os.makedirs(args.output_dir, exist_ok=True)
    out = os.path.abspath(args.output_dir)
    data_dir_given, args.data_dir = args.data_dir, os.path.abspath(args.data_dir)
    t0 = time.perf_counter()
    data_settings = dict(SMOKE_DATA) if args.smoke else {}
    clip_size = _recipe_clip_size(args.tokenizer_recipe)  # the clips the recipe's tokenizers take
    if args.fixed_recipe and _recipe_clip_size(args.fixed_recipe) != clip_size:
        raise ValueError(f"`--fixed_recipe` {args.fixed_recipe}: its clips {_recipe_clip_size(args.fixed_recipe)} differ "
                         f"from --tokenizer_recipe's {clip_size}; the fixed-length tokenizers are compared on the same clips")
    data_settings.update(num_frames=clip_size["num_frames"], resolution=clip_size["resolution"])
    if args.window_fraction is not None:
        data_settings["window_fraction"] = tuple(args.window_fraction)
    if args.clips_per_photograph is not None:
        data_settings["clips_per_photograph"] = args.clips_per_photograph
    manifest = build_mixed_complexity_dataset(args.data_dir, **data_settings)
    print(json.dumps({"stage": "data", "seconds": round(time.perf_counter() - t0, 1), "counts": manifest["counts"]}), flush=True)
    if args.smoke:
        args.target_mean_tokens, args.budgets, args.eval_w_q, args.fixed_levels = 32.0, [32.0], [1.2], [8, 16]
    run_stages(args, out)
    results = figures(args, out)
    # where the data was, as the user named it (the machine's absolute path says nothing elsewhere), and what it is
    results["data_dir"] = data_dir_given
    results["data_settings"] = manifest["settings"]
    results["lpips_weights"] = lpips_given
    Path(out, "results.json").write_text(json.dumps(results, indent=1))
    if args.proxy_only:
        print(json.dumps({"figure": "oracle_categories", "seed": args.seed,
                          **results["reward_analysis"]["oracle_tokens"]["calibrated"]}))
        print(json.dumps({"figure": "carry_loss_db", "seed": args.seed, **results["carry_analysis"]["carry_loss_db"]}))
        print(json.dumps({"figure": "total_seconds", "seed": args.seed, "seconds": results["total_seconds"]}))
        return results
    head = next(r for r in results["final_vs_fixed"] if r["headline"])
    print(json.dumps({"figure": "final_vs_fixed", "seed": args.seed, **{k: head[k] for k in head if k != "mean_block_tokens"}}))
    print(json.dumps({"figure": "categories", "seed": args.seed, **{c: v["mean_tokens"] for c, v in results["categories"].items()}}))
    print(json.dumps({"figure": "total_seconds", "seed": args.seed, "seconds": results["total_seconds"]}))
    return results


if __name__ == "__main__":
    main()

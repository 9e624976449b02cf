#!/usr/bin/env python
"""Every benchmark's GPU figures in one process, within a time budget; one JSON line per figure.

    python bench/run_all.py --device cuda                      # about 8 minutes on one GPU (--budget_s 480)
    python bench/run_all.py --smoke                            # the same code on tiny configs, CPU, < 1 minute

Runs, in this order, the measurement functions of the other benches (``bench_*.py``'s ``main`` with the arguments
below, or bench_data's functions), each under its own share of the budget:

====================  =====================================================================================
task                  figures (``bench`` field of the records)
====================  =====================================================================================
tokenizer_eager       LARP-L encode+decode clips/s, bf16, batch 32 (``tokenizer_encode_decode``)
tokenizer_compiled    the same with ``torch.compile(fullgraph=True)`` of encode and decode
train_eager           LARP-L recipe train step (bf16, batch 16, LPIPS + GAN + prior) (``train_tokenizer_step``)
train_compiled        the same, ``train_tokenizer.py --torch_compile``
ar_generate           632M AR sampling, batch 32, 1024 tokens, CFG: KV cache compiled + CUDA graphs, KV cache eager,
                      the official-style loop (``ar_generate``, ``ar_generate_summary``)
evatok_eager          EVATok 145M encode+decode under uniform vs random assignments and train steps
                      (``evatok_encode_decode``, ``evatok_train_step``)
evatok_compiled       the same compiled whole (fullgraph; static max_tokens or bucketed widths)
router                router cost per clip relative to encode, selection time (``router_vs_encode``,
                      ``select_from_scores``)
scoring               stage-2 prefix-tree scoring clips/s with LPIPS, projected GPU-hours (``scoring``)
data_loader           streaming dataset + DataLoader clips/s of 16x128x128 clips (``streaming_dataset``)
====================  =====================================================================================

Every record gets ``task``, ``device_name`` (the GPU, or the CPU model and whether it has native bf16), the torch
version and, on a GPU, ``task_peak_memory_gib`` (the task's peak allocated memory so far; most records also carry
their own ``peak_memory_gib``). Records go to stdout as they come and to ``--output`` (default
``outputs/bench/run_all_<device>_<time>.jsonl``; an existing file is never overwritten). A task that overruns its
share of the budget (a fair share of what is left, so that every task gets its turn) is stopped, its finished
records kept, and reported as ``timeout``; the last line is a ``run_all_summary`` with every task's status and
time. Exit status 1 when a task failed (also on a timeout with ``--smoke``).

``--smoke`` (CPU, tiny configs, fewer steps) runs the same code paths; the compiled tasks use the ``aot_eager``
backend there (dynamo's whole-graph capture and AOTAutograd as with inductor, without inductor's C++ code
generation, which alone takes minutes on two cores) and CUDA graphs are left out (they need a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling bench_*.py modules

import torch  # noqa: E402

from device_info import cpu_native_bf16, device_fields  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class BudgetExceeded(BaseException):
    """Raised in the main thread when a task's share of the budget is spent (a BaseException, so that a bench's
    ``except Exception`` cannot swallow it)."""


@dataclass
class Task:
    name: str
    weight: float  # share of the budget, relative to the other tasks
    run: Callable[[], object]
    expected: tuple  # the ``bench`` names its records carry
    status: str = "pending"
    seconds: float = 0.0
    records: int = 0
    error: str | None = None
    benches: set = field(default_factory=set)


def _main_of(module: str) -> Callable[[list], object]:
    def call(argv):
        return __import__(module).main(argv)

    return call


def build_tasks(device: str, smoke: bool) -> list[Task]:
    """The tasks for ``device`` (full sizes) or the smoke run (tiny sizes on the CPU)."""
    tok, train, gen, eva, router, scoring = (_main_of(m) for m in (
        "bench_tokenizer", "bench_train", "bench_generate", "bench_evatok", "bench_router", "bench_scoring"))
    if smoke:
        backend = ["--compile_backend", "aot_eager"]
        tok_args = ["--device", "cpu", "--configs", "tiny", "--measure", "encode_decode", "--steps", "1", "--warmup", "0"]
        train_args = ["--device", "cpu", "--batch_size", "2", "--steps", "1", "--warmup", "1"]
        ar_modes = "kv_cache,kv_cache_eager,official_style" + (",kv_cache_bf16" if cpu_native_bf16() else "")
        gen_args = ["--device", "cpu", "--hidden_size", "32", "--layers", "1", "--heads", "2", "--codebook_size", "32",
                    "--batch", "2", "--tokens", "8", "--repeats", "1", "--modes", ar_modes, "--compile", "--kv_block_size", "8",
                    *backend]
        eva_args = ["--device", "cpu", "--configs", "tiny", "--batch_size", "4", "--steps", "1", "--warmup", "0"]
        router_args = ["--device", "cpu", "--tokenizer", "tiny", "--routers", "tiny", "--steps", "1", "--warmup", "0"]
        scoring_args = ["--device", "cpu", "--config", "tiny", "--no_brute_force", "--lpips"]
        data = dict(repeats=1, clips_per_video=1, workers=(0,))
    else:
        backend = []
        tok_args = ["--device", device, "--configs", "larp_l", "--measure", "encode_decode", "--steps", "5", "--warmup", "2"]
        train_args = ["--device", device, "--steps", "10", "--warmup", "3"]
        ar_modes = "kv_cache,kv_cache_eager,official_style"
        gen_args = ["--device", device, "--tokens", "1024", "--repeats", "2", "--modes", ar_modes]
        eva_args = ["--device", device, "--steps", "5", "--warmup", "2"]
        router_args = ["--device", device, "--steps", "10", "--warmup", "3"]
        scoring_args = ["--device", device, "--no_brute_force"]
        data = dict(repeats=1, clips_per_video=8, workers=(0, 4))
    ar_expected = ("ar_generate", "ar_generate_summary") + (("ar_generate_bf16_quality",) if "kv_cache_bf16" in ar_modes else ())
    return [
        Task("tokenizer_eager", 1, lambda: tok([*tok_args, "--modes", "eager"]), ("tokenizer_encode_decode",)),
        Task("tokenizer_compiled", 1.5, lambda: tok([*tok_args, "--modes", "compiled", *backend]), ("tokenizer_encode_decode",)),
        Task("train_eager", 1, lambda: train([*train_args, "--modes", "eager"]), ("train_tokenizer_step",)),
        Task("train_compiled", 2, lambda: train([*train_args, "--modes", "compiled", *backend]), ("train_tokenizer_step",)),
        Task("ar_generate", 2, lambda: gen(gen_args), ar_expected),
        Task("evatok_eager", 1, lambda: eva([*eva_args, "--modes", "eager"]), ("evatok_encode_decode", "evatok_train_step")),
        Task("evatok_compiled", 2, lambda: eva([*eva_args, "--modes", "compiled", *backend]),
             ("evatok_encode_decode", "evatok_train_step")),
        Task("router", 0.7, lambda: router(router_args), ("router_vs_encode", "select_from_scores")),
        Task("scoring", 1, lambda: scoring(scoring_args), ("scoring",)),
        Task("data_loader", 0.8, lambda: _data_loader(**data), ("streaming_dataset",)),
    ]


def _data_loader(repeats: int, clips_per_video: int, workers: tuple):
    """bench_data's streaming-dataset measurement on the sample videos (a fresh on-disk probe cache)."""
    import tempfile

    import bench_data
    from hf_vidtok.data import sample_videos

    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("HF_VIDTOK_PROBE_CACHE")
        os.environ["HF_VIDTOK_PROBE_CACHE"] = cache
        try:
            bench_data.bench_stream(sample_videos(), repeats, clips_per_video, workers)
        finally:
            if previous is None:
                os.environ.pop("HF_VIDTOK_PROBE_CACHE", None)
            else:
                os.environ["HF_VIDTOK_PROBE_CACHE"] = previous


class RecordTap:
    """A stdout stand-in for a task: every complete line that is a JSON object becomes a record (tagged and written
    out through ``emit``), anything else goes to stderr."""

    def __init__(self, emit: Callable[[dict], None]):
        self.emit, self.buffer = emit, ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._line(line)
        return len(text)

    def _line(self, line: str):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            self.emit(record)
        elif line.strip():
            print(line, file=sys.stderr)

    def flush(self):
        if self.buffer:
            line, self.buffer = self.buffer, ""
            self._line(line)


def _alarm(_signum, _frame):
    raise BudgetExceeded()


def _cleanup(device: torch.device):
    if "torch._dynamo" in sys.modules:  # compiled graphs of one task are not the next one's
        torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run(tasks: list[Task], device: torch.device, budget_s: float, out) -> list[Task]:
    common = device_fields(device)
    start = time.monotonic()
    for i, task in enumerate(tasks):
        left = budget_s - (time.monotonic() - start)
        share = left * task.weight / sum(t.weight for t in tasks[i:])
        if left <= 0.05:
            task.status = "skipped"
            continue

        def emit(record, task=task):
            record = {**record, "task": task.name, **common}
            if device.type == "cuda":
                record["task_peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            task.records += 1
            task.benches.add(record.get("bench"))
            line = json.dumps(record)
            print(line, file=sys.__stdout__, flush=True)
            out.write(line + "\n")
            out.flush()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.monotonic()
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, max(share, 0.05))
        tap = RecordTap(emit)
        try:
            with contextlib.redirect_stdout(tap):
                task.run()
                tap.flush()
            task.status = "ok"
        except BudgetExceeded:
            task.status = "timeout"
        except Exception as err:  # noqa: BLE001 - one failing task must not cost the others their turn
            task.status, task.error = "error", f"{type(err).__name__}: {err}"[:500]
            import traceback

            traceback.print_exc(file=sys.stderr)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            tap.flush()
        task.seconds = time.monotonic() - t0
        missing = [b for b in task.expected if b not in task.benches]
        if task.status == "ok" and missing:
            task.status, task.error = "error", f"no {missing} record"
        print(f"[run_all] {task.name}: {task.status} in {task.seconds:.1f} s (share {share:.0f} s)", file=sys.stderr, flush=True)
        _cleanup(device)
    return tasks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda (default) or cpu; --smoke implies cpu")
    p.add_argument("--smoke", action="store_true", help="tiny configs on the CPU: every task's code path in < 1 minute")
    p.add_argument("--budget_s", type=float, default=None, help="time budget in seconds (default 480; --smoke: 300)")
    p.add_argument("--only", default=None, help="comma list of task names (default: all)")
    p.add_argument("--output", default=None, help="JSON-lines file for the records (must not exist)")
    args = p.parse_args(argv)
    device = torch.device("cpu" if args.smoke else (args.device or "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is visible (use --smoke for the CPU check)")
    budget = args.budget_s if args.budget_s is not None else (300.0 if args.smoke else 480.0)
    if budget <= 0:
        p.error(f"--budget_s must be positive, got {budget}")
    tasks = build_tasks(str(device), args.smoke)
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {t.name for t in tasks})
        if unknown:
            p.error(f"--only: unknown tasks {unknown}; tasks are {[t.name for t in tasks]}")
        tasks = [t for t in tasks if t.name in names]
    if args.output is None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        args.output = str(Path("outputs") / "bench" / f"run_all_{'smoke' if args.smoke else device.type}_{stamp}.jsonl")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    try:
        out = open(args.output, "x", encoding="utf-8")  # never overwrite a file
    except FileExistsError:
        p.error(f"--output {args.output!r} exists; give a new file name")
    t0 = time.monotonic()
    with out:
        run(tasks, device, budget, out)
        summary = dict(bench="run_all_summary", smoke=args.smoke, budget_s=budget, seconds=round(time.monotonic() - t0, 1),
                       output=args.output, tasks={t.name: dict(status=t.status, seconds=round(t.seconds, 1), records=t.records,
                                                              **({"error": t.error} if t.error else {})) for t in tasks},
                       **device_fields(device))
        line = json.dumps(summary)
        print(line, flush=True)
        out.write(line + "\n")
    failed = [t.name for t in tasks if t.status == "error" or (args.smoke and t.status != "ok")]
    if failed:
        print(f"[run_all] failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

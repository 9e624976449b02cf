"""bench/run_all.py: the --smoke run (every task's code path on tiny configs, CPU) and the budget machinery."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "run_all.py"


def _load():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("run_all", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_smoke_run_gives_every_figure(tmp_path):
    out = tmp_path / "smoke.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1"}
    # a generous budget: this checks the code paths (under a minute on two free cores), not a busy CI machine's speed
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--budget_s", "1500", "--output", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [json.loads(line) for line in proc.stdout.splitlines()] == records  # stdout and the file agree
    summary = records[-1]
    assert summary["bench"] == "run_all_summary" and summary["smoke"] is True
    tasks = {t.name: t for t in _load().build_tasks("cpu", smoke=True)}
    assert set(summary["tasks"]) == set(tasks)
    assert all(s["status"] == "ok" and s["records"] > 0 for s in summary["tasks"].values()), summary["tasks"]
    seen = {(r["task"], r["bench"]) for r in records[:-1]}
    for name, task in tasks.items():
        for bench in task.expected:
            assert (name, bench) in seen, (name, bench)
    # the figures the GPU run is for, each on the code path it uses there
    benches = {r["bench"] for r in records}
    assert {"tokenizer_encode_decode", "train_tokenizer_step", "ar_generate", "evatok_encode_decode", "evatok_train_step",
            "router_vs_encode", "scoring", "streaming_dataset"} <= benches
    compiled = {(r["bench"], r.get("mode")) for r in records if r.get("compiled") or r.get("mode") == "compiled"}
    assert ("tokenizer_encode_decode", "ours") in compiled and ("train_tokenizer_step", "compiled") in compiled
    assert ("ar_generate", "kv_cache") in compiled
    assert {m for b, m in compiled if b == "evatok_encode_decode"} == {"uniform", "random_padded", "random_bucketed"}
    for r in records:
        assert r["device_name"] and r["torch"] == torch.__version__ and "cpu_native_bf16" in r
    assert all(r["clips_per_s"] > 0 for r in records if "clips_per_s" in r)


def test_budget_stops_an_overrunning_task_and_runs_the_rest(tmp_path):
    run_all = _load()

    def forever():
        print(json.dumps({"bench": "first"}))  # kept: records come out as they are printed
        while True:
            time.sleep(0.01)

    def broken():
        raise RuntimeError("boom")

    def quick():
        print("not a record")
        print(json.dumps({"bench": "quick", "value": 1}))

    # shares: the slow task gets 1 / 301 of the 60 s (0.2 s), the others plenty (a busy machine cannot starve them)
    tasks = [run_all.Task("slow", 1, forever, ("first",)), run_all.Task("broken", 100, broken, ("x",)),
             run_all.Task("quick", 100, quick, ("quick",)), run_all.Task("incomplete", 100, quick, ("quick", "other"))]
    out = io.StringIO()
    t0 = time.monotonic()
    run_all.run(tasks, torch.device("cpu"), 60.0, out)
    assert time.monotonic() - t0 < 30 and 0.15 < tasks[0].seconds < 10
    assert [t.status for t in tasks] == ["timeout", "error", "ok", "error"]
    assert tasks[1].error == "RuntimeError: boom" and "other" in tasks[3].error
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["task"], r["bench"]) for r in records] == [("slow", "first"), ("quick", "quick"), ("incomplete", "quick")]
    assert all(r["device_name"] for r in records)


def test_output_is_never_overwritten(tmp_path):
    existing = tmp_path / "x.jsonl"
    existing.write_text("keep\n")
    with pytest.raises(SystemExit):
        _load().main(["--smoke", "--only", "router", "--output", str(existing)])
    assert existing.read_text() == "keep\n"
    with pytest.raises(SystemExit):
        _load().main(["--smoke", "--only", "nope", "--output", str(tmp_path / "y.jsonl")])


def test_bench_tokenizer_times_eager_compiled_and_official_in_one_run(capsys):
    """``bench_tokenizer.py --modes eager,compiled`` on a CPU: ours eager, ours compiled and the official code in one
    interleaved loop (the compiled token ids checked against eager), one summary with both ratios; the compiled
    mode is not measured a second time."""
    sys.path.insert(0, str(SCRIPT.parent))
    import bench_tokenizer

    threads = torch.get_num_threads()
    try:
        bench_tokenizer.main(["--configs", "tiny", "--measure", "encode_decode", "--modes", "eager,compiled",
                              "--compile_backend", "eager", "--steps", "3", "--warmup", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)  # the bench sets the process's thread count
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["bench"], r.get("mode"), r.get("compiled")) for r in records] == [
        ("tokenizer_encode_decode", "ours", False), ("tokenizer_encode_decode", "ours_compiled", True),
        ("tokenizer_encode_decode", "official_style", False), ("tokenizer_encode_decode_summary", None, None)]
    summary = records[-1]
    assert summary["repeats"] == 3 and summary["compile_backend"] == "eager"
    for key in ("speedup_vs_official_style", "compiled_speedup_vs_official_style"):
        assert summary[key] > 0
    assert summary["compiled_speedup_min"] <= summary["compiled_speedup_vs_official_style"] <= summary["compiled_speedup_max"]


def test_bench_generate_takes_a_trained_model(tmp_path, capsys):
    """``bench_generate.py --model FOLDER`` times a saved generator (its sizes, ``--tokens`` = its max_seq_len) and
    runs the bf16 NLL check on it; a --tokens other than the model's length is refused."""
    sys.path.insert(0, str(SCRIPT.parent))
    import bench_generate

    from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig

    torch.manual_seed(0)
    config = VideoARGeneratorConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, codebook_size=16,
                                    max_seq_len=6, num_classes=3)
    VideoARGenerator(config).save_pretrained(tmp_path / "ar")
    threads = torch.get_num_threads()
    try:
        bench_generate.main(["--model", str(tmp_path / "ar"), "--modes", "kv_cache,official_style,kv_cache_bf16",
                             "--batch", "2", "--repeats", "1", "--threads", "1"])
        with pytest.raises(ValueError, match="max_seq_len"):
            bench_generate.main(["--model", str(tmp_path / "ar"), "--tokens", "8", "--modes", "kv_cache",
                                 "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    timed = [r for r in records if r["bench"] == "ar_generate"]
    assert {r["mode"] for r in timed} == {"kv_cache", "official_style", "kv_cache_bf16"}
    assert all(r["tokens"] == 6 and r["hidden_size"] == 32 and r["output_shape"] == [2, 6] for r in timed)
    quality = next(r for r in records if r["bench"] == "ar_generate_bf16_quality")
    assert quality["nll_fp32_samples_under_fp32"] > 0 and quality["nll_relative_difference"] >= 0

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from evatok_test_helpers import load_script, synthetic_table
from hf_vidtok.evatok.curves import label_table, quality_cost_curves, write_quality_cost_curves
from hf_vidtok.evatok.reward import best_assignment, compute_reward_stats, proxy_reward
from hf_vidtok.evatok.score_table import ScoreTableWriter


def _nondecreasing(values):
    return all(b >= a - 1e-12 for a, b in zip(values, values[1:]))


def test_labels_match_reward_argmax(table):
    stats = compute_reward_stats(table.lpips, table.levels, table.num_blocks, "lpips")
    labels = label_table(table, [0.4, 1.2, 2.0])
    assert set(labels) == {0.4, 1.2, 2.0}
    for w, lab in labels.items():
        r = proxy_reward(table.lpips, stats, w)
        assert lab.shape == (table.num_clips,)
        assert np.array_equal(lab.numpy(), best_assignment(r, stats=stats).numpy())
        np.testing.assert_allclose(r.max(dim=1).values.numpy(), r.numpy()[np.arange(table.num_clips), lab.numpy()])
    # more quality weight never shortens a clip's label (ties -> shorter keeps this exact)
    lengths = table.lengths
    assert (lengths[labels[0.4].numpy()] <= lengths[labels[1.2].numpy()]).all()
    assert (lengths[labels[1.2].numpy()] <= lengths[labels[2.0].numpy()]).all()
    # w_q = 2 ignores length: the best-quality assignment (the longest, here)
    assert (labels[2.0].numpy() == table.lpips.argmin(1)).all()
    with pytest.raises(ValueError, match="psnr|lpips|stats"):
        label_table(table, [1.0], stats=stats, quality_metric="mse")


def test_curves_monotone_and_files(table, tmp_path):
    curves = quality_cost_curves(table, num_thresholds=11)
    c = curves["curves"]
    uni = c["uniform"]
    assert [p["avg_tokens"] for p in uni] == [3 * k for k in table.levels]
    assert _nondecreasing([-p["mean_lpips"] for p in uni]) and _nondecreasing([p["mean_psnr"] for p in uni])
    mr = c["max_reward"]
    assert [p["w_q"] for p in mr] == sorted(p["w_q"] for p in mr)
    assert _nondecreasing([p["avg_tokens"] for p in mr]) and _nondecreasing([-p["mean_lpips"] for p in mr])
    assert mr[0]["avg_tokens"] < mr[-1]["avg_tokens"]
    thr = c["threshold"]  # strict -> loose: fewer tokens
    assert _nondecreasing([-p["avg_tokens"] for p in thr]) and thr[0]["avg_tokens"] > thr[-1]["avg_tokens"]
    ref = next(p for p in mr if p["w_q"] == 1.2)
    assert ref["reward_percentile"] == 1.0
    assert all(0.0 <= p["reward_percentile"] <= 1.0 for pts in c.values() for p in pts)
    bu = next(p for p in c["best_uniform"] if p["w_q"] == 1.2)
    assert bu["reward_percentile"] < 1.0
    assert all(p["reward_percentile"] <= ref["reward_percentile"] for p in uni + thr)
    json_path, png_path = write_quality_cost_curves(curves, tmp_path)
    assert json.load(open(json_path)) == json.loads(json.dumps(curves))
    with open(png_path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_curves_without_lpips():
    t = synthetic_table(num_clips=12, lpips=False)
    curves = quality_cost_curves(t, w_q_values=[0.8, 1.6], num_thresholds=3)
    assert curves["quality_metric"] == "mse" and "mean_lpips" not in curves["curves"]["uniform"][0]
    assert len(curves["curves"]["threshold"]) == 3


def test_label_assignments_script(table, tmp_path):
    w = ScoreTableWriter(tmp_path / "scores", table.levels, table.num_blocks, "lpips", rows_per_shard=16)
    w.add(table.keys, table.labels, table.start_frames, table.mse, table.ssim, table.lpips)
    w.flush()
    script = load_script("training/label_assignments.py")
    out = script.main(["--score_table", str(tmp_path / "scores"), "--output_dir", str(tmp_path / "labels"),
                       "--w_q", "0.8", "1.2", "--num_thresholds", "5"])
    labels = pq.read_table(out["labels"])
    assert labels.column_names == ["key", "assignment_wq0.8", "assignment_wq1.2"]
    expected = label_table(table, [1.2])[1.2].numpy()
    assert np.array_equal(labels.column("assignment_wq1.2").to_numpy(), expected)
    assert labels.column("key").to_pylist() == list(table.keys)
    stats = json.load(open(tmp_path / "labels" / "reward_stats.json"))
    # reuse the statistics: identical labels
    out2 = script.main(["--score_table", str(tmp_path / "scores"), "--output_dir", str(tmp_path / "labels2"),
                        "--w_q", "1.2", "--stats", str(tmp_path / "labels" / "reward_stats.json")])
    assert np.array_equal(pq.read_table(out2["labels"]).column("assignment_wq1.2").to_numpy(), expected)
    assert stats["quality_metric"] == "lpips" and stats["levels"] == [2, 4, 8]


def test_curves_json_is_written_without_matplotlib(table, tmp_path, monkeypatch, caplog):
    """Without the plot extra the JSON is still written (a run never dies on its plot after training)."""
    import sys

    curves = quality_cost_curves(table, num_thresholds=3)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    json_path, png_path = write_quality_cost_curves(curves, tmp_path / "no_plot")
    assert png_path is None and json.load(open(json_path))["num_clips"] == curves["num_clips"]
    assert "hf_vidtok[plot]" in caplog.text

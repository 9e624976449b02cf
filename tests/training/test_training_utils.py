"""Unit tests for hf_vidtok.training_utils (no video decoding, no model from other packages)."""

from __future__ import annotations

import math
import os
import textwrap

import pytest
import torch
from torch import nn

from hf_vidtok import training_utils as tu


# ------------------------------------------------------------------------------------------- LR schedule


def test_larp_lr_multiplier_matches_official_formula():
    w, s, m = 4, 20, 0.01
    assert tu.larp_lr_multiplier(1, w, s, m) == pytest.approx(m + (1 - m) * 1 / 4)
    assert tu.larp_lr_multiplier(4, w, s, m) == pytest.approx(1.0)
    assert tu.larp_lr_multiplier(12, w, s, m) == pytest.approx(m + (1 - m) * 0.5)  # halfway through the cosine
    assert tu.larp_lr_multiplier(20, w, s, m) == pytest.approx(m)
    assert tu.larp_lr_multiplier(25, w, s, m) == pytest.approx(m)
    step = 7
    expected = m + (1 - m) * 0.5 * (1 + math.cos(math.pi * (step - w) / (s - w)))
    assert tu.larp_lr_multiplier(step, w, s, m) == pytest.approx(expected)


class _ToyTokenizer(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(3, 3)
        self.quantizer = nn.Module()
        self.quantizer.embedding = nn.Embedding(5, 3)
        self.prior = nn.Linear(3, 3)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)


def test_param_groups_and_scheduler_keep_per_group_multipliers():
    model = _ToyTokenizer()
    groups = tu.build_param_groups(model, 1e-3, prior_lr_mult=50.0, codebook_lr_mult=2.0)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"main", "prior", "codebook"}
    assert {id(p) for p in by_name["prior"]["params"]} == {id(p) for p in model.prior.parameters()}
    assert [id(p) for p in by_name["codebook"]["params"]] == [id(model.quantizer.embedding.weight)]
    assert sum(len(g["params"]) for g in groups) == 5  # the frozen layer is left out
    opt = torch.optim.SGD(groups, lr=1e-3)
    sched = tu.get_lr_scheduler("cosine", opt, warmup_steps=2, max_steps=10, min_lr_mult=0.1)
    for k in range(12):
        mult = tu.larp_lr_multiplier(k + 1, 2, 10, 0.1)
        lrs = {g["name"]: g["lr"] for g in opt.param_groups}
        assert lrs["main"] == pytest.approx(1e-3 * mult)
        # the official trainer would reset this group to the base lr; here the multiplier survives
        assert lrs["prior"] == pytest.approx(50e-3 * mult)
        assert lrs["codebook"] == pytest.approx(2e-3 * mult)
        opt.step()
        sched.step()


def test_default_prior_lr_mult_is_the_official_effective_one():
    groups = tu.build_param_groups(_ToyTokenizer(), 3e-4)
    assert {g["lr"] for g in groups} == {3e-4}


@pytest.mark.parametrize("bad", [{"prior_lr_mult": 0.0}, {"codebook_lr_mult": -1.0}])
def test_param_group_bad_multiplier(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        tu.build_param_groups(_ToyTokenizer(), 1e-3, **bad)


def test_scheduler_bad_name_and_constant():
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5)
    with pytest.raises(ValueError, match="lr_scheduler"):
        tu.get_lr_scheduler("nope", opt, 0, 10)
    sched = tu.get_lr_scheduler("constant_with_warmup", opt, 4, 10, 0.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.25)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------- EMA


def test_ema_update_copy_and_state_roundtrip():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    ema = tu.ExponentialMovingAverage(model, decay=0.5, warmup=False)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], start + 0.5)
    state = ema.state_dict()
    other = tu.ExponentialMovingAverage(nn.Linear(4, 2), decay=0.9)
    other.load_state_dict(state)
    assert other.decay == 0.5 and other.num_updates == 1
    target = nn.Linear(4, 2)
    other.copy_to(target)
    assert torch.allclose(target.weight, start + 0.5)
    warm = tu.ExponentialMovingAverage(model, decay=0.999)
    assert warm.current_decay() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="ema_decay"):
        tu.ExponentialMovingAverage(model, decay=1.0)


# ---------------------------------------------------------------------------------------------- config


def _parser():
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--max_train_steps", type=int, default=10)
    p.add_argument("--lr_scheduler", default="cosine", choices=["cosine", "constant"])
    return p


def test_yaml_config_merged_with_cli(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("learning_rate: 3.0e-4\nmax_train_steps: 50\nmodel_config: {frame_num: 4}\n")
    args = tu.parse_args_with_config(_parser(), ["--config", str(cfg), "--max_train_steps", "7"], dict_keys=["model_config"])
    assert args.learning_rate == pytest.approx(3e-4)
    assert args.max_train_steps == 7  # the command line wins over the file
    assert args.model_config == {"frame_num": 4}
    args = tu.parse_args_with_config(_parser(), [], dict_keys=["model_config"])
    assert args.learning_rate == pytest.approx(1e-4) and args.model_config is None


def test_yaml_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 1\n")
    with pytest.raises(ValueError, match="unknown keys.*learning_rat"):
        tu.parse_args_with_config(_parser(), ["--config", str(bad)])
    bad.write_text("lr_scheduler: weird\n")
    with pytest.raises(ValueError, match="lr_scheduler"):
        tu.parse_args_with_config(_parser(), ["--config", str(bad)])
    with pytest.raises(ValueError, match="does not exist"):
        tu.parse_args_with_config(_parser(), ["--config", str(tmp_path / "missing.yaml")])


def test_output_dir_not_writable(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="output_dir"):
        tu.check_output_dir_writable(blocker / "sub")
    assert os.path.isdir(tu.check_output_dir_writable(tmp_path / "new" / "dir"))


# ------------------------------------------------------------------------------------------ clip stream


def _reader(files_per_shard: dict[int, int], log: list | None = None):
    def read(shard, num_shards, epoch):
        if log is not None:
            log.append((shard, epoch))
        for i in range(files_per_shard.get(shard, 2)):
            yield {"id": (epoch, shard, i)}

    return read


def _collate(examples):
    return {"ids": [e["id"] for e in examples]}


def _stream(process_index=0, num_processes=1, num_workers=0, num_shards=7, batch_size=3, reader=None):
    return tu.ShardedClipStream(
        reader or _reader({}), num_shards, batch_size=batch_size, collate_fn=_collate,
        process_index=process_index, num_processes=num_processes, num_workers=num_workers, seed=5,
    )


def _take(stream, n, workers=0):
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers, generator=torch.Generator())
    out = []
    for batch in loader:
        stream.mark_consumed(batch["stream_state"], len(batch["ids"]))
        out.append([tuple(int(v) for v in i) for i in batch["ids"]])
        if len(out) == n:
            break
    return out


def test_stream_splits_shards_across_processes_and_workers_without_duplicates():
    num_shards = 7
    seen = []
    for rank in range(2):
        for w in range(2):
            s = _stream(rank, 2, 2, num_shards)
            seen += s.shards_for(s.stream_id(w), epoch=0)
    assert sorted(seen) == list(range(num_shards))
    s = _stream(0, 1, 0, num_shards)
    assert s.shards_for(0, 0) != s.shards_for(0, 1)  # reshuffled every epoch
    assert sorted(s.shards_for(0, 1)) == list(range(num_shards))


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_resume_is_exact(workers):
    full = _take(_stream(num_workers=workers), 9, workers)
    first = _stream(num_workers=workers)
    head = _take(first, 4, workers)
    state = first.state_dict()
    log = []
    resumed = _stream(num_workers=workers, reader=_reader({}, log))
    resumed.load_state_dict(state)
    tail = _take(resumed, 5, workers)
    assert head + tail == full
    flat = [i for b in full for i in b]
    epoch0 = [i for i in flat if i[0] == 0]
    assert len(epoch0) == len(set(epoch0)) == 14  # every clip of epoch 0 exactly once
    if workers == 0:
        # 12 clips = 6 files were consumed: the resumed stream re-opens only the 6th (to skip its clips),
        # never the 5 files finished before the checkpoint
        order = resumed.shards_for(0, 0)
        assert [s for s, e in log if e == 0] == order[5:]


def test_stream_stops_when_every_file_is_bad_and_errors_up_front():
    stream = _stream(reader=_reader({i: 0 for i in range(7)}))
    assert _take(stream, 3) == []
    with pytest.raises(ValueError, match="empty"):
        _stream(num_shards=0)
    with pytest.raises(ValueError, match="2 processes"):
        _stream(0, 2, 0, num_shards=1)


def test_stream_counts_files_without_clips():
    stream = _stream(reader=_reader({0: 0, 1: 0}), num_shards=4, batch_size=2)
    batches = _take(stream, 4)
    assert len(batches) == 4  # 8 clips: the 2 good files of epochs 0 and 1
    assert stream.skipped_files == 2  # distinct bad files, not one per epoch
    resumed = _stream(reader=_reader({0: 0, 1: 0}), num_shards=4, batch_size=2)
    resumed.load_state_dict(stream.state_dict())
    assert resumed.skipped_files == 2


# ------------------------------------------------------------------------------------------ checkpoints


@pytest.fixture()
def accel_objects(tmp_path):
    accelerate = pytest.importorskip("accelerate")
    accelerator = tu.setup_accelerator(str(tmp_path), cpu=True)
    torch.manual_seed(0)
    model = nn.Linear(4, 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model, opt = accelerator.prepare(model, opt)
    progress = tu.TrainingProgress()
    accelerator.register_for_checkpointing(progress)
    yield accelerator, model, opt, progress
    accelerate.state.AcceleratorState._reset_state(True)


def _train_step(model, opt):
    loss = model(torch.ones(2, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()


def test_checkpoint_atomic_save_prune_and_resume(tmp_path, accel_objects, monkeypatch):
    accelerator, model, opt, progress = accel_objects
    out = str(tmp_path)
    for step in (1, 2, 3):
        _train_step(model, opt)
        progress.global_step = step
        tu.save_checkpoint(accelerator, out, step, total_limit=2)
    assert [s for s, _ in tu.list_checkpoints(out)] == [2, 3]
    assert open(os.path.join(out, "latest")).read().strip() == "checkpoint-3"
    saved = model.weight.detach().clone()

    # a save that dies half-way (process killed) leaves the previous checkpoint and pointer intact
    real_save = accelerator.save_state

    def dying_save(path):
        with open(os.path.join(path, "model.safetensors"), "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(accelerator, "save_state", dying_save)
    _train_step(model, opt)
    with pytest.raises(KeyboardInterrupt):
        tu.save_checkpoint(accelerator, out, 4, total_limit=2)
    monkeypatch.setattr(accelerator, "save_state", real_save)
    assert tu.resolve_resume_checkpoint("latest", out).endswith("checkpoint-3")
    assert os.path.isdir(os.path.join(out, ".tmp-checkpoint-4"))
    assert [s for s, _ in tu.list_checkpoints(out)] == [2, 3]
    assert tu.clean_partial_checkpoints(out) == [".tmp-checkpoint-4"]

    # resume restores the weights, optimizer and registered objects
    progress.global_step = 99
    accelerator.load_state(tu.resolve_resume_checkpoint("latest", out))
    assert torch.equal(model.weight, saved)
    assert progress.global_step == 3
    assert opt.state_dict()["state"][0]["step"].item() == 3

    # a missing pointer falls back to the highest complete checkpoint
    os.remove(os.path.join(out, "latest"))
    assert tu.resolve_resume_checkpoint("latest", out).endswith("checkpoint-3")
    with pytest.raises(ValueError, match="resume_from_checkpoint"):
        tu.resolve_resume_checkpoint(str(tmp_path / "nope"), out)
    os.makedirs(tmp_path / "checkpoint-9")
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        tu.resolve_resume_checkpoint(str(tmp_path / "checkpoint-9"), out)
    assert tu.resolve_resume_checkpoint("latest", str(tmp_path / "empty")) is None


def test_prune_never_deletes_latest(tmp_path):
    for step in (1, 2, 3):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "checkpoint_complete.json").write_text("{}")
    (tmp_path / "latest").write_text("checkpoint-1\n")
    removed = tu.prune_checkpoints(str(tmp_path), 1)
    assert sorted(os.path.basename(p) for p in removed) == ["checkpoint-2", "checkpoint-3"]
    with pytest.raises(ValueError, match="checkpoints_total_limit"):
        tu.prune_checkpoints(str(tmp_path), 0)


# ------------------------------------------------------------------------------------------- validation


def _psnr(pred, target):
    from hf_vidtok.metrics import psnr

    return psnr(pred.clamp(0, 1), target, reduction="none").float()


class _HalfModel(nn.Module):
    """encode/decode stand-in whose reconstruction is half the input."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        return type("E", (), {"quantized": x, "indices": None})()

    def decode_latents(self, q):
        return q * 0.5 + self.p


def test_evaluate_reconstruction_and_video(tmp_path):
    torch.manual_seed(0)
    clips = [torch.rand(2, 3, 4, 8, 8), torch.rand(1, 3, 4, 8, 8)]
    model = _HalfModel().train()
    res, pair = tu.evaluate_reconstruction(model, clips, metrics={"psnr": _psnr}, keep_first=2)
    expected = torch.cat([_psnr(c * 0.5, c) for c in clips]).mean().item()
    assert res["psnr"] == pytest.approx(expected, abs=1e-5) and res["num_clips"] == 3
    assert model.training  # restored
    assert pair[0].shape == (2, 3, 4, 8, 8)
    av = pytest.importorskip("av")
    path = tu.save_side_by_side_video(pair[0], pair[1], str(tmp_path / "v" / "recon.mp4"), scale=2)
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="empty"):
        tu.evaluate_reconstruction(model, [], metrics={"psnr": _psnr})


def test_write_json_atomic(tmp_path):
    path = tmp_path / "eval_results.json"
    tu.write_json_atomic(str(path), {"psnr": 1.5})
    assert path.read_text().strip().startswith("{") and [p.name for p in tmp_path.iterdir()] == ["eval_results.json"]


def test_yaml_module_docs_mention_extra():
    assert "hf_vidtok[train]" in textwrap.dedent(tu.__doc__)

"""hf_vidtok.training.checkpointing: atomic checkpoint folders, save_pretrained sub-folders through
accelerate's state hooks, exact restore of EMA / RNG / JSON states, and no pickles."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig
from hf_vidtok.losses import LeCamRegularizer
from hf_vidtok.training import (
    CheckpointState,
    TrainingProgress,
    clean_partial_checkpoints,
    find_unsafe_pickles,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    resolve_resume_checkpoint,
    save_checkpoint,
    setup_accelerator,
    write_json_atomic,
)

accelerate = pytest.importorskip("accelerate")
pytest.importorskip("diffusers")

TINY = dict(
    frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32, decoder_hidden_size=32,
    encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1, bottleneck_token_num=8,
    codebook_size=37, bottleneck_dim=8, prior_name=None,
)


class _Run:
    """A tiny tokenizer run: model + Adam + EMA + LeCam + progress + a scheduler, hooks registered."""

    def __init__(self, out):
        from diffusers.training_utils import EMAModel

        self.accelerator = setup_accelerator(str(out), cpu=True)
        torch.manual_seed(0)
        model = LarpTokenizer(LarpTokenizerConfig(**TINY))
        self.ema = EMAModel(model.parameters(), decay=0.9)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        self.sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (k + 1))
        self.model, self.opt = self.accelerator.prepare(model, opt)
        self.lecam = LeCamRegularizer(0.5)
        self.progress = TrainingProgress()
        self.state = CheckpointState(
            self.accelerator, models={"tokenizer": self.model}, emas={"tokenizer_ema": (self.ema, "tokenizer")},
            modules={"lecam": self.lecam}, states={"progress": self.progress, "lr_scheduler": self.sched},
        )

    def step(self):
        x = torch.rand(2, 3, 4, 16, 16)  # global RNG: restored on resume
        out = self.model(x)
        loss = (out.reconstruction - x).abs().mean() + 0.1 * out.vq_loss
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        self.sched.step()
        self.ema.step(self.model.parameters())
        self.lecam(torch.randn(3), torch.randn(3))
        self.progress.global_step += 1
        self.progress.history.append({"step": self.progress.global_step, "loss": loss.item()})

    def snapshot(self):
        return {
            "weights": {k: v.clone() for k, v in self.model.state_dict().items()},
            "ema": [s.clone() for s in self.ema.shadow_params],
            "ema_step": self.ema.optimization_step,
            "lecam": {k: v.clone() for k, v in self.lecam.state_dict().items()},
            "lr": self.opt.param_groups[0]["lr"],
            "progress": self.progress.state_dict(),
            "rng": (torch.rand(3), np.random.rand(), random.random()),
        }


@pytest.fixture()
def run(tmp_path):
    r = _Run(tmp_path)
    yield r
    r.state.remove()
    accelerate.state.AcceleratorState._reset_state(True)


def _equal(a, b):
    assert a["weights"].keys() == b["weights"].keys()
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert all(torch.equal(x, y) for x, y in zip(a["ema"], b["ema"])) and a["ema_step"] == b["ema_step"]
    assert all(torch.equal(a["lecam"][k], b["lecam"][k]) for k in a["lecam"])
    assert a["lr"] == b["lr"] and a["progress"] == b["progress"]
    assert torch.equal(a["rng"][0], b["rng"][0]) and a["rng"][1:] == b["rng"][1:]


def test_checkpoint_holds_pretrained_folders_and_no_pickles(tmp_path, run):
    for _ in range(2):
        run.step()
    path = save_checkpoint(run.accelerator, str(tmp_path), 2)
    names = set(os.listdir(path))
    assert {"tokenizer", "tokenizer_ema", "lecam.safetensors", "training_state.json", "rng_state_0.safetensors",
            "rng_state_0.json", "optimizer.bin", "checkpoint_complete.json"} <= names
    assert not [n for n in names if n.endswith(".pkl") or n.startswith("model")]  # weights live in tokenizer/
    assert find_unsafe_pickles(path) == []
    # every checkpoint can be evaluated or published directly
    tokenizer = LarpTokenizer.from_pretrained(os.path.join(path, "tokenizer"))
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in tokenizer.state_dict().items())
    ema = LarpTokenizer.from_pretrained(os.path.join(path, "tokenizer_ema"))
    named = [n for n, _ in run.model.named_parameters()]
    assert all(torch.equal(ema.state_dict()[n], s) for n, s in zip(named, run.ema.shadow_params))
    assert json.load(open(os.path.join(path, "tokenizer_ema", "ema_state.json")))["optimization_step"] == 2
    # the scanner does flag a pickle that needs full unpickling
    torch.save({"obj": TrainingProgress()}, os.path.join(path, "custom_checkpoint_0.pkl"))
    assert find_unsafe_pickles(path) == ["custom_checkpoint_0.pkl"]


def test_resume_restores_everything_bit_exactly(tmp_path, run):
    run.step()
    save_checkpoint(run.accelerator, str(tmp_path), 1)
    expected = run.snapshot()
    for _ in range(2):  # diverge, then come back
        run.step()
    assert load_checkpoint(run.accelerator, "latest", str(tmp_path)).endswith("checkpoint-1")
    _equal(run.snapshot(), expected)
    # continuing after the restore is the same as continuing before it (snapshots draw from every RNG)
    run.step()
    after_resume = run.snapshot()
    load_checkpoint(run.accelerator, "latest", str(tmp_path))
    run.snapshot()
    run.step()
    _equal(run.snapshot(), after_resume)


def test_checkpoint_atomic_save_prune_and_resume(tmp_path, run, monkeypatch):
    accelerator, out = run.accelerator, str(tmp_path)
    for step in (1, 2, 3):
        run.step()
        save_checkpoint(accelerator, out, step, total_limit=2)
    assert [s for s, _ in list_checkpoints(out)] == [2, 3]
    assert open(os.path.join(out, "latest")).read().strip() == "checkpoint-3"
    saved = {k: v.clone() for k, v in run.model.state_dict().items()}

    # a save that dies half-way (process killed) leaves the previous checkpoint and pointer intact
    real_save = accelerator.save_state

    def dying_save(path):
        with open(os.path.join(path, "training_state.json"), "w") as f:
            f.write("{partial")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(accelerator, "save_state", dying_save)
    run.step()
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(accelerator, out, 4, total_limit=2)
    monkeypatch.setattr(accelerator, "save_state", real_save)
    assert resolve_resume_checkpoint("latest", out).endswith("checkpoint-3")
    assert os.path.isdir(os.path.join(out, ".tmp-checkpoint-4"))
    assert [s for s, _ in list_checkpoints(out)] == [2, 3]
    assert clean_partial_checkpoints(out) == [".tmp-checkpoint-4"]

    # resume restores the weights, optimizer and states
    load_checkpoint(accelerator, "latest", out)
    assert all(torch.equal(v, saved[k]) for k, v in run.model.state_dict().items())
    assert run.progress.global_step == 3
    assert run.opt.state_dict()["state"][0]["step"].item() == 3

    # a missing pointer falls back to the highest complete checkpoint
    os.remove(os.path.join(out, "latest"))
    assert resolve_resume_checkpoint("latest", out).endswith("checkpoint-3")
    with pytest.raises(ValueError, match="resume_from_checkpoint"):
        resolve_resume_checkpoint(str(tmp_path / "nope"), out)
    os.makedirs(tmp_path / "checkpoint-9")
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_resume_checkpoint(str(tmp_path / "checkpoint-9"), out)
    assert resolve_resume_checkpoint("latest", str(tmp_path / "empty")) is None
    assert load_checkpoint(accelerator, None, out) is None


def test_prune_never_deletes_latest(tmp_path):
    for step in (1, 2, 3):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "checkpoint_complete.json").write_text("{}")
    (tmp_path / "latest").write_text("checkpoint-1\n")
    removed = prune_checkpoints(str(tmp_path), 1)
    assert sorted(os.path.basename(p) for p in removed) == ["checkpoint-2", "checkpoint-3"]
    with pytest.raises(ValueError, match="checkpoints_total_limit"):
        prune_checkpoints(str(tmp_path), 0)


def test_write_json_atomic(tmp_path):
    path = tmp_path / "eval_results.json"
    write_json_atomic(str(path), {"psnr": 1.5})
    assert path.read_text().strip().startswith("{") and [p.name for p in tmp_path.iterdir()] == ["eval_results.json"]


def test_checkpoints_print_no_transformers_progress_bars(tmp_path, run, capfd):
    """No "Writing model shards" bar interleaves with the training bar at a checkpoint; the switch comes back."""
    import transformers

    from hf_vidtok.training import quiet_hf_progress

    run.step()
    initially_on = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.enable_progress_bar()
    capfd.readouterr()
    save_checkpoint(run.accelerator, str(tmp_path), 1)
    err = capfd.readouterr().err
    assert "Writing model shards" not in err and "Loading weights" not in err
    assert transformers.utils.logging.is_progress_bar_enabled()  # the user's setting is untouched
    with quiet_hf_progress():
        assert not transformers.utils.logging.is_progress_bar_enabled()
        LarpTokenizer.from_pretrained(os.path.join(tmp_path, "checkpoint-1", "tokenizer"))
    assert "Loading weights" not in capfd.readouterr().err and transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    with quiet_hf_progress():
        pass
    assert not transformers.utils.logging.is_progress_bar_enabled()  # a disabled switch stays disabled
    if initially_on:
        transformers.utils.logging.enable_progress_bar()

"""hf_vidtok.training.optimization and LarpTokenizer.optimizer_param_groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig
from hf_vidtok.training import LR_SCHEDULERS, get_lr_scheduler, larp_lr_multiplier

TINY = dict(
    frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32, decoder_hidden_size=32,
    encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1, bottleneck_token_num=8,
    codebook_size=37, bottleneck_dim=8, prior_name="custom", prior_num_layers=1, prior_num_heads=2,
    prior_hidden_size=16, prior_max_seq_len=8,
)


def test_larp_lr_multiplier_matches_official_formula():
    w, s, m = 4, 20, 0.01
    assert larp_lr_multiplier(1, w, s, m) == pytest.approx(m + (1 - m) * 1 / 4)
    assert larp_lr_multiplier(4, w, s, m) == pytest.approx(1.0)
    assert larp_lr_multiplier(12, w, s, m) == pytest.approx(m + (1 - m) * 0.5)  # halfway through the cosine
    assert larp_lr_multiplier(20, w, s, m) == pytest.approx(m)
    assert larp_lr_multiplier(25, w, s, m) == pytest.approx(m)
    step = 7
    expected = m + (1 - m) * 0.5 * (1 + math.cos(math.pi * (step - w) / (s - w)))
    assert larp_lr_multiplier(step, w, s, m) == pytest.approx(expected)


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    model = LarpTokenizer(LarpTokenizerConfig(**TINY))
    model.decoder.requires_grad_(False)  # frozen parameters are left out of every group
    return model


def test_param_groups_and_scheduler_keep_per_group_multipliers(tokenizer):
    groups = tokenizer.optimizer_param_groups(1e-3, prior_lr_mult=50.0, codebook_lr_mult=2.0, weight_decay=0.1)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"main", "prior", "codebook"}
    assert {id(p) for p in by_name["prior"]["params"]} == {id(p) for p in tokenizer.prior.parameters()}
    assert [id(p) for p in by_name["codebook"]["params"]] == [id(tokenizer.quantizer.embedding.weight)]
    assert by_name["codebook"]["weight_decay"] == 0.0 and by_name["main"]["weight_decay"] == 0.1
    trainable = [p for p in tokenizer.parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in groups) == len(trainable) < len(list(tokenizer.parameters()))
    opt = torch.optim.SGD(groups, lr=1e-3)
    sched = get_lr_scheduler("larp_cosine", opt, warmup_steps=2, max_steps=10, min_lr_mult=0.1)
    for k in range(12):
        mult = larp_lr_multiplier(k + 1, 2, 10, 0.1)
        lrs = {g["name"]: g["lr"] for g in opt.param_groups}
        assert lrs["main"] == pytest.approx(1e-3 * mult)
        # the official trainer would reset this group to the base lr; here the multiplier survives
        assert lrs["prior"] == pytest.approx(50e-3 * mult)
        assert lrs["codebook"] == pytest.approx(2e-3 * mult)
        opt.step()
        sched.step()


def test_default_prior_lr_mult_is_the_official_effective_one(tokenizer):
    assert {g["lr"] for g in tokenizer.optimizer_param_groups(3e-4)} == {3e-4}


@pytest.mark.parametrize("bad", [{"prior_lr_mult": 0.0}, {"codebook_lr_mult": -1.0}])
def test_param_group_bad_multiplier(tokenizer, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        tokenizer.optimizer_param_groups(1e-3, **bad)


def test_diffusers_schedules_and_errors():
    assert {"larp_cosine", "linear", "cosine", "constant", "constant_with_warmup"} <= set(LR_SCHEDULERS)
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.5)
    with pytest.raises(ValueError, match="lr_scheduler"):
        get_lr_scheduler("nope", opt, 0, 10)
    with pytest.raises(ValueError, match="min_lr_mult"):
        get_lr_scheduler("larp_cosine", opt, 0, 10, 1.5)
    # diffusers' constant_with_warmup: linear from 0 over 4 steps, then the base lr
    sched = get_lr_scheduler("constant_with_warmup", opt, 4, 10)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5, 0.5])
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    sched = get_lr_scheduler("linear", opt, 0, 4)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)  # diffusers' linear decay to 0

"""Token selection: top-k / top-p semantics (Hugging Face / official), sampling distribution, greedy."""

import math

import pytest
import torch

from hf_vidtok.models.video_ar.sampling_video_ar import (
    apply_cfg,
    cfg_active,
    logits_to_probs,
    sample_from_logits,
    top_k_top_p_filtering,
)


def reference_filter(row, top_k, top_p):
    """Plain-Python restatement of the official rule for one row."""
    vals = row.tolist()
    keep = [True] * len(vals)
    if top_k > 0:
        kth = sorted(vals, reverse=True)[min(top_k, len(vals)) - 1]
        keep = [v >= kth for v in vals]
    if top_p < 1.0:
        kept = [(v, i) for i, v in enumerate(vals) if keep[i]]
        z = sum(math.exp(v) for v, _ in kept)
        order = sorted(kept, key=lambda t: -t[0])
        cum, first = 0.0, True
        new_keep = [False] * len(vals)
        for v, i in order:
            if first or cum <= top_p:  # a token is dropped once the mass before it exceeds top_p
                new_keep[i] = True
            cum += math.exp(v) / z
            first = False
        keep = new_keep
    return keep


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = top_k_top_p_filtering(logits, top_k=2)
    assert torch.equal(torch.isfinite(out), torch.tensor([[False, True, False, True, False]]))
    assert torch.equal(out[torch.isfinite(out)], torch.tensor([5.0, 4.0]))
    assert torch.isfinite(top_k_top_p_filtering(logits, top_k=99)).all()  # k > V keeps everything


def test_top_p_keeps_first_token_crossing_threshold():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    # cumulative 0.5, 0.8, 0.95, 1.0: with p = 0.7 keep 0.5 and 0.3 (the crossing token)
    assert torch.isfinite(top_k_top_p_filtering(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_k_top_p_filtering(logits, top_p=0.79)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_k_top_p_filtering(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    # the most likely token always survives
    assert torch.isfinite(top_k_top_p_filtering(logits, top_p=0.01)).tolist() == [[True, False, False, False]]


@pytest.mark.parametrize("top_k,top_p", [(0, 0.6), (5, 1.0), (7, 0.8), (3, 0.3), (0, 0.95)])
def test_filter_matches_reference_rule(top_k, top_p):
    g = torch.Generator().manual_seed(top_k * 10 + int(top_p * 100))
    logits = torch.randn(6, 17, generator=g, dtype=torch.float64) * 2
    out = top_k_top_p_filtering(logits, top_k, top_p)
    for r in range(6):
        assert torch.isfinite(out[r]).tolist() == reference_filter(logits[r], top_k, top_p)
    kept = torch.isfinite(out)
    assert torch.equal(out[kept], logits[kept])


def test_logits_to_probs_temperature_and_float32():
    logits = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.bfloat16)
    probs = logits_to_probs(logits, temperature=0.5)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs, torch.softmax(torch.tensor([[0.0, 2.0, 4.0]]), -1))
    sharp = logits_to_probs(logits, temperature=0.0)  # clamped to 1e-5: one-hot
    assert torch.equal(sharp, torch.tensor([[0.0, 0.0, 1.0]]))


def test_sampling_follows_the_filtered_distribution():
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5]).repeat(40000, 1)
    gen = torch.Generator().manual_seed(0)
    draws = sample_from_logits(logits, temperature=1.3, top_k=4, top_p=0.9, generator=gen)
    expected = logits_to_probs(logits[:1], 1.3, 4, 0.9)[0]
    freq = torch.bincount(draws, minlength=5).double() / draws.numel()
    assert freq[expected == 0].sum() == 0  # filtered tokens are never drawn
    assert torch.allclose(freq, expected.double(), atol=0.01)


def test_greedy_and_seeded_sampling():
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sample_from_logits(logits, top_k=1), logits.argmax(-1))
    assert torch.equal(sample_from_logits(logits, temperature=0.0), logits.argmax(-1))
    a = sample_from_logits(logits, generator=torch.Generator().manual_seed(5))
    b = sample_from_logits(logits, generator=torch.Generator().manual_seed(5), noise=torch.empty(8, 50))
    assert torch.equal(a, b)


def test_cfg_helpers():
    cond, uncond = torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, 0.0]])
    both = torch.cat([cond, uncond])
    torch.testing.assert_close(apply_cfg(both, 1.5), uncond + 1.5 * (cond - uncond))
    torch.testing.assert_close(apply_cfg(both, 1.5, guided=False), cond)
    assert all(cfg_active(s, -1) for s in range(10))
    assert [cfg_active(s, 2) for s in range(6)] == [True, True, True, True, False, False]

import math

import numpy as np
import pytest
import torch

from hf_vidtok.evatok.assignments import assignment_lengths, candidate_assignments
from hf_vidtok.evatok.reward import (
    RewardStats,
    best_assignment,
    best_uniform_assignment,
    compute_reward_stats,
    length_stats,
    proxy_reward,
    quality_scores,
    reward_percentile,
    threshold_assignment,
    uniform_assignment,
)

PAPER = (32, 64, 128, 256, 512)
SQRT_HALF = math.sqrt(0.5)
HAND = RewardStats(levels=(1, 2), num_blocks=2, quality_metric="lpips", quality_mean=0.5, quality_std=0.1,
                   length_mean=3.0, length_std=SQRT_HALF)  # classes (1,1) (1,2) (2,1) (2,2): lengths 2 3 3 4


def test_paper_length_statistics():
    mean, std = length_stats(PAPER, 4)
    assert mean == pytest.approx(793.6, abs=1e-9) and round(std, 2) == 349.14
    scores = np.random.default_rng(0).random((3, 625))
    stats = compute_reward_stats(scores, PAPER, 4, "lpips")
    assert stats.length_mean == pytest.approx(793.6) and round(stats.length_std, 2) == 349.14
    assert stats.quality_mean == pytest.approx(scores.mean()) and stats.quality_std == pytest.approx(scores.std())
    sub = compute_reward_stats(scores, PAPER, 4, "lpips", num_samples=500, seed=3)
    assert sub == compute_reward_stats(scores, PAPER, 4, "lpips", num_samples=500, seed=3)
    assert sub.quality_mean != stats.quality_mean and abs(sub.quality_mean - stats.quality_mean) < 0.05
    assert RewardStats.from_dict(stats.to_dict()) == stats


def test_sign_and_default_length_weight():
    scores = np.array([[0.4, 0.6, 0.5, 0.5]])
    q = quality_scores(scores, HAND)
    assert torch.allclose(q, torch.tensor([[1.0, -1.0, 0.0, 0.0]], dtype=torch.float64))  # lower LPIPS = higher Q
    ssim = RewardStats(**{**HAND.to_dict(), "quality_metric": "ssim", "levels": (1, 2)})
    assert torch.allclose(quality_scores(scores, ssim), -q)
    r = proxy_reward(scores, HAND, 1.2)
    assert torch.equal(r, proxy_reward(scores, HAND, 1.2, 0.8))
    lt = torch.tensor([-1.0, 0.0, 0.0, 1.0], dtype=torch.float64) / SQRT_HALF
    assert torch.allclose(r, 1.2 * q - 0.8 * lt)


def test_labels_hand_made_table_and_ties():
    lpips = np.array([[0.5, 0.5, 0.5, 0.5], [0.9, 0.45, 0.5, 0.2], [0.6, 0.3, 0.3, 0.6]])
    # clip 0: equal quality -> shortest; clip 1: quality pays at w_q 1.2, not at 0.4; clip 2: tie of two
    # equally long classes 1 and 2 -> the lower class id
    assert best_assignment(proxy_reward(lpips, HAND, 1.2), stats=HAND).tolist() == [0, 3, 1]
    assert best_assignment(proxy_reward(lpips, HAND, 0.4), stats=HAND).tolist() == [0, 0, 0]
    # w_q = 2 (w_l = 0): clip 0 is a 4-way exact tie -> the shortest assignment
    assert best_assignment(proxy_reward(lpips, HAND, 2.0), stats=HAND).tolist() == [0, 3, 1]
    tie = torch.tensor([[1.0, 3.0, 3.0, 3.0]], dtype=torch.float64)
    assert best_assignment(tie, lengths=torch.tensor([2, 4, 3, 3])).tolist() == [2]
    # uniform baselines: (1,1) is class 0, (2,2) class 3
    assert uniform_assignment(2, (1, 2), 2) == 3
    assert best_uniform_assignment(proxy_reward(lpips, HAND, 1.2), HAND).tolist() == [0, 3, 0]
    with pytest.raises(ValueError, match="lengths"):
        best_assignment(tie)
    with pytest.raises(ValueError, match="level"):
        uniform_assignment(3, (1, 2), 2)


def test_threshold_baseline():
    lpips = np.array([[0.30, 0.20, 0.10, 0.05], [0.9, 0.8, 0.8, 0.7], [0.3, 0.1, 0.2, 0.1]])
    # thr 0.25: clip0 -> classes 1, 2 qualify at length 3 -> the better one (2); clip1 none -> longest (3);
    # clip2: classes 1 and 2 qualify at length 3 -> the better one (1)
    assert threshold_assignment(lpips, 0.25, (1, 2), 2, "lpips").tolist() == [2, 3, 1]
    assert threshold_assignment(lpips, 1.0, (1, 2), 2, "lpips").tolist() == [0, 0, 0]
    ssim = 1.0 - lpips
    assert threshold_assignment(ssim, 0.75, (1, 2), 2, "ssim").tolist() == [2, 3, 1]


def test_reward_percentile():
    r = torch.tensor([[0.0, 1.0, 2.0], [4.0, 2.0, 0.0]], dtype=torch.float64)
    assert reward_percentile(r, [2, 0]) == 1.0
    assert reward_percentile(r, [0, 2]) == 0.0
    assert reward_percentile(r, [1, 1]) == pytest.approx(0.5)
    scores = np.random.default_rng(1).random((20, 625))
    stats = compute_reward_stats(scores, PAPER, 4)
    reward = proxy_reward(scores, stats, 1.2)
    assert reward_percentile(reward, best_assignment(reward, stats=stats)) == 1.0
    assert reward_percentile(reward, reward.argmin(dim=1)) == 0.0
    mid = reward_percentile(reward, best_uniform_assignment(reward, stats))
    assert 0.0 < mid < 1.0
    with pytest.raises(ValueError, match="chosen"):
        reward_percentile(r, [0, 3])


def test_bad_inputs():
    with pytest.raises(ValueError, match="quality_metric"):
        compute_reward_stats(np.zeros((2, 4)) + np.arange(4), (1, 2), 2, "fvd")
    with pytest.raises(ValueError, match="scores"):
        compute_reward_stats(np.zeros((2, 5)), (1, 2), 2)
    with pytest.raises(TypeError, match="scores"):
        quality_scores(np.zeros((2, 4), dtype=np.int64), HAND)
    with pytest.raises(ValueError, match="quality_std"):
        compute_reward_stats(np.ones((2, 4)), (1, 2), 2)
    with pytest.raises(TypeError, match="w_q"):
        proxy_reward(np.zeros((1, 4)), HAND, "1.2")
    assert torch.equal(assignment_lengths((1, 2), 2), candidate_assignments((1, 2), 2).sum(1))

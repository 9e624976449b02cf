import pytest
import torch

from hf_vidtok.training.assignment_sampling import AssignmentSampler, length_sorted_micro_batches, parse_assignment_sampling

LEVELS = (32, 64, 128, 256, 512)


def test_random_is_uniform_over_candidates_and_reproducible():
    sampler = parse_assignment_sampling("random", LEVELS, 4)
    a = sampler.sample(20000, torch.Generator().manual_seed(0))
    assert torch.equal(a, sampler.sample(20000, torch.Generator().manual_seed(0)))
    assert a.shape == (20000, 4) and a.dtype == torch.long
    for t in range(4):
        freq = torch.stack([(a[:, t] == k).double().mean() for k in LEVELS])
        torch.testing.assert_close(freq, torch.full((5,), 0.2, dtype=torch.float64), atol=0.015, rtol=0)
    # mean total length of a uniform draw over the 625 candidates: 793.6
    assert abs(a.sum(1).double().mean().item() - 793.6) < 6
    assert repr(sampler) == "random"


def test_uniform_k():
    sampler = parse_assignment_sampling("uniform:256", LEVELS, 4)
    assert sampler.sample(3).tolist() == [[256] * 4] * 3 and repr(sampler) == "uniform:256"


@pytest.mark.parametrize("spec", ["uniform", "uniform:100", "uniform:x", "rand", "random:3", 5])
def test_bad_specs_raise(spec):
    with pytest.raises(ValueError, match="assignment_sampling"):
        parse_assignment_sampling(spec, LEVELS, 4)


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="mode"):
        AssignmentSampler("router", LEVELS, 4)
    with pytest.raises(ValueError, match="num_blocks"):
        AssignmentSampler("random", LEVELS, 0)


def test_length_sorted_micro_batches_partition_the_batch():
    counts = torch.tensor([[512, 512], [32, 32], [64, 32], [256, 32], [32, 32]])
    groups = length_sorted_micro_batches(counts, 2)
    assert [g.tolist() for g in groups] == [[1, 4, 2], [3, 0]]
    assert sorted(torch.cat(groups).tolist()) == list(range(5))
    assert len(length_sorted_micro_batches(counts, 5)) == 5
    with pytest.raises(ValueError, match="num_micro_batches"):
        length_sorted_micro_batches(counts, 6)
    with pytest.raises(ValueError, match="token_counts"):
        length_sorted_micro_batches(counts[0], 1)

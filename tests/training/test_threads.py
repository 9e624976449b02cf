"""hf_vidtok.training.threads: the scripts' intra-op thread policy."""

import pytest
import torch

from hf_vidtok.training.threads import PARAMETERS_PER_THREAD, default_torch_num_threads, set_torch_num_threads


def test_policy_small_models_single_threaded_large_ones_share_the_cores():
    assert default_torch_num_threads(300_000, cores=16, processes_per_machine=1) == 1
    assert default_torch_num_threads(PARAMETERS_PER_THREAD - 1, cores=16, processes_per_machine=1) == 1
    assert default_torch_num_threads(3 * PARAMETERS_PER_THREAD, cores=16, processes_per_machine=1) == 3
    assert default_torch_num_threads(10**10, cores=16, processes_per_machine=1) == 16
    assert default_torch_num_threads(10**10, cores=16, processes_per_machine=4) == 4  # the cores of one process
    assert default_torch_num_threads(10**10, cores=2, processes_per_machine=4) == 1
    with pytest.raises(ValueError, match="num_parameters"):
        default_torch_num_threads(-1)


def test_set_threads_explicit_wins_then_omp_then_the_policy(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
        assert set_torch_num_threads(2) == 2 and torch.get_num_threads() == 2
        tiny = torch.nn.Linear(4, 4)
        assert set_torch_num_threads(None, [tiny, tiny]) == 1 and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert set_torch_num_threads(None, [tiny]) == 2  # the user's OMP_NUM_THREADS is kept
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="--torch_num_threads"):
                set_torch_num_threads(bad)
    finally:
        torch.set_num_threads(before)

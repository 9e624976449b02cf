import subprocess
import sys

import pytest
import torch

from hf_vidtok.evatok.assignments import (
    ancestor_node_ids,
    assignment_lengths,
    assignment_to_class,
    assignment_to_level_indices,
    candidate_assignments,
    class_to_assignment,
    num_prefix_nodes,
    prefix_class_range,
    prefix_ids,
    uniform_class_ids,
)

PAPER = (32, 64, 128, 256, 512)


def test_paper_set_order_and_lengths():
    a = candidate_assignments(PAPER, 4)
    assert a.shape == (625, 4) and a.dtype == torch.long
    assert a[0].tolist() == [32, 32, 32, 32] and a[1].tolist() == [32, 32, 32, 64]
    assert a[5].tolist() == [32, 32, 64, 32] and a[-1].tolist() == [512] * 4
    # class order is lexicographic over level indices (block 1 most significant)
    idx = assignment_to_level_indices(a, PAPER)
    keys = [tuple(r) for r in idx.tolist()]
    assert keys == sorted(keys) and len(set(keys)) == 625
    lengths = assignment_lengths(PAPER, 4).double()
    assert lengths.min() == 128 and lengths.max() == 2048
    assert lengths.mean().item() == pytest.approx(793.6)
    assert lengths.std(unbiased=False).item() == pytest.approx(349.14, abs=5e-3)


@pytest.mark.parametrize("levels,T", [((3, 5, 11), 3), ((2, 7), 5), ((4,), 2), ((1, 2, 3, 4, 5, 6, 7), 1)])
def test_round_trip_and_prefix_ranges(levels, T):
    m = len(levels)
    a = candidate_assignments(levels, T)
    assert a.shape == (m**T, T)
    cls = assignment_to_class(a, levels)
    assert torch.equal(cls, torch.arange(m**T))
    assert torch.equal(class_to_assignment(cls.view(-1, 1), levels, T).view(-1, T), a)
    for d in range(T + 1):
        p = prefix_ids(cls, levels, T, d)
        for pid in p.unique().tolist():
            members = cls[p == pid]
            prefix = a[members[0], :d].tolist()
            rng = prefix_class_range(prefix, levels, T)
            assert members.tolist() == list(rng)  # a prefix is a contiguous range
            assert (a[members, :d] == torch.tensor(prefix, dtype=torch.long)).all()
    # node ids: per depth a contiguous block of m^d ids, Σ m^d in total
    anc = ancestor_node_ids(levels, T)
    assert anc.shape == (m**T, T)
    assert num_prefix_nodes(levels, T) == sum(m**d for d in range(1, T + 1))
    assert anc.unique().numel() == num_prefix_nodes(levels, T)
    for d in range(T):
        # two classes share node d iff they share the first d+1 block counts
        same_node = anc[:, d, None] == anc[None, :, d]
        same_prefix = (a[:, None, : d + 1] == a[None, :, : d + 1]).all(-1)
        assert torch.equal(same_node, same_prefix)
    uni = uniform_class_ids(levels, T)
    assert a[uni].tolist() == [[k] * T for k in levels]


def test_paper_prefix_range_k600():
    rng = prefix_class_range((512, 128), PAPER, 4)
    assert rng == range(550, 575)
    assert (candidate_assignments(PAPER, 4)[list(rng), :2] == torch.tensor([512, 128])).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="levels"):
        candidate_assignments((64, 32), 2)
    with pytest.raises(ValueError, match="levels"):
        candidate_assignments((), 2)
    with pytest.raises(TypeError, match="levels"):
        candidate_assignments((32.0, 64.0), 2)
    with pytest.raises(ValueError, match="num_blocks"):
        candidate_assignments((32, 64), 0)
    with pytest.raises(ValueError, match=r"not in levels"):
        assignment_to_class(torch.tensor([[32, 48]]), (32, 64))
    with pytest.raises(TypeError, match="assignment"):
        assignment_to_class(torch.tensor([[32.0, 64.0]]), (32, 64))
    with pytest.raises(ValueError, match="class_ids"):
        class_to_assignment(torch.tensor([4]), (32, 64), 2)
    with pytest.raises(ValueError, match="prefix"):
        prefix_class_range((48,), (32, 64), 2)
    with pytest.raises(ValueError, match="depth"):
        prefix_ids(torch.tensor([0]), (32, 64), 2, 3)


def test_package_import_is_lazy():
    code = (
        "import sys, hf_vidtok.evatok as e, hf_vidtok.evatok.assignments as a;"
        "assert 'hf_vidtok.evatok.scoring' not in sys.modules;"
        "assert e.candidate_assignments is a.candidate_assignments;"
        "import hf_vidtok.evatok.assignments as m, ast, inspect;"
        "src = inspect.getsource(m);"
        "assert 'hf_vidtok' not in ''.join(l for l in src.splitlines() if l.startswith(('import', 'from')))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

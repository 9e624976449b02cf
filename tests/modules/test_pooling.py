import pytest
import torch

from hf_vidtok.modules.pooling import max_pyramid_queries, multilevel_pool, pyramid_grids


def test_paper_levels_on_a_16x16_block_map():
    for n in range(5, 10):
        grids = pyramid_grids(16, 16, 2**n)
        assert sum(h * w for h, w in grids) == 2**n
    assert pyramid_grids(16, 16, 512) == [(1, 1), (1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (4, 8), (8, 8), (8, 16), (16, 16)]
    assert max_pyramid_queries(16, 16) == 512


def test_nested_first_query_is_mean_and_cells_are_window_means():
    torch.manual_seed(0)
    feat = torch.randn(3, 5, 4, 8, dtype=torch.float64)
    full = multilevel_pool(feat, max_pyramid_queries(4, 8))
    assert full.shape == (3, 64, 5)
    for q in (1, 2, 4, 8, 16, 32):
        torch.testing.assert_close(multilevel_pool(feat, q), full[:, :q], rtol=0, atol=0)
    mean = feat.mean((2, 3))
    torch.testing.assert_close(full[:, 0], mean)
    torch.testing.assert_close(full[:, 1], mean)
    # grid (1, 2) splits the columns: cells 2, 3 are the left / right halves
    torch.testing.assert_close(full[:, 2], feat[..., :4].mean((2, 3)))
    torch.testing.assert_close(full[:, 3], feat[..., 4:].mean((2, 3)))
    # the last grid is the 4x8 map itself, row-major
    torch.testing.assert_close(full[:, 32:], feat.flatten(2).transpose(1, 2))


def test_non_power_of_two_maps_use_adaptive_pooling():
    assert max_pyramid_queries(12, 12) == 128 and max_pyramid_queries(3, 5) == 16
    feat = torch.randn(2, 3, 3, 5)
    assert multilevel_pool(feat, 16).shape == (2, 16, 3)


@pytest.mark.parametrize("q", [0, 3, 48, 1024, 2.0])
def test_bad_query_counts_raise(q):
    with pytest.raises(ValueError, match="num_queries"):
        pyramid_grids(16, 16, q)


def test_bad_feature_rank_raises():
    with pytest.raises(ValueError, match="feat"):
        multilevel_pool(torch.randn(2, 3, 4), 4)

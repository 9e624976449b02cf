import torch

from hf_vidtok.modules.masks import block_causal_mask, packed_block_layout


def _blocks(counts):
    return torch.cat([torch.full((k,), t) for t, k in enumerate(counts)])


def _lower_block_triangular(q_counts, k_counts):
    qb, kb = _blocks(q_counts), _blocks(k_counts)
    return torch.stack([torch.stack([kb[j] <= qb[i] for j in range(len(kb))]) for i in range(len(qb))])


def test_app_k_worked_example_four_masks():
    # 4x4x4 patch tensor = 4 blocks of 16 patches; assignment (16, 8, 2, 2) = 28 queries.
    counts = torch.tensor([[16, 8, 2, 2]])
    layout = packed_block_layout(counts, 28)
    patch_blocks = _blocks([16] * 4)[None]
    enc_self = block_causal_mask(layout.block_ids, layout.block_ids, layout.valid)
    enc_cross = block_causal_mask(layout.block_ids, patch_blocks)
    dec_self = block_causal_mask(patch_blocks, patch_blocks)
    dec_cross = block_causal_mask(patch_blocks, layout.block_ids, layout.valid)
    assert enc_self.shape == (1, 1, 28, 28) and enc_cross.shape == (1, 1, 28, 64)
    assert dec_self.shape == (1, 1, 64, 64) and dec_cross.shape == (1, 1, 64, 28)
    assert torch.equal(enc_self[0, 0], _lower_block_triangular([16, 8, 2, 2], [16, 8, 2, 2]))
    assert torch.equal(enc_cross[0, 0], _lower_block_triangular([16, 8, 2, 2], [16] * 4))
    assert torch.equal(dec_self[0, 0], _lower_block_triangular([16] * 4, [16] * 4))
    assert torch.equal(dec_cross[0, 0], _lower_block_triangular([16] * 4, [16, 8, 2, 2]))
    # spot checks of the figure: the first query sees only block 1; the last 3-D query sees all 28 tokens
    assert enc_self[0, 0, 0].sum() == 16 and enc_self[0, 0, 27].sum() == 28
    assert enc_cross[0, 0, 16].sum() == 32 and dec_cross[0, 0, 63].sum() == 28 and dec_cross[0, 0, 0].sum() == 16


def test_packed_layout_padding_and_positions():
    counts = torch.tensor([[2, 1, 4], [1, 1, 1]])
    layout = packed_block_layout(counts, 8)
    assert layout.block_ids.tolist() == [[0, 0, 1, 2, 2, 2, 2, 2], [0, 1, 2, 2, 2, 2, 2, 2]]
    assert layout.positions.tolist() == [[0, 1, 0, 0, 1, 2, 3, 0], [0, 0, 0, 0, 0, 0, 0, 0]]
    assert layout.valid.tolist() == [[True] * 7 + [False], [True] * 3 + [False] * 5]
    assert layout.starts.tolist() == [[0, 2, 3], [0, 1, 2]] and layout.lengths.tolist() == [7, 3]
    mask = block_causal_mask(layout.block_ids, layout.block_ids, layout.valid)
    # padding rows (last block id) are never empty, padding keys are never attended
    assert bool(mask.any(-1).all())
    assert not bool(mask[1, 0, :, 3:].any())


def test_block_causal_mask_broadcasts_and_rejects_bad_shapes():
    q = torch.tensor([[0, 1, 1]])
    k = torch.tensor([[0, 0, 1, 2]])
    m = block_causal_mask(q, k)
    assert m[0, 0].tolist() == [[True, True, False, False], [True, True, True, False], [True, True, True, False]]
    try:
        block_causal_mask(q[0], k)
    except ValueError as err:
        assert "q_blocks" in str(err)
    else:
        raise AssertionError("1-D q_blocks accepted")
    try:
        block_causal_mask(q, k, torch.ones(1, 3, dtype=torch.bool))
    except ValueError as err:
        assert "k_valid" in str(err)
    else:
        raise AssertionError("mis-shaped k_valid accepted")

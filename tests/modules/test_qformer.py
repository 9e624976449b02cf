import torch

from hf_vidtok.modules.masks import block_causal_mask
from hf_vidtok.modules.qformer import QFormerLayer


def _attend(attn, q_in, k_in, v_in, mask=None):
    b, lq, d = q_in.shape
    h = attn.num_heads
    q = attn.q_proj(q_in).view(b, lq, h, d // h).transpose(1, 2)
    k = attn.k_proj(k_in).view(b, -1, h, d // h).transpose(1, 2)
    v = attn.v_proj(v_in).view(b, -1, h, d // h).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / (d // h) ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return attn.out_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(b, lq, d))


def test_layer_matches_manual_detr_layer():
    torch.manual_seed(0)
    layer = QFormerLayer(12, 3, mlp_ratio=2.0).double()
    h = torch.randn(2, 5, 12, dtype=torch.float64)
    refs = torch.randn(2, 7, 12, dtype=torch.float64)
    qpos, rpos = torch.randn(1, 5, 12, dtype=torch.float64), torch.randn(1, 7, 12, dtype=torch.float64)
    smask = torch.rand(2, 1, 5, 5) > 0.3
    smask[..., torch.arange(5), torch.arange(5)] = True
    cmask = torch.rand(2, 1, 5, 7) > 0.3
    cmask[..., 0] = True
    out = layer(h, layer.reference_kv(refs, rpos), self_mask=smask, cross_mask=cmask, query_pos=qpos)
    x = layer.norm1(h)
    ref = h + _attend(layer.self_attn, x + qpos, x + qpos, x, smask)
    ref = ref + _attend(layer.cross_attn, layer.norm2(ref) + qpos, refs + rpos, refs, cmask)
    ref = ref + layer.mlp(layer.norm3(ref))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_cached_past_kv_equals_block_causal_full_run():
    torch.manual_seed(1)
    layer = QFormerLayer(16, 2).double()
    blocks = torch.tensor([[0, 0, 0, 1, 1, 2]])
    h = torch.randn(3, 6, 16, dtype=torch.float64)
    qpos = torch.randn(1, 6, 16, dtype=torch.float64)
    refs = torch.randn(3, 4, 16, dtype=torch.float64)
    ref_kv = layer.reference_kv(refs)
    full = layer(h, ref_kv, self_mask=block_causal_mask(blocks, blocks), query_pos=qpos)
    past = None
    for lo, hi in ((0, 3), (3, 5), (5, 6)):
        out, past = layer(h[:, lo:hi], ref_kv, query_pos=qpos[:, lo:hi], past_kv=past, return_kv=True)
        torch.testing.assert_close(out, full[:, lo:hi], rtol=1e-12, atol=1e-12)
    assert past[0].shape == (3, 2, 6, 8) and past[1].shape == (3, 2, 6, 8)

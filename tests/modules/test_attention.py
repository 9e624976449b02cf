import torch

from hf_vidtok.modules import Attention, QueryTransformer, TransformerBlock


def _manual_attention(attn, x, mask=None):
    b, n, d = x.shape
    qkv = x @ attn.qkv.weight.t()
    q, k, v = qkv.split(d, dim=-1)
    h = attn.num_heads
    q, k, v = (t.view(b, n, h, d // h).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / (d // h) ** 0.5
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    out = s.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(b, n, d))


def test_attention_matches_manual_softmax_with_and_without_mask():
    torch.manual_seed(0)
    attn = Attention(12, 3)
    x = torch.randn(2, 5, 12)
    torch.testing.assert_close(attn(x), _manual_attention(attn, x))
    block_causal = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]).bool()
    torch.testing.assert_close(attn(x, attn_mask=block_causal), _manual_attention(attn, x, block_causal))


def test_query_transformer_last_block_shortcut_is_exact():
    torch.manual_seed(0)
    stack = QueryTransformer(16, depth=3, num_heads=2)
    ctx, q = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    h = torch.cat([ctx, q], 1)
    for block in stack.blocks:
        h = block(h)
    torch.testing.assert_close(stack(ctx, q), h[:, -4:], atol=1e-6, rtol=1e-6)


def test_block_keys_match_timm():
    keys = set(TransformerBlock(8, 2).state_dict())
    assert keys == {
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias",
        "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
    }
    assert TransformerBlock(8, 2).norm1.eps == 1e-5

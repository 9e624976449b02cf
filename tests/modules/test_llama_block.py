"""Llama decoder block, RMSNorm and the static KV cache used by the AR generator."""

import pytest
import torch

from hf_vidtok.modules.kv_cache import StaticKVCache
from hf_vidtok.modules.llama_block import CausalSelfAttention, DropPath, LlamaBlock, swiglu_hidden_size
from hf_vidtok.modules.rms_norm import RMSNorm


def test_swiglu_hidden_size_official_rule():
    assert swiglu_hidden_size(1280) == 3584 and swiglu_hidden_size(64) == 256 and swiglu_hidden_size(384) == 1024
    assert swiglu_hidden_size(64, multiple_of=32, ffn_dim_multiplier=1.5) == 256


def test_rms_norm_formula_and_dtype():
    norm = RMSNorm(6, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(2, 3, 6)
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), ref)
    xb = x.to(torch.bfloat16)
    expected = (xb.float() * torch.rsqrt(xb.float().pow(2).mean(-1, keepdim=True) + 1e-5)).to(torch.bfloat16)
    torch.testing.assert_close(norm.to(torch.bfloat16)(xb), expected * norm.weight.to(torch.bfloat16))


def test_static_kv_cache_writes_in_place():
    cache = StaticKVCache(2, 3, 2, 8, 4)
    k = torch.randn(3, 2, 2, 4)
    v = torch.randn(3, 2, 2, 4)
    keys, values = cache.update(1, torch.tensor([5, 6]), k, v, kv_length=7)
    assert keys.shape == (3, 2, 7, 4) and keys.data_ptr() == cache.keys[1].data_ptr()
    assert torch.equal(cache.keys[1][:, :, 5:7], k) and torch.equal(cache.values[1][:, :, 5:7], v)
    assert cache.keys[0].abs().sum() == 0 and cache.keys[1][:, :, :5].abs().sum() == 0
    with pytest.raises(ValueError, match="positive"):
        StaticKVCache(2, 0, 2, 8, 4)


@pytest.mark.parametrize("kv_heads", [6, 2])
def test_block_cached_decoding_matches_full_causal_pass(kv_heads):
    torch.manual_seed(0)
    block = LlamaBlock(24, 6, 40, num_kv_heads=kv_heads).eval()
    x = torch.randn(2, 9, 24)
    full = block(x)
    cache = StaticKVCache(1, 2, kv_heads, 16, 4)
    outs = [block(x[:, :4], cache, 0, torch.arange(4), 4)]  # prefill, causal
    for p in range(4, 9):
        if p % 2:  # exact length, no mask
            outs.append(block(x[:, p : p + 1], cache, 0, torch.tensor([p]), p + 1))
        else:  # padded length with a mask over the unwritten tail
            mask = (torch.arange(16) <= p).view(1, 1, 1, 16)
            outs.append(block(x[:, p : p + 1], cache, 0, torch.tensor([p]), 16, mask))
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)


def test_attention_rejects_ambiguous_cache_layout():
    attn = CausalSelfAttention(8, 2)
    cache = StaticKVCache(1, 1, 2, 8, 4)
    with pytest.raises(ValueError, match="attn_mask"):
        attn(torch.randn(1, 3, 8), cache, 0, torch.arange(2, 5), 5)
    with pytest.raises(ValueError, match="divisible"):
        CausalSelfAttention(10, 4)


def test_drop_path_train_vs_eval():
    dp = DropPath(0.5)
    x = torch.ones(1000, 3)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0} and 300 < int((y[:, 0] == 0).sum()) < 700

"""Eager fused decode step: logits equal to the module path's (to float32 rounding: the two paths are different
matmuls, see the test), bit-identical from run to run, and LARP fixed-length sampling bit-identical to the sampler
before the fused step (tokens pinned from commit e3a6423's code)."""

import pytest
import torch

from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig
from hf_vidtok.models.video_ar.fused_step_video_ar import FusedDecodeStep, fused_gate_up_weights
from hf_vidtok.modules.kv_cache import StaticKVCache

# generate(...) outputs of the pre-change sampler (module decode step) for the models below
PINNED = {
    "cfg": [
        [15, 18, 23, 21, 4, 21, 6, 1, 23, 31, 0],
        [7, 5, 23, 0, 27, 21, 6, 2, 36, 31, 32],
        [2, 28, 3, 25, 12, 5, 14, 8, 19, 15, 17],
        [30, 11, 21, 17, 22, 21, 5, 24, 36, 22, 8],
        [34, 26, 18, 23, 4, 35, 1, 9, 36, 31, 18],
        [30, 11, 26, 2, 29, 27, 36, 2, 28, 31, 2],
    ],
    "topk": [
        [15, 26, 19, 32, 12, 22, 3, 2, 36, 31, 32],
        [18, 11, 21, 11, 26, 18, 36, 2, 36, 31, 8],
        [22, 5, 10, 36, 4, 10, 36, 31, 36, 18, 1],
        [30, 11, 21, 17, 22, 21, 5, 24, 36, 22, 8],
        [34, 26, 18, 23, 4, 10, 5, 31, 2, 31, 1],
        [29, 28, 26, 2, 29, 27, 36, 2, 28, 31, 2],
    ],
    "topp": [
        [19, 16, 25, 32, 12, 22, 3, 2, 36, 31, 32],
        [7, 5, 23, 0, 27, 21, 6, 21, 6, 21, 5],
        [2, 28, 3, 25, 4, 22, 1, 18, 28, 15, 17],
        [30, 11, 21, 17, 22, 21, 5, 24, 31, 25, 20],
        [34, 26, 18, 23, 4, 22, 1, 9, 36, 31, 32],
        [29, 28, 26, 2, 29, 27, 36, 2, 28, 31, 2],
    ],
    "cfgint": [
        [15, 18, 19, 32, 12, 0, 21, 1, 23, 31, 0],
        [18, 18, 23, 0, 27, 21, 6, 21, 6, 21, 5],
        [22, 28, 3, 27, 31, 20, 36, 31, 28, 15, 17],
        [30, 11, 28, 0, 5, 21, 5, 24, 36, 22, 8],
        [34, 26, 18, 23, 4, 35, 1, 9, 36, 31, 18],
        [30, 11, 26, 2, 29, 27, 36, 2, 28, 31, 2],
    ],
    "gqa": [
        [0, 20, 9, 28, 14, 9, 14, 17, 18, 11, 26],
        [25, 23, 14, 18, 21, 16, 25, 12, 1, 14, 6],
    ],
    "fp": [
        [15, 35, 0, 8, 1, 16, 6, 15, 35, 27, 14],
        [15, 31, 13, 1, 5, 2, 13, 19, 1, 5, 17],
    ],
}


def tiny(seed=0, **kw):
    base = dict(
        hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40, codebook_size=37,
        max_seq_len=11, num_classes=5,
    )
    torch.manual_seed(seed)
    model = VideoARGenerator(VideoARGeneratorConfig(**{**base, **kw}))
    with torch.no_grad():
        model.lm_head.weight.normal_(std=0.5)
    return model.eval()


def test_fixed_length_sampling_is_bit_identical_to_before():
    model = tiny()
    settings = {
        "cfg": dict(cfg_scale=1.5),
        "topk": dict(cfg_scale=2.0, top_k=5, temperature=0.9),
        "topp": dict(top_p=0.8),
        "cfgint": dict(cfg_scale=3.0, cfg_interval=3),
    }
    for name, kw in settings.items():
        out = model.generate([0, 1, 2, 3, 4, 5], generator=torch.Generator().manual_seed(11), **kw)
        assert out.tolist() == PINNED[name], name
    gqa = tiny(1, num_attention_heads=6, num_key_value_heads=2)
    assert gqa.generate([1, 3], cfg_scale=1.25, generator=torch.Generator().manual_seed(3)).tolist() == PINNED["gqa"]
    fp = tiny(2, frame_prediction=True, num_cond_tokens=5)
    out = fp.generate(cond_ids=torch.arange(8).view(2, 4) * 3, generator=torch.Generator().manual_seed(5))
    assert out.tolist() == PINNED["fp"]


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(num_attention_heads=6, num_key_value_heads=2),
        dict(hidden_size=128, num_attention_heads=4, intermediate_size=352, codebook_size=300),
    ],
)
def test_fused_step_logits_equal_module_step(kw):
    """The fused step multiplies by [gate; up] in one matmul and writes through ``mm(out=)``; the module path runs
    separate ``F.linear`` calls. BLAS kernels pick their blocking (and so the order of the K-sums) by shape and by
    CPU (AVX2 vs AVX-512/AMX), so the two paths agree to float32 rounding, not bit for bit, on every x86-64 CPU;
    the same path twice is bit-identical."""
    model = tiny(3, **kw)
    cfg = model.config
    rows, steps = 4, 6
    caches = [
        StaticKVCache(cfg.num_hidden_layers, rows, cfg.num_key_value_heads, 16, cfg.head_dim) for _ in range(3)
    ]
    cond = model.class_embedding(torch.tensor([0, 1, 2, 5])).unsqueeze(1)
    with torch.no_grad():
        first = [model._prefill(cond, cache) for cache in caches]
        assert torch.equal(first[0], first[1]) and torch.equal(first[1], first[2])  # the same path: bitwise
        fused = [FusedDecodeStep(model, rows, caches[1]), FusedDecodeStep(model, rows, caches[2])]
        tokens = torch.randint(0, cfg.codebook_size, (steps, rows), generator=torch.Generator().manual_seed(0))
        for i in range(steps):
            p = 1 + i
            ref = model._decode_step(tokens[i].view(rows, 1), torch.tensor([p]), caches[0], p + 1, False)
            out = fused[0](tokens[i], p, p + 1)
            again = fused[1](tokens[i], p, p + 1)
            assert torch.equal(out, again), i
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
            assert torch.equal(out.argmax(-1), ref.argmax(-1)), i
    for a, b, c in zip(caches[0].keys + caches[0].values, caches[1].keys + caches[1].values,
                       caches[2].keys + caches[2].values):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        assert torch.equal(b, c)


def test_fused_gate_up_weights_follow_weight_updates():
    model = tiny()
    first = fused_gate_up_weights(model)
    assert fused_gate_up_weights(model) is first  # cached
    mlp = model.layers[0].mlp
    assert torch.equal(first[0], torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
    with torch.no_grad():
        mlp.up_proj.weight.add_(1.0)  # in-place update (as an optimizer step) invalidates the cache
    second = fused_gate_up_weights(model)
    assert second is not first and torch.equal(second[0], torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
    assert "_fused_gate_up_cache" not in dict(model.named_buffers()) and "_fused_gate_up_cache" not in model.state_dict()


def test_bf16_matmul_step_stays_close_to_fp32_and_is_deterministic():
    """``matmul_dtype=torch.bfloat16``: bf16 operands (8-bit mantissa) in the matrix products only, so the logits
    stay within bf16 rounding of the fp32 step; the weights' bf16 copies are cached outside the state dict."""
    model = tiny(3, hidden_size=128, num_attention_heads=4, intermediate_size=352, codebook_size=300)
    cfg = model.config
    rows, steps = 4, 6
    caches = [StaticKVCache(cfg.num_hidden_layers, rows, cfg.num_key_value_heads, 16, cfg.head_dim) for _ in range(3)]
    cond = model.class_embedding(torch.tensor([0, 1, 2, 4])).unsqueeze(1)
    tokens = torch.randint(0, cfg.codebook_size, (steps, rows), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for cache in caches:
            model._prefill(cond, cache)
        fp32 = FusedDecodeStep(model, rows, caches[0])
        bf16 = [FusedDecodeStep(model, rows, caches[i], matmul_dtype=torch.bfloat16) for i in (1, 2)]
        for i in range(steps):
            p = 1 + i
            ref = fp32(tokens[i], p, p + 1).clone()
            out, again = (step(tokens[i], p, p + 1) for step in bf16)
            assert out.dtype == torch.float32 and torch.equal(out, again), i
            torch.testing.assert_close(out, ref, rtol=0.0, atol=0.05 * float(ref.abs().max()))
            assert not torch.equal(out, ref)  # the products did run in bf16
    assert not any("step_weights" in k for k in model.state_dict())
    with pytest.raises(ValueError, match="matmul_dtype"):
        FusedDecodeStep(model, rows, caches[0], matmul_dtype=torch.float16)


def test_generate_with_bf16_matmuls():
    model = tiny()
    kw = dict(cfg_scale=1.5, generator=None)
    a = model.generate([0, 1, 2], matmul_dtype=torch.bfloat16, **{**kw, "generator": torch.Generator().manual_seed(1)})
    b = model.generate([0, 1, 2], matmul_dtype=torch.bfloat16, **{**kw, "generator": torch.Generator().manual_seed(1)})
    assert a.shape == (3, model.config.max_seq_len) and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < model.config.codebook_size
    with pytest.raises(ValueError, match="matmul_dtype"):
        model.generate([0], matmul_dtype=torch.float16)
    with pytest.raises(ValueError, match="matmul_dtype"):
        model.generate([0], matmul_dtype=torch.bfloat16, use_cache=False)
    with pytest.raises(ValueError, match="matmul_dtype"):
        model.generate([0], matmul_dtype=torch.bfloat16, kv_block_size=4)

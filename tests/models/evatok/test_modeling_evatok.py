"""EvatokTokenizer: shapes, block causality, padding invariance, prefix (KV-cache) API, round trips, errors."""

import functools
import itertools

import pytest
import torch
from transformers import AutoModel

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.models.evatok import EvatokEncoderOutput, EvatokTokenizerOutput
from hf_vidtok.modules.qformer import QFormerLayer

# tiny odd sizes: 3 blocks of a 4x5 patch map, levels 1/2/8
TINY = dict(
    image_size=(16, 20), num_frames=6, patch_size=4, temporal_patch_size=2, token_levels=(1, 2, 8), hidden_size=24,
    num_attention_heads=3, encoder_layers=2, decoder_layers=2, codebook_size=37, code_dim=5, mlp_ratio=2.0,
)
LEVELS = TINY["token_levels"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest single-threaded (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(dtype=torch.float64, seed=0, **overrides):
    torch.manual_seed(seed)
    return EvatokTokenizer(EvatokTokenizerConfig(**{**TINY, **overrides})).to(dtype).eval()


def clips(b=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 6, 16, 20, generator=g, dtype=dtype)


MIXED = torch.tensor([[1, 8, 2], [8, 8, 8], [2, 1, 1]])


def test_encode_decode_forward_shapes_and_padding():
    model, x = make(), clips()
    with torch.no_grad():
        enc = model.encode(x, MIXED)
        out = model(x, MIXED, output_align_hidden_states=True)
    assert isinstance(enc, EvatokEncoderOutput) and isinstance(out, EvatokTokenizerOutput)
    assert enc.indices.shape == (3, 24) and enc.indices.dtype == torch.long
    assert enc.attention_mask.sum(1).tolist() == [11, 24, 4] and torch.equal(enc.token_counts, MIXED)
    assert torch.equal(enc.indices == -1, enc.attention_mask == 0)
    valid = enc.indices[enc.attention_mask.bool()]
    assert int(valid.min()) >= 0 and int(valid.max()) < 37
    assert enc.quantized.shape == (3, 24, 5)
    torch.testing.assert_close(enc.quantized.norm(dim=-1)[enc.attention_mask.bool()], torch.ones(39))
    assert out.reconstruction.shape == x.shape
    assert out.align_hidden_states.shape == (3, 3, 4, 5, 24)
    assert torch.equal(out.indices, enc.indices)
    # default assignment in eval mode: the largest level <= 20 patches per block
    assert model.config.default_assignment == [8, 8, 8]
    assert model.encode(x).token_counts.tolist() == [[8, 8, 8]] * 3


def test_tokens_see_the_brightness_of_flat_clips():
    # regression: a LayerNorm on the patch embeddings made c * w and w identical (grey 0.2 == grey 0.8)
    model = make()
    grey = torch.full((2, 3, 6, 16, 20), 0.8, dtype=torch.float64)
    grey[1] = 0.2
    seen = []
    model.pre_quant_proj.register_forward_hook(lambda mod, args, out: seen.append(out))
    with torch.no_grad():
        model.encode(grey, (8, 8, 8))
    z = torch.nn.functional.normalize(seen[0], dim=-1)  # what the quantiser compares with the codes
    assert (z[0] - z[1]).abs().max() > 1e-3


def test_decode_paths_agree():
    model, x = make(), clips()
    with torch.no_grad():
        out = model(x, MIXED)
        rec = model.decode(out.indices, out.token_counts)
        per_clip = [out.indices[i, : int(MIXED[i].sum())] for i in range(3)]
        rec_list = model.decode(per_clip, MIXED)
        rec_latents = model.decode_latents(out.quantized, out.token_counts)
    assert torch.equal(rec, rec_list)
    # the VQ runs in float32: lookup vs straight-through codes differ by float32 rounding only
    torch.testing.assert_close(rec, out.reconstruction, rtol=0, atol=1e-5)
    torch.testing.assert_close(rec_latents, out.reconstruction, rtol=0, atol=1e-12)


# decoder query starts: the paper's first token, the block's own pyramid cells, and those with the temporal carry
QUERY_INITS = {"first_token": dict(decoder_query_init="first_token"),
               "pyramid_cell": dict(decoder_query_init="pyramid_cell"),
               "carry_query": dict(decoder_query_init="pyramid_cell", decoder_carry="query"),
               "carry_output": dict(decoder_query_init="pyramid_cell", decoder_carry="output")}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("query_init", sorted(QUERY_INITS))
def test_block_causality_is_bit_identical(dtype, query_init):
    model = make(dtype, **QUERY_INITS[query_init])
    x = clips(2, dtype)
    nb = model.config.num_blocks
    max_len = model.config.max_tokens
    for t in range(nb - 1):
        base = (2, 8, 1)
        ref = model(x, base, max_length=max_len)
        prefix_len = sum(base[: t + 1])
        frames = slice(0, 2 * (t + 1))
        # new frames for every later block
        x2 = x.clone()
        x2[:, :, 2 * (t + 1) :] = torch.rand_like(x2[:, :, 2 * (t + 1) :])
        # and every other count for block t + 1
        for k in LEVELS:
            a = base[: t + 1] + (k,) + base[t + 2 :]
            for xx in (x, x2):
                out = model(xx, a, max_length=max_len)
                assert torch.equal(out.indices[:, :prefix_len], ref.indices[:, :prefix_len])
                assert torch.equal(out.quantized[:, :prefix_len], ref.quantized[:, :prefix_len])
                assert torch.equal(out.reconstruction[:, :, frames], ref.reconstruction[:, :, frames])
    # with tight padding (other key lengths) only reduction order can change
    tight = model(x2, (2, 1, 1))
    torch.testing.assert_close(tight.reconstruction[:, :, :2], ref.reconstruction[:, :, :2], rtol=0,
                               atol=1e-12 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("query_init", sorted(QUERY_INITS))
def test_padded_mixed_batch_equals_per_clip_runs(query_init):
    model, x = make(**QUERY_INITS[query_init]), clips()
    with torch.no_grad():
        batch = model(x, MIXED)
        for i in range(3):
            single = model(x[i : i + 1], MIXED[i : i + 1])
            n = int(MIXED[i].sum())
            assert torch.equal(batch.indices[i, :n], single.indices[0])
            torch.testing.assert_close(batch.quantized[i, :n], single.quantized[0], rtol=0, atol=1e-12)
            torch.testing.assert_close(batch.reconstruction[i], single.reconstruction[0], rtol=0, atol=1e-12)
            # same padded length as the batch: bit-identical
            padded = model(x[i : i + 1], MIXED[i : i + 1], max_length=batch.indices.shape[1])
            assert torch.equal(batch.reconstruction[i], padded.reconstruction[0])


def test_length_groups_give_the_same_results():
    model, x = make(), clips(5)
    a = torch.tensor([[8, 8, 8], [1, 1, 1], [2, 8, 1], [1, 2, 1], [8, 8, 2]])
    with torch.no_grad():
        one = model.encode(x, a, length_group_size=0)
        grouped = model.encode(x, a, length_group_size=2)
        for name in ("indices", "attention_mask", "block_ids", "token_counts"):
            assert torch.equal(getattr(grouped, name), getattr(one, name)), name
        valid = one.attention_mask.bool()
        torch.testing.assert_close(grouped.quantized[valid], one.quantized[valid], rtol=0, atol=1e-12)
        for name in ("commitment_loss", "codebook_loss"):
            torch.testing.assert_close(getattr(grouped, name), getattr(one, name), rtol=1e-6, atol=0)
        video = model.decode(one.indices, a, length_group_size=0)
        torch.testing.assert_close(model.decode(one.indices, a, length_group_size=2), video, rtol=0, atol=1e-12)
        torch.testing.assert_close(model.decode_latents(one.quantized, a, length_group_size=3),
                                   model.decode_latents(one.quantized, a, length_group_size=0), rtol=0, atol=1e-12)


def test_vq_losses_ignore_padding():
    model, x = make().train(), clips()
    ref = model(x, MIXED, compute_entropy_loss=True)
    more = model(x, MIXED, max_length=40, compute_entropy_loss=True)
    for name in ("commitment_loss", "codebook_loss", "entropy_loss"):
        torch.testing.assert_close(getattr(more, name), getattr(ref, name), rtol=1e-6, atol=1e-9)
    # token-weighted mean of the per-clip losses
    lengths = MIXED.sum(1).double()
    per_clip = torch.stack([model(x[i : i + 1], MIXED[i : i + 1]).commitment_loss for i in range(3)]).double()
    torch.testing.assert_close(ref.commitment_loss.double(), (per_clip * lengths).sum() / lengths.sum(), rtol=1e-6, atol=0)
    assert model.eval()(x, MIXED).entropy_loss == 0


@pytest.mark.parametrize("query_init", sorted(QUERY_INITS))
def test_prefix_state_paths_equal_full_forward_fp64_and_fp32(query_init):
    for dtype, atol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        model, x = make(dtype, **QUERY_INITS[query_init]), clips(2, dtype)
        checked = []

        def dfs(state, path, outs):
            if len(path) == 3:
                full = model(x, path)
                offset = 0
                for t, out in enumerate(outs):
                    assert out.block_index == t and out.reconstruction.shape == (2, 3, 2, 16, 20)
                    torch.testing.assert_close(out.reconstruction, full.reconstruction[:, :, 2 * t : 2 * t + 2], rtol=0, atol=atol)
                    assert torch.equal(out.indices, full.indices[:, offset : offset + path[t]])
                    offset += path[t]
                checked.append(path)
                return
            for k in LEVELS:  # the parent state is stepped once per child (DFS)
                out, child = model.step_block(state, k)
                assert child.num_blocks_done == len(path) + 1 and child.token_counts == path + (k,)
                dfs(child, path + (k,), outs + [out])

        with torch.no_grad():
            root = model.init_prefix_state(x)
            dfs(root, (), [])
        assert len(checked) == 27 and root.num_blocks_done == 0 and root.encoder_kv == [None, None]


def test_decoder_query_sources():
    """Which token of its block every decoder query starts from, on a 4x4 patch map with levels 2..16."""
    sizes = dict(image_size=16, num_frames=4, patch_size=4, temporal_patch_size=2, token_levels=(2, 4, 8, 16))
    i, j = torch.arange(4).repeat_interleave(4), torch.arange(4).repeat(4)  # row / column of each patch
    first = make(**sizes)._query_source_offsets(torch.arange(4))
    assert torch.equal(first, torch.zeros(4, 16, dtype=torch.long))
    cell = make(**sizes, decoder_query_init="pyramid_cell")._query_source_offsets(torch.arange(4))
    # the finest grid of each level: 1x1 (token 1), 1x2 (tokens 2-3), 2x2 (4-7), 2x4 (8-15)
    assert torch.equal(cell[0], torch.ones(16, dtype=torch.long))
    assert torch.equal(cell[1], 2 + j // 2)
    assert torch.equal(cell[2], 4 + (i // 2) * 2 + j // 2)
    assert torch.equal(cell[3], 8 + (i // 2) * 4 + j)


def test_pyramid_cell_queries_start_from_their_cell_token():
    """The decoder's input queries (layer 0): changing one cell's token changes exactly the queries of that
    cell's patches, in its own block."""
    from hf_vidtok.modules.masks import packed_block_layout

    model = make(decoder_query_init="pyramid_cell")
    counts = torch.tensor([[8, 8, 8]])
    with torch.no_grad():
        tokens = torch.randn(1, 24, model.config.hidden_size, dtype=torch.float64)
        layout = packed_block_layout(counts, 24)
        ref = model._decode_tokens(tokens, layout, counts, align_layer=0)[1]  # (1, blocks, 4, 5, D)
        tokens[0, 8 + 4] += 1.0  # block 1, token 4 = the top-left cell of the 2x2 grid
        out = model._decode_tokens(tokens, layout, counts, align_layer=0)[1]
    changed = (out != ref).any(-1)[0]  # (blocks, 4, 5)
    expect = torch.zeros_like(changed)
    expect[1, :2, :3] = True  # the 4x5 patch map's top-left cell: rows 0-1, columns 0-2
    assert torch.equal(changed, expect)


def test_temporal_carry_reaches_later_blocks_only():
    """The decoder's input queries (layer 0): with ``decoder_carry="query"`` block t's carry the same patches'
    queries of blocks < t, so changing one cell's token of block 0 changes that cell's patches in blocks 0, 1 and 2
    (and only them); with ``"output"`` block t starts from block t - 1's decoded features, so the change reaches
    every patch of the later blocks; with ``"none"`` only block 0 changes. Later blocks never reach earlier ones."""
    from hf_vidtok.modules.masks import packed_block_layout

    counts = torch.tensor([[8, 8, 8]])
    tokens = torch.randn(1, 24, TINY["hidden_size"], dtype=torch.float64)
    layout = packed_block_layout(counts, 24)
    cell = torch.zeros(3, 4, 5, dtype=torch.bool)
    cell[:, :2, :3] = True  # the 4x5 patch map's top-left cell of the 2x2 grid: rows 0-1, columns 0-2
    for carry, expect in (("query", cell), ("none", cell & (torch.arange(3) == 0)[:, None, None]),
                          ("output", cell | (torch.arange(3) > 0)[:, None, None])):
        model = make(decoder_query_init="pyramid_cell", decoder_carry=carry)
        with torch.no_grad():
            ref = model._decode_tokens(tokens, layout, counts, align_layer=0)[1]  # (1, blocks, 4, 5, D)
            # (a random change: a constant shift of a token would vanish in the LayerNorms)
            changed_tokens = tokens.clone()
            changed_tokens[0, 4] += torch.randn(tokens.shape[-1], dtype=tokens.dtype)  # block 0's top-left 2x2 cell
            out = model._decode_tokens(changed_tokens, layout, counts, align_layer=0)[1]
            later = tokens.clone()
            later[0, 16 + 4] += torch.randn(tokens.shape[-1], dtype=tokens.dtype)  # the same cell in block 2
            back, video = model._decode_tokens(later, layout, counts, align_layer=0)[::-1]
            ref_video = model._decode_tokens(tokens, layout, counts)[0]
        assert torch.equal(((out - ref).abs() > 1e-9).any(-1)[0], expect), carry
        assert torch.equal(back[0, :2], ref[0, :2]), carry  # blocks 0 and 1 never see block 2
        assert torch.equal(video[:, :, :4], ref_video[:, :, :4]), carry


def test_decoder_carry_is_validated():
    with pytest.raises(ValueError, match="decoder_carry"):
        make(decoder_carry="previous")


def test_random_assignment_in_training_mode():
    model, x = make().train(), clips(8)
    a = model(x, generator=torch.Generator().manual_seed(3)).token_counts
    b = model(x, generator=torch.Generator().manual_seed(3)).token_counts
    assert torch.equal(a, b) and a.shape == (8, 3)
    assert torch.isin(a, torch.tensor(LEVELS)).all() and len({tuple(r) for r in a.tolist()}) > 1
    draws = model.random_assignment(4000, torch.Generator().manual_seed(0))
    freq = torch.stack([(draws == k).double().mean() for k in LEVELS])
    torch.testing.assert_close(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.02, rtol=0)


def test_save_load_and_auto_model_round_trip(tmp_path):
    model, x = make(torch.float32), clips(2, torch.float32)
    model.save_pretrained(tmp_path)
    for loaded in (EvatokTokenizer.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(loaded, EvatokTokenizer)
        loaded.eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded(x, MIXED[:2]).reconstruction, model(x, MIXED[:2]).reconstruction, rtol=0, atol=0)


def test_gradients_reach_every_trainable_parameter():
    model = make(torch.float32).train()
    x = clips(3, torch.float32)
    out = model(x, MIXED, output_align_hidden_states=True)
    loss = out.reconstruction.square().mean() + out.commitment_loss + out.codebook_loss + out.entropy_loss
    loss = loss + out.align_hidden_states.square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []


def test_gradient_checkpointing_gives_the_same_gradients():
    model, x = make(torch.float64).train(), clips(2)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        if enable:
            model.activation_checkpointing_enable()
        out = model(x, MIXED[:2])
        out.reconstruction.square().mean().backward()
        grads.append(model.patch_embed.proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


# ---------------------------------------------------------------------- torch.compile(fullgraph=True)
def _compiled(fn, backend="eager"):
    """``fullgraph=True`` raises on any graph break (a host read of a tensor value, a data-dependent guard).
    The ``eager`` backend runs the captured graph with the same kernels in the same order as eager mode, so the
    results are compared bitwise; the capture (what fullgraph checks) is the same for every backend."""
    return torch.compile(fn, fullgraph=True, backend=backend)


SHORT_MIXED = torch.tensor([[1, 8, 2], [2, 2, 2], [2, 1, 1]])  # longest clip 11 < max_tokens 24


def test_compiled_fullgraph_encode_decode_forward_match_eager():
    torch._dynamo.reset()
    model, x = make(), clips()
    encode, decode, decode_latents, forward = (_compiled(f) for f in (model.encode, model.decode, model.decode_latents, model.forward))
    with torch.no_grad():
        # (assignment, padded length): a tensor is never read on the host while tracing, so it is padded to the
        # static max_tokens (or max_length); a tuple of ints is a constant and keeps tight padding
        for assignment, width in ((SHORT_MIXED, 24), (torch.tensor([2, 2, 2]), 24), ((8, 1, 2), 11)):
            enc = encode(x, assignment)
            ref = model.encode(x, assignment, max_length=width)
            assert enc.indices.shape == (3, width)
            for name in ("indices", "attention_mask", "token_counts", "block_ids", "quantized", "commitment_loss", "codebook_loss"):
                assert torch.equal(getattr(enc, name), getattr(ref, name)), name
            assert torch.equal(decode(enc.indices, enc.token_counts), model.decode(ref.indices, ref.token_counts))
            assert torch.equal(decode_latents(enc.quantized, enc.token_counts), model.decode_latents(ref.quantized, ref.token_counts))
            out, ref_out = forward(x, assignment), model(x, assignment, max_length=width)
            assert torch.equal(out.reconstruction, ref_out.reconstruction) and torch.equal(out.indices, ref_out.indices)
        # max_length gives the static width; tight eager padding holds the same tokens
        enc = encode(x, SHORT_MIXED, max_length=16)
        tight = model.encode(x, SHORT_MIXED)
        assert enc.indices.shape == (3, 16) and tight.indices.shape == (3, 11)
        assert torch.equal(enc.indices[:, :11], tight.indices) and bool((enc.indices[:, 11:] == -1).all())
        per_clip = [tight.indices[i, : int(SHORT_MIXED[i].sum())] for i in range(3)]
        assert torch.equal(decode(per_clip, SHORT_MIXED), model.decode(per_clip, SHORT_MIXED))
        # validation still runs inside the graph (torch._assert_async): bad values raise, naming the argument
        with pytest.raises(RuntimeError, match="assignment"):
            encode(x, torch.tensor([[1, 8, 4], [2, 2, 2], [2, 1, 1]]))
        with pytest.raises(RuntimeError, match="max_length"):
            encode(x, SHORT_MIXED, max_length=10)
        with pytest.raises(RuntimeError, match="pixel_values"):
            encode(x * 2, SHORT_MIXED)
        bad = enc.indices.clone()
        bad[0, 0] = 37
        with pytest.raises(RuntimeError, match="indices"):
            decode(bad, enc.token_counts)


def test_compiled_fullgraph_training_step_matches_eager():
    """Training mode (stochastic VQ, entropy loss, align states) forward + backward, traced by AOTAutograd."""
    torch._dynamo.reset()
    model, x = make().train(), clips()
    results = []
    eager = functools.partial(model.forward, max_length=24)  # the compiled call pads to max_tokens = 24
    for fn in (eager, _compiled(model.forward, backend="aot_eager")):
        model.zero_grad()
        torch.manual_seed(3)  # the stochastic code draws use the global generator in both runs
        out = fn(x, SHORT_MIXED, output_align_hidden_states=True)
        loss = out.reconstruction.square().mean() + out.commitment_loss + out.entropy_loss + out.align_hidden_states.mean()
        loss.backward()
        results.append((out.indices, loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (idx_e, loss_e, grads_e), (idx_c, loss_c, grads_c) = results
    assert torch.equal(idx_c, idx_e) and len(grads_c) == len(grads_e)
    # AOTAutograd decomposes some composite ops (the backward of GELU, LayerNorm, SDPA): float64 rounding only
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-12, atol=0)
    for gc, ge in zip(grads_c, grads_e):
        torch.testing.assert_close(gc, ge, rtol=1e-9, atol=1e-12)


def test_bf16_forward_runs():
    model = make(torch.bfloat16)
    with torch.no_grad():
        out = model(clips(2, torch.float32), MIXED[:2])
    assert out.reconstruction.dtype == torch.bfloat16 and torch.isfinite(out.reconstruction).all()


def test_app_k_masks_reach_the_layers():
    model = make(torch.float32, image_size=16, token_levels=(2, 8, 16))
    seen = []
    for layer in (*model.encoder_layers[:1], *model.decoder_layers[:1]):
        layer.register_forward_pre_hook(lambda m, a, kw: seen.append((kw["self_mask"].shape, kw["cross_mask"].shape)), with_kwargs=True)
    model(torch.rand(1, 3, 6, 16, 16), (16, 8, 2))
    assert seen == [((1, 1, 26, 26), (1, 1, 26, 48)), ((1, 1, 48, 48), (1, 1, 48, 26))]


# ---------------------------------------------------------------------- bad input
def test_bad_pixel_values_raise():
    model = make(torch.float32)
    with pytest.raises(TypeError, match="pixel_values"):
        model.encode([[0.0]])
    with pytest.raises(TypeError, match="pixel_values"):
        model.encode(torch.zeros(1, 3, 6, 16, 20, dtype=torch.uint8))
    with pytest.raises(ValueError, match="pixel_values"):
        model.encode(torch.rand(3, 6, 16, 20))
    with pytest.raises(ValueError, match="pixel_values"):
        model.encode(torch.rand(1, 3, 4, 16, 20))
    with pytest.raises(ValueError, match="pixel_values"):
        model.encode(torch.rand(1, 3, 6, 20, 16))
    with pytest.raises(ValueError, match=r"pixel_values.*\[0, 1\]"):
        model.encode(torch.rand(1, 3, 6, 16, 20) * 255)
    with pytest.raises(ValueError, match="pixel_values"):
        model.encode(torch.rand(0, 3, 6, 16, 20))


@pytest.mark.parametrize(
    "assignment, exc",
    [
        ((1, 2), ValueError),
        ((1, 2, 3), ValueError),
        ((1, 2, 8.0), ValueError),
        (torch.tensor([[1, 2, 4]]), ValueError),
        (torch.tensor([[1.0, 2.0, 8.0]]), TypeError),
        (torch.tensor([[1, 2, 8], [1, 2, 8]]), ValueError),
        ("128", TypeError),
    ],
)
def test_bad_assignments_raise(assignment, exc):
    model = make(torch.float32)
    with pytest.raises(exc, match="assignment"):
        model.encode(torch.rand(1, 3, 6, 16, 20), assignment)


def test_bad_max_length_and_align_layer_raise():
    model = make(torch.float32)
    with pytest.raises(ValueError, match="max_length"):
        model.encode(torch.rand(1, 3, 6, 16, 20), (8, 8, 8), max_length=20)
    with pytest.raises(ValueError, match="align_layer"):
        model(torch.rand(1, 3, 6, 16, 20), output_align_hidden_states=True, align_layer=5)


def test_bad_decode_inputs_raise():
    model = make(torch.float32)
    counts = torch.tensor([[1, 2, 1]])
    good = torch.tensor([[3, 4, 5, 6]])
    model.decode(good, counts)
    with pytest.raises(TypeError, match="indices"):
        model.decode(good.float(), counts)
    with pytest.raises(ValueError, match="indices"):
        model.decode(torch.tensor([3, 4, 5, 6]), counts)
    with pytest.raises(ValueError, match=r"indices.*\[0, 37\)"):
        model.decode(torch.tensor([[3, 4, 37, 6]]), counts)
    with pytest.raises(ValueError, match=r"indices.*\[0, 37\)"):
        model.decode(torch.tensor([[3, -1, 5, 6]]), counts)
    with pytest.raises(ValueError, match="token_counts"):
        model.decode(torch.tensor([[3, 4, 5, 6, 7]]), counts)  # a token beyond the counts' length
    with pytest.raises(ValueError, match="token_counts"):
        model.decode(torch.tensor([[3, 4, 5]]), counts)  # too short for the counts
    with pytest.raises(ValueError, match="token_counts"):
        model.decode(good, torch.tensor([[1, 2, 4]]))
    with pytest.raises(ValueError, match="token_counts"):
        model.decode(good, None)
    with pytest.raises(ValueError, match=r"indices\[0\].*token_counts\[0\]"):
        model.decode([torch.tensor([1, 2, 3])], counts)
    with pytest.raises(TypeError, match=r"indices\[0\]"):
        model.decode([[1, 2, 3, 4]], counts)
    with pytest.raises(ValueError, match="quantized"):
        model.decode_latents(torch.zeros(1, 4, 4), counts)
    with pytest.raises(TypeError, match="quantized"):
        model.decode_latents(torch.zeros(1, 4, 5, dtype=torch.long), counts)


def test_bad_prefix_steps_raise():
    model = make(torch.float32)
    state = model.init_prefix_state(torch.rand(1, 3, 6, 16, 20))
    with pytest.raises(ValueError, match="count"):
        model.step_block(state, 4)
    with pytest.raises(TypeError, match="state"):
        model.step_block(None, 1)
    for _ in range(3):
        _, state = model.step_block(state, 1)
    with pytest.raises(ValueError, match="state"):
        model.step_block(state, 1)


def test_qformer_layers_are_the_shared_module():
    model = make(torch.float32)
    assert all(isinstance(layer, QFormerLayer) for layer in (*model.encoder_layers, *model.decoder_layers))


REPEAT = dict(token_levels=(0, 1, 2, 8), decoder_query_init="pyramid_cell", decoder_carry="output")


def test_repeat_level_prefix_paths_equal_full_forward_and_repeat_exactly():
    """Level 0 (the repeat level): along every assignment of 0 / 1 / 2 / 8 tokens per block the prefix API equals
    the full forward, a block at 0 repeats the previous block's frames exactly, and its token ids are empty."""
    model, x = make(**REPEAT), clips(2)
    levels = REPEAT["token_levels"]
    with torch.no_grad():
        root = model.init_prefix_state(x)
        for path in itertools.product(levels, repeat=3):
            full = model(x, path)
            state, offset = root, 0
            for t, k in enumerate(path):
                out, state = model.step_block(state, k)
                frames = full.reconstruction[:, :, 2 * t : 2 * t + 2]
                torch.testing.assert_close(out.reconstruction, frames, rtol=0, atol=1e-12)
                assert torch.equal(out.indices, full.indices[:, offset : offset + k]) and out.indices.shape == (2, k)
                offset += k
                if k == 0 and t > 0:
                    torch.testing.assert_close(frames, full.reconstruction[:, :, 2 * t - 2 : 2 * t], rtol=0, atol=1e-12)
            assert int(full.attention_mask.sum(1)[0]) == sum(path)


def test_repeat_level_mixed_batch_training_and_validation():
    model, x = make(**REPEAT), clips(2)
    counts = torch.tensor([[8, 0, 2], [0, 1, 0]])
    with torch.no_grad():
        batch = model(x, counts)
        for i in range(2):
            single = model(x[i : i + 1], counts[i : i + 1])
            torch.testing.assert_close(batch.reconstruction[i : i + 1], single.reconstruction, rtol=0, atol=1e-12)
    model.train()
    model(x, counts).reconstruction.square().mean().backward()
    assert model.decoder_null_token.grad.abs().sum() > 0  # the null token is what a block-0 repeat decodes from
    with pytest.raises(ValueError, match="repeat level"):
        make(token_levels=(0, 1, 2, 8), decoder_carry="query")
    with pytest.raises(ValueError, match="repeat level"):
        make(token_levels=(0,), decoder_carry="output")
    with pytest.raises(ValueError, match=">= 0"):
        make(token_levels=(-1, 1, 2), decoder_carry="output")

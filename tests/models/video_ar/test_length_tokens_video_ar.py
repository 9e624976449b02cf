"""Variable-length (EVATok length-token) generation: config layout, build/parse round trip, padded
training loss, structure-enforcing sampling (validity, early stop, budget, forced prefix, CFG)."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig

from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig
from hf_vidtok.models.video_ar.length_tokens_video_ar import (
    LengthTokenLogitsMask,
    build_length_token_sequence,
    parse_length_token_sequence,
)

LEVELS = [2, 3, 5]
REPEAT_LEVELS = [0, 2, 5]  # with a tokenizer's repeat level: a block of its length token alone
BLOCKS = 3


def var_config(**kw):
    base = dict(
        hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40, codebook_size=13,
        num_classes=4, token_levels=LEVELS, num_blocks=BLOCKS,
    )
    return VideoARGeneratorConfig(**{**base, **kw})


def var_model(seed=0, head_std=0.5, **kw):
    torch.manual_seed(seed)
    model = VideoARGenerator(var_config(**kw))
    with torch.no_grad():
        model.lm_head.weight.normal_(std=head_std)
    return model.eval()


def random_tokens(batch, seed, levels=LEVELS, blocks=BLOCKS, codebook=13, extra_pad=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor(levels)[torch.randint(0, len(levels), (batch, blocks), generator=g)]
    l_max = int(counts.sum(1).max()) + extra_pad
    indices = torch.full((batch, l_max), -1)
    for b in range(batch):
        n = int(counts[b].sum())
        indices[b, :n] = torch.randint(0, codebook, (n,), generator=g)
    return indices, counts


def check_structure(seq, config, cap):
    """Every row parses, respects the cap, and is -1 after its end (the longest row has no -1)."""
    indices, counts = parse_length_token_sequence(seq, config)
    lengths = counts.sum(1) + config.num_blocks
    assert bool((counts.sum(1) <= cap).all())
    cols = torch.arange(seq.shape[1])
    assert torch.equal(seq < 0, cols >= lengths[:, None])
    assert seq.shape[1] == int(lengths.max())
    return indices, counts


# ---------------------------------------------------------------- config


def test_config_length_token_layout_and_serialisation(tmp_path):
    c = var_config()
    assert c.is_variable_length and c.token_levels == LEVELS and c.num_blocks == BLOCKS
    assert c.length_token_ids == [13, 14, 15] and c.filler_token_id == 13
    assert (c.vocab_size, c.output_vocab_size, c.max_seq_len) == (16, 16, BLOCKS * (1 + 5))
    fp = var_config(frame_prediction=True, num_cond_tokens=7)
    assert fp.separator_token_id == 13 and fp.length_token_ids == [14, 15, 16] and fp.output_vocab_size == 17
    explicit = var_config(length_token_ids=[20, 21, 22], vocab_size=23)
    assert explicit.output_vocab_size == 23 and explicit.length_token_ids == [20, 21, 22]
    c.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert (loaded.token_levels, loaded.num_blocks, loaded.length_token_ids) == (LEVELS, BLOCKS, [13, 14, 15])
    # a config written before length tokens existed loads as fixed-length, unchanged
    old = VideoARGeneratorConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=3, codebook_size=13).to_dict()
    for key in ("token_levels", "num_blocks", "length_token_ids"):
        old.pop(key)
    legacy = VideoARGeneratorConfig.from_dict(old)
    assert not legacy.is_variable_length and legacy.filler_token_id is None
    assert (legacy.vocab_size, legacy.output_vocab_size, legacy.max_seq_len) == (13, 13, 1024)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_blocks=None), "token_levels"),
        (dict(token_levels=[3, 2]), "ascending"),
        (dict(token_levels=[-1, 2]), "non-negative"),
        (dict(token_levels=[0]), "positive"),
        (dict(token_levels=[0, 0, 2]), "ascending"),
        (dict(num_blocks=0), "num_blocks"),
        (dict(max_seq_len=8), "max_seq_len"),
        (dict(length_token_ids=[13, 14]), "length_token_ids"),
        (dict(length_token_ids=[13, 13, 14]), "length_token_ids"),
        (dict(length_token_ids=[5, 14, 15]), "codebook_size"),
        (dict(output_vocab_size=15), "output_vocab_size"),
        (dict(frame_prediction=True, num_cond_tokens=4, length_token_ids=[13, 14, 15]), "distinct"),
    ],
)
def test_config_rejects_bad_layouts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        var_config(**kwargs)
    with pytest.raises(ValueError, match="length_token_ids"):
        VideoARGeneratorConfig(codebook_size=13, length_token_ids=[13])


# ---------------------------------------------------------------- build / parse


@pytest.mark.parametrize("levels", [LEVELS, REPEAT_LEVELS])
@pytest.mark.parametrize("seed", range(6))
def test_build_parse_round_trip_is_exact(seed, levels):
    config = var_config(token_levels=levels)
    indices, counts = random_tokens(5, seed, levels=levels, extra_pad=seed % 2)
    batch = build_length_token_sequence(indices, counts, config)
    lengths = counts.sum(1) + BLOCKS
    assert batch.input_ids.shape == (5, int(lengths.max()))
    assert torch.equal(batch.attention_mask.sum(1), lengths)
    assert torch.equal(batch.labels == -100, batch.attention_mask == 0)
    assert bool((batch.input_ids[batch.attention_mask == 0] == config.filler_token_id).all())
    # explicit layout of row 0: [LEN(c0), c0 codes, LEN(c1), ...]
    row, pos, start = batch.input_ids[0], 0, 0
    for c in counts[0].tolist():
        assert row[pos] == config.length_token_ids[levels.index(c)]
        assert torch.equal(row[pos + 1 : pos + 1 + c], indices[0, start : start + c])
        pos, start = pos + 1 + c, start + c
    got_indices, got_counts = parse_length_token_sequence(batch.input_ids, config)
    assert torch.equal(got_counts, counts)
    assert torch.equal(got_indices, indices[:, : int(counts.sum(1).max())])
    padded = build_length_token_sequence(indices, counts, config, pad_to=config.max_seq_len)
    assert padded.input_ids.shape == (5, config.max_seq_len)
    assert torch.equal(padded.input_ids[:, : batch.input_ids.shape[1]], batch.input_ids)
    # generated-style tails (-1 after the end) parse too, and rebuilding gives the same sequence
    tail = batch.input_ids.masked_fill(batch.attention_mask == 0, -1)
    again = build_length_token_sequence(*parse_length_token_sequence(tail, config), config)
    assert torch.equal(again.input_ids, batch.input_ids)


def test_build_and_parse_reject_bad_input():
    config = var_config()
    indices, counts = random_tokens(2, 0)
    with pytest.raises(ValueError, match="token_levels"):
        build_length_token_sequence(indices, counts.clamp_max(4), config)
    with pytest.raises(ValueError, match="num_blocks"):
        build_length_token_sequence(indices, counts[:, :2], config)
    with pytest.raises(ValueError, match="padded with -1"):
        build_length_token_sequence(indices.clamp_min(0), counts, config)
    with pytest.raises(ValueError, match="columns"):
        build_length_token_sequence(indices[:, :3], counts, config)
    bad = indices.clone()
    bad[0, 0] = 13
    with pytest.raises(ValueError, match="visual ids"):
        build_length_token_sequence(bad, counts, config)
    with pytest.raises(TypeError, match="indices"):
        build_length_token_sequence(indices.tolist(), counts, config)
    with pytest.raises(ValueError, match="variable-length"):
        build_length_token_sequence(indices, counts, VideoARGeneratorConfig(codebook_size=13))
    seq = build_length_token_sequence(indices, counts, config).input_ids
    with pytest.raises(ValueError, match="length token of block 0"):
        parse_length_token_sequence(seq[:, 1:], config)
    cut = seq[:, : 1 + int(counts[:, 0].min())]
    with pytest.raises(ValueError, match="length token of block 1 at the end"):
        parse_length_token_sequence(cut, config)
    broken = seq.clone()
    broken[0, 1] = config.length_token_ids[1]
    with pytest.raises(ValueError, match="non-visual"):
        parse_length_token_sequence(broken, config)


# ---------------------------------------------------------------- training loss


def test_padded_loss_equals_unpadded_per_sample_loss():
    model = var_model(token_dropout=0.0, resid_dropout=0.0, ffn_dropout=0.0)
    indices, counts = random_tokens(4, 3)
    batch = build_length_token_sequence(indices, counts, model.config)
    labels = torch.tensor([0, 3, 1, 2])
    with torch.no_grad():
        out = model(batch.input_ids, class_labels=labels, labels=batch.labels)
        per_token = F.cross_entropy(out.logits.transpose(1, 2), batch.labels, reduction="none")
        total, n_tokens = 0.0, 0
        for b in range(4):
            n = int(batch.attention_mask[b].sum())
            alone = model(batch.input_ids[b : b + 1, :n], class_labels=labels[b : b + 1], labels=batch.labels[b : b + 1, :n])
            torch.testing.assert_close(per_token[b, :n].mean(), alone.loss, atol=1e-6, rtol=1e-6)
            assert bool((per_token[b, n:] == 0).all())
            total, n_tokens = total + alone.loss * n, n_tokens + n
    torch.testing.assert_close(out.loss, total / n_tokens, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("seed", range(12))
def test_random_masked_sampling_always_parses(seed):
    model = var_model(seed, head_std=2.0 + seed % 3)
    g = torch.Generator().manual_seed(seed)
    kw = [
        dict(temperature=1.5),
        dict(cfg_scale=2.5, top_k=4),
        dict(top_p=0.7, temperature=0.8),
        dict(cfg_scale=1.5, top_k=1),
    ][seed % 4]
    cap = [None, 9, 6, 12][seed % 4]
    seq = model.generate(torch.arange(6) % 4, generator=g, max_total_tokens=cap, **kw)
    check_structure(seq, model.config, cap if cap is not None else model.config.max_seq_len - BLOCKS)


def test_cache_and_no_cache_sample_the_same_structures():
    model = var_model(1, head_std=2.0)
    kw = dict(cfg_scale=1.5, temperature=1.2)
    a = model.generate([0, 1, 2, 3], generator=torch.Generator().manual_seed(4), **kw)
    b = model.generate([0, 1, 2, 3], generator=torch.Generator().manual_seed(4), use_cache=False, **kw)
    assert torch.equal(a, b)
    check_structure(a, model.config, model.config.max_seq_len - BLOCKS)


def test_max_total_tokens_is_never_exceeded():
    model = var_model(2, head_std=3.0)
    with torch.no_grad():  # push the model towards the longest level so that the cap binds
        model.lm_head.weight[model.config.length_token_ids[-1]] += 5.0 * model.norm.weight.sign()
    free = model.generate(list(range(4)) * 2, generator=torch.Generator().manual_seed(0))
    assert int(check_structure(free, model.config, 15)[1].sum(1).max()) > 10
    for cap in (6, 7, 8, 10, 11):
        for seed in range(3):
            seq = model.generate(list(range(4)) * 2, generator=torch.Generator().manual_seed(seed), max_total_tokens=cap)
            _, counts = check_structure(seq, model.config, cap)
            assert seq.shape[1] <= BLOCKS + cap
    seq = model.generate([0, 1], max_total_tokens=6, top_k=1)  # the minimum: every block at the smallest level
    assert torch.equal(check_structure(seq, model.config, 6)[1], torch.full((2, 3), 2))


def test_forced_prefix_is_respected():
    model = var_model(3, head_std=2.0)
    seq = model.generate([0, 1, 2, 3], forced_prefix=[5, 2], generator=torch.Generator().manual_seed(1))
    _, counts = check_structure(seq, model.config, 15)
    assert torch.equal(counts[:, :2], torch.tensor([[5, 2]] * 4))
    per_row = torch.tensor([[3], [5], [2], [3]])
    seq = model.generate([0, 1, 2, 3], forced_prefix=per_row, max_total_tokens=9, generator=torch.Generator().manual_seed(2))
    _, counts = check_structure(seq, model.config, 9)
    assert torch.equal(counts[:, :1], per_row)
    seq = model.generate([0, 1], forced_prefix=[5, 5, 5], top_k=1)
    assert torch.equal(check_structure(seq, model.config, 15)[1], torch.full((2, 3), 5))


def test_frame_prediction_variable_length_with_forced_condition_blocks():
    model = var_model(4, head_std=2.0, frame_prediction=True, num_cond_tokens=8)
    cond = torch.randint(0, 13, (3, 7), generator=torch.Generator().manual_seed(0))
    seq = model.generate(cond_ids=cond, forced_prefix=[5, 2], generator=torch.Generator().manual_seed(0), temperature=1.3)
    _, counts = check_structure(seq, model.config, 15)
    assert torch.equal(counts[:, :2], torch.tensor([[5, 2]] * 3))


def test_early_stop_ends_the_loop_once_every_row_is_done():
    model = var_model(5, head_std=2.0)
    steps = []
    # forced smallest levels: every row ends after 3 * (1 + 2) = 9 tokens out of at most 18
    seq = model.generate([0, 1, 2], forced_prefix=[2, 2, 2], stop_every=1, step_callback=steps.append)
    assert seq.shape == (3, 9) and not bool((seq < 0).any())
    assert steps == list(range(10))  # token 9 (the first filler) is sampled, then the check stops the loop
    steps.clear()
    seq = model.generate([0, 1, 2], forced_prefix=[2, 2, 2], stop_every=4, step_callback=steps.append, use_cache=False)
    assert seq.shape == (3, 9) and steps == list(range(13))
    steps.clear()
    model.generate([0], forced_prefix=[2, 2, 2], step_callback=steps.append)
    assert len(steps) == BLOCKS + 15  # stop_every=64 > loop length: runs to the cap


def test_cfg_greedy_follows_masked_guided_logits():
    model = var_model(6, head_std=2.0)
    labels = [0, 3]
    seq = model.generate(labels, cfg_scale=3.0, top_k=1)
    _, counts = check_structure(seq, model.config, 15)
    ids = seq.masked_fill(seq < 0, model.config.filler_token_id)
    with torch.no_grad():
        cond = model(ids, class_labels=labels).logits
        uncond = model(ids, class_labels=[4, 4]).logits
    guided = uncond + 3.0 * (cond - uncond)
    mask = LengthTokenLogitsMask(model.config, 2)
    n = seq.shape[1]
    for step in range(n):
        allowed = mask(step, ids)
        pick = guided[:, step].masked_fill(~allowed, float("-inf")).argmax(-1)
        live = seq[:, step] >= 0
        assert torch.equal(pick[live], seq[live, step])
    unguided = model.generate(labels, top_k=1)
    with torch.no_grad():
        plain = model(unguided.masked_fill(unguided < 0, model.config.filler_token_id), class_labels=labels).logits
    first = plain[:, 0].masked_fill(~LengthTokenLogitsMask(model.config, 2)(0, unguided), float("-inf")).argmax(-1)
    assert torch.equal(first, unguided[:, 0])


def test_user_mask_is_combined_and_seeded_sampling_reproducible():
    model = var_model(7, head_std=2.0)
    codebook = model.config.codebook_size

    def even_codes_only(step, sequences):
        allowed = torch.ones(model.config.output_vocab_size, dtype=torch.bool)
        allowed[1:codebook:2] = False
        return allowed

    kw = dict(cfg_scale=1.5, logits_mask_fn=even_codes_only, temperature=1.5)
    a = model.generate([0, 1, 2], generator=torch.Generator().manual_seed(9), **kw)
    b = model.generate([0, 1, 2], generator=torch.Generator().manual_seed(9), **kw)
    assert torch.equal(a, b)
    indices, _ = check_structure(a, model.config, 15)
    assert bool((indices[indices >= 0] % 2 == 0).all())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(max_new_tokens=5), "max_total_tokens"),
        (dict(max_total_tokens=5), "max_total_tokens"),
        (dict(max_total_tokens=16), "max_seq_len"),
        (dict(forced_prefix=[4]), "token_levels"),
        (dict(forced_prefix=[2, 2, 2, 2]), "forced_prefix"),
        (dict(forced_prefix=[5, 5], max_total_tokens=11), "max_total_tokens"),
        (dict(forced_prefix="55"), "forced_prefix"),
        (dict(stop_every=0), "stop_every"),
    ],
)
def test_generate_bad_variable_length_arguments(kwargs, match):
    model = var_model()
    error = TypeError if kwargs.get("forced_prefix") == "55" else ValueError
    with pytest.raises(error, match=match):
        model.generate([0, 1], **kwargs)


def test_length_arguments_need_a_variable_length_model():
    torch.manual_seed(0)
    model = VideoARGenerator(VideoARGeneratorConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=3,
                                                    codebook_size=13, max_seq_len=5, num_classes=3)).eval()
    for kw in (dict(max_total_tokens=4), dict(forced_prefix=[2])):
        with pytest.raises(ValueError, match="variable-length"):
            model.generate([0], **kw)
    with pytest.raises(ValueError, match="variable-length"):
        model.parse_generated(torch.zeros(1, 5, dtype=torch.long))


def test_repeat_level_blocks_are_their_length_token_alone():
    """Level 0 (a tokenizer's repeat level): sampled blocks of 0 tokens are one length token, the budget counts
    them as 0, a forced 0 is kept, and the samples round-trip through parse / build."""
    model = var_model(5, head_std=2.0, token_levels=REPEAT_LEVELS)
    c = model.config
    with torch.no_grad():  # make the repeat level likely so that every row has some
        model.lm_head.weight[c.length_token_ids[0]] += 2.0 * model.norm.weight.sign()
    seq = model.generate(list(range(4)) * 3, generator=torch.Generator().manual_seed(0), temperature=1.5)
    indices, counts = check_structure(seq, c, c.max_seq_len - BLOCKS)
    assert bool((counts == 0).any()) and bool((counts > 0).any())
    for b in range(seq.shape[0]):  # explicit layout: LEN(c) then c visual ids, nothing for c = 0
        pos = 0
        for k in counts[b].tolist():
            assert int(seq[b, pos]) == c.length_token_ids[REPEAT_LEVELS.index(k)]
            assert bool((seq[b, pos + 1 : pos + 1 + k] < c.codebook_size).all())
            pos += 1 + k
    again = build_length_token_sequence(indices, counts, c)
    assert torch.equal(again.input_ids.masked_fill(again.attention_mask == 0, -1), seq)
    # the smallest budget: everything after the forced first block repeats it
    seq = model.generate([0, 1], forced_prefix=[5], max_total_tokens=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(check_structure(seq, c, 5)[1], torch.tensor([[5, 0, 0]] * 2))
    assert seq.shape[1] == BLOCKS + 5
    seq = model.generate([2, 3], forced_prefix=[2, 0], generator=torch.Generator().manual_seed(2))
    assert torch.equal(check_structure(seq, c, c.max_seq_len - BLOCKS)[1][:, :2], torch.tensor([[2, 0]] * 2))

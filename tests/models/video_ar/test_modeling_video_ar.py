"""VideoARGenerator: official fixture parity, forward/loss semantics, KV-cache generation, bad inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel

from hf_vidtok.models.video_ar import VideoARGenerator, VideoARGeneratorConfig
from hf_vidtok.models.video_ar.convert_larp_ar_original_to_hf import load_original_model

ATOL = RTOL = 1e-5


def tiny_config(**kw):
    base = dict(
        hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40, codebook_size=37,
        max_seq_len=11, num_classes=5,
    )
    return VideoARGeneratorConfig(**{**base, **kw})


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    model = VideoARGenerator(tiny_config(**kw))
    with torch.no_grad():  # the official init zeroes the head; make the logits informative
        model.lm_head.weight.normal_(std=0.5)
    return model.eval()


# ---------------------------------------------------------------- official fixture parity


@pytest.fixture(scope="module")
def official_ar(larp_fixture_dir):
    d = larp_fixture_dir / "ar"
    return load_original_model(str(d)), load_file(d / "inputs.safetensors"), load_file(d / "outputs.safetensors")


@pytest.fixture(scope="module")
def official_fp(larp_fixture_dir):
    d = larp_fixture_dir / "ar_fp"
    return load_original_model(str(d)), load_file(d / "inputs.safetensors"), load_file(d / "outputs.safetensors")


def test_class_conditional_fixture_logits_and_loss(official_ar):
    model, inp, ref = official_ar
    tokens, labels = inp["tokens"], inp["class_labels"]
    with torch.no_grad():
        out = model(tokens, class_labels=labels, labels=tokens)
        null = model(tokens, class_labels=torch.tensor([-1, model.config.null_class_id]))
    torch.testing.assert_close(out.logits, ref["logits"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(null.logits, ref["logits_null"], atol=ATOL, rtol=RTOL)
    assert abs(out.loss.item() - ref["loss"].item()) <= 1e-5


@pytest.mark.parametrize("cfg_scale,key", [(1.5, "greedy_cfg1.5"), (1.0, "greedy_nocfg")])
@pytest.mark.parametrize("cache", ["exact", "block", "none"])
def test_class_conditional_fixture_greedy(official_ar, cfg_scale, key, cache):
    model, inp, ref = official_ar
    kw = {"exact": {}, "block": {"kv_block_size": 16}, "none": {"use_cache": False}}[cache]
    seq = model.generate(inp["class_labels"], cfg_scale=cfg_scale, top_k=1, **kw)
    assert seq.dtype == torch.long and torch.equal(seq, ref[key])


def test_frame_prediction_fixture_logits_loss_greedy(official_fp):
    model, inp, ref = official_fp
    tokens, cond = inp["tokens"], inp["cond_tokens"]
    with torch.no_grad():
        out = model(tokens, cond_ids=cond, labels=tokens)
        out_nosep = model(tokens, cond_ids=cond[:, :-1])
    torch.testing.assert_close(out.logits, ref["logits"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out_nosep.logits, ref["logits"], atol=ATOL, rtol=RTOL)
    assert abs(out.loss.item() - ref["loss"].item()) <= 1e-5
    for kw in ({}, {"kv_block_size": 16}, {"use_cache": False}):
        assert torch.equal(model.generate(cond_ids=cond, top_k=1, **kw), ref["greedy"]), kw
    assert torch.equal(model.generate(cond_ids=cond[:, :-1], top_k=1), ref["greedy"])


# ---------------------------------------------------------------- forward semantics


def test_forward_shapes_loss_and_ignore_index():
    model = tiny_model()
    ids = torch.randint(0, 37, (3, 11))
    out = model(ids, class_labels=torch.tensor([0, 4, 2]), labels=ids)
    assert out.logits.shape == (3, 11, 37)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits.reshape(-1, 37), ids.reshape(-1)))
    masked = ids.clone()
    masked[:, 5:] = -100
    part = model(ids, class_labels=torch.tensor([0, 4, 2]), labels=masked).loss
    torch.testing.assert_close(part, F.cross_entropy(out.logits[:, :5].reshape(-1, 37), ids[:, :5].reshape(-1)))
    first = model(None, class_labels=torch.tensor([0, 4, 2])).logits
    torch.testing.assert_close(first[:, 0], out.logits[:, 0])
    short = model(ids[:, :4], class_labels=torch.tensor([0, 4, 2])).logits
    torch.testing.assert_close(short, out.logits[:, :4], atol=1e-6, rtol=1e-5)


def test_forward_is_causal_and_conditioned():
    model = tiny_model()
    ids = torch.randint(0, 37, (1, 11))
    changed = ids.clone()
    changed[0, 6] = (ids[0, 6] + 1) % 37
    a = model(ids, class_labels=[1]).logits
    b = model(changed, class_labels=[1]).logits
    torch.testing.assert_close(a[:, :7], b[:, :7])  # logits[:, i] sees tokens < i only
    assert not torch.allclose(a[:, 7:], b[:, 7:])
    assert not torch.allclose(a, model(ids, class_labels=[2]).logits)


def test_class_dropout_only_in_training():
    model = tiny_model(class_dropout_prob=0.5, token_dropout=0.0, resid_dropout=0.0, ffn_dropout=0.0)
    ids = torch.randint(0, 37, (64, 3))
    labels = torch.full((64,), 2)
    cond = model(ids, class_labels=labels).logits[:, 0]
    null = model(ids, class_labels=torch.full((64,), 5)).logits[:, 0]
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        drop = model(ids, class_labels=labels).logits[:, 0]
    is_null = (drop - null).abs().amax(-1) < 1e-5
    is_cond = (drop - cond).abs().amax(-1) < 1e-5
    assert bool((is_null ^ is_cond).all()) and 10 < int(is_null.sum()) < 54


def test_gradient_checkpointing_same_gradients():
    ids = torch.randint(0, 37, (2, 11))
    grads = []
    for ckpt in (False, True):
        model = tiny_model(token_dropout=0.0, resid_dropout=0.0, ffn_dropout=0.0).train()
        if ckpt:
            model.activation_checkpointing_enable()
        model(ids, class_labels=[0, 1], labels=ids).loss.backward()
        grads.append(model.layers[0].self_attn.qkv_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_init_matches_official_recipe():
    torch.manual_seed(0)
    model = VideoARGenerator(tiny_config(initializer_range=0.05))
    assert torch.count_nonzero(model.lm_head.weight) == 0
    assert 0.04 < model.embed_tokens.weight.std() < 0.06 and 0.015 < model.position_embedding.std() < 0.025
    assert torch.equal(model.norm.weight, torch.ones(24))


def test_optimizer_param_groups_decay_linear_weights_only():
    model = tiny_model()
    decay, no_decay = model.optimizer_param_groups(0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert sorted(names[id(p)] for p in decay["params"]) == sorted(
        n for n, _ in model.named_parameters() if n.endswith(("proj.weight", "lm_head.weight"))
    )
    assert {names[id(p)] for p in no_decay["params"]} >= {"embed_tokens.weight", "class_embedding.weight", "position_embedding", "norm.weight"}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_save_load_roundtrip(tmp_path):
    model = tiny_model(frame_prediction=True, num_cond_tokens=5)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is VideoARGenerator
    cond = torch.randint(0, 37, (2, 4))
    ids = torch.randint(0, 37, (2, 11))
    torch.testing.assert_close(loaded(ids, cond_ids=cond).logits, model(ids, cond_ids=cond).logits)


def test_fixed_sincos_positions_are_not_saved(tmp_path):
    model = tiny_model(use_fixed_pe=True)
    assert "position_embedding" not in model.state_dict()
    model.save_pretrained(tmp_path)
    loaded = VideoARGenerator.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.position_embedding, model.position_embedding)
    assert model.position_embedding[0, 0, 12:].eq(1).all()  # cos(0) half of position 0


def test_grouped_query_attention_cache_matches_full_pass():
    model = tiny_model(num_attention_heads=6, num_key_value_heads=2)
    seq = model.generate([1, 3], cfg_scale=2.0, top_k=1)
    ref = model.generate([1, 3], cfg_scale=2.0, top_k=1, use_cache=False)
    assert torch.equal(seq, ref)


# ---------------------------------------------------------------- generation


def test_generate_cache_equals_no_cache_and_teacher_forcing():
    model = tiny_model()
    seq = model.generate([0, 2, 4], cfg_scale=1.0, top_k=1)
    assert seq.shape == (3, 11) and seq.dtype == torch.long
    assert torch.equal(seq, model.generate([0, 2, 4], top_k=1, use_cache=False))
    # greedy tokens are the argmax of the teacher-forced logits on the generated sequence
    logits = model(seq, class_labels=[0, 2, 4]).logits
    assert torch.equal(logits.argmax(-1), seq)


def test_generate_cfg_combines_cond_and_null_logits():
    model = tiny_model()
    seq = model.generate([1, 3], cfg_scale=3.0, top_k=1, max_new_tokens=6)
    cond = model(seq, class_labels=[1, 3]).logits
    uncond = model(seq, class_labels=[5, 5]).logits
    guided = uncond + 3.0 * (cond - uncond)
    assert torch.equal(guided.argmax(-1), seq)
    assert not torch.equal(seq, model.generate([1, 3], top_k=1, max_new_tokens=6))


def test_cfg_interval_switches_to_conditional_logits():
    model = tiny_model()
    always = model.generate([1, 3], cfg_scale=3.0, top_k=1)
    assert torch.equal(always, model.generate([1, 3], cfg_scale=3.0, cfg_interval=20, top_k=1))
    seq = model.generate([1, 3], cfg_scale=3.0, cfg_interval=2, top_k=1)
    cond = model(seq, class_labels=[1, 3]).logits
    uncond = model(seq, class_labels=[5, 5]).logits
    guided = uncond + 3.0 * (cond - uncond)
    # official indexing: tokens 0 .. cfg_interval + 1 guided, later ones conditional only
    assert torch.equal(guided[:, :4].argmax(-1), seq[:, :4])
    assert torch.equal(cond[:, 4:].argmax(-1), seq[:, 4:])
    assert torch.equal(seq, model.generate([1, 3], cfg_scale=3.0, cfg_interval=2, top_k=1, use_cache=False))


def test_seeded_sampling_is_reproducible_and_seed_dependent():
    model = tiny_model()
    kw = dict(cfg_scale=1.5, temperature=1.0, top_k=0, top_p=0.95)
    a = model.generate([0, 1, 2, 3], generator=torch.Generator().manual_seed(7), **kw)
    b = model.generate([0, 1, 2, 3], generator=torch.Generator().manual_seed(7), **kw)
    c = model.generate([0, 1, 2, 3], generator=torch.Generator().manual_seed(8), **kw)
    nc = model.generate([0, 1, 2, 3], generator=torch.Generator().manual_seed(7), use_cache=False, **kw)
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(a, nc)
    state = torch.random.get_rng_state()
    model.generate([0], generator=torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


def test_logits_mask_hook_restricts_each_step():
    model = tiny_model()
    seen = []

    def mask_fn(step, sequences):
        seen.append(step)
        allowed = torch.zeros(37, dtype=torch.bool)
        allowed[[step, step + 20]] = True  # a step-dependent vocabulary
        if step > 0:  # and one that depends on the previous tokens (no host sync)
            allowed = allowed.expand(sequences.shape[0], 37).clone()
            allowed.scatter_(1, sequences[:, step - 1 : step], True)
        return allowed

    seq = model.generate([0, 4], temperature=1.0, generator=torch.Generator().manual_seed(0), logits_mask_fn=mask_fn)
    assert seen == list(range(11))
    for step in range(11):
        ok = (seq[:, step] == step) | (seq[:, step] == step + 20)
        if step > 0:
            ok |= seq[:, step] == seq[:, step - 1]
        assert bool(ok.all())


def test_generate_restores_training_mode_and_calls_back():
    model = tiny_model().train()
    steps = []
    model.generate([1], top_k=1, max_new_tokens=4, step_callback=steps.append)
    assert model.training and steps == [0, 1, 2, 3]


def test_generate_compiled_step_has_no_graph_break():
    model = tiny_model()
    ref = model.generate([0, 3], cfg_scale=1.5, top_k=1, max_new_tokens=7)
    out = model.generate(
        [0, 3], cfg_scale=1.5, top_k=1, max_new_tokens=7, kv_block_size=8,
        compile={"backend": "eager", "fullgraph": True},
    )
    assert torch.equal(out, ref)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(class_labels=[0, 5]), "class_labels"),  # 5 = null is fine, 6 is not
        (dict(class_labels=[6]), "class_labels"),
        (dict(class_labels=[-1]), "class_labels"),
        (dict(class_labels=torch.tensor([[0]])), "class_labels"),
        (dict(class_labels=None), "class_labels"),
        (dict(class_labels=[0], cond_ids=torch.zeros(1, 4, dtype=torch.long)), "cond_ids"),
        (dict(class_labels=[0], cfg_scale=0.5), "cfg_scale"),
        (dict(class_labels=[0], temperature=-1.0), "temperature"),
        (dict(class_labels=[0], top_k=-2), "top_k"),
        (dict(class_labels=[0], top_p=0.0), "top_p"),
        (dict(class_labels=[0], max_new_tokens=12), "max_new_tokens"),
        (dict(class_labels=[0], cfg_interval=-3), "cfg_interval"),
    ],
)
def test_generate_bad_inputs_class_conditional(kwargs, match):
    model = tiny_model()
    if kwargs.get("class_labels") == [0, 5]:
        assert model.generate(top_k=1, max_new_tokens=2, **kwargs).shape == (2, 2)
        return
    with pytest.raises(ValueError, match=match):
        model.generate(**kwargs)


def test_generate_bad_inputs_frame_prediction():
    model = tiny_model(frame_prediction=True, num_cond_tokens=5)
    cond = torch.randint(0, 37, (2, 4))
    with pytest.raises(ValueError, match="guidance"):
        model.generate(cond_ids=cond, cfg_scale=1.25)
    with pytest.raises(ValueError, match="cond_ids"):
        model.generate(cond_ids=torch.randint(0, 37, (2, 3)))
    with pytest.raises(ValueError, match="cond_ids"):
        model.generate(cond_ids=torch.full((2, 5), 38))
    with pytest.raises(ValueError, match="cond_ids"):
        model.generate()
    with pytest.raises(ValueError, match="class_labels"):
        model.generate(class_labels=[0], cond_ids=cond)
    with pytest.raises(TypeError, match="cond_ids"):
        model.generate(cond_ids=cond.tolist())
    assert model.generate(cond_ids=cond, top_k=1).shape == (2, 11)


def test_forward_bad_inputs():
    model = tiny_model()
    ids = torch.randint(0, 37, (2, 11))
    with pytest.raises(ValueError, match="class_labels"):
        model(ids, class_labels=[0, 6])
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.randint(0, 37, (2, 12)), class_labels=[0, 1])
    with pytest.raises(ValueError, match="batch"):
        model(ids, class_labels=[0])
    with pytest.raises(ValueError, match="labels"):
        model(ids, class_labels=[0, 1], labels=ids[:, :5])


def test_class_labels_of_the_wrong_type_are_refused():
    """generate(class_labels=[2.9]) / [True] silently became classes 2 / 1; names need to be classes of id2label."""
    from hf_vidtok.models.video_ar import class_label_ids

    model = tiny_model()
    config = model.config
    for bad, message in (([2.9], "float 2.9"), ([True], "bool True"), (torch.tensor([1.0, 2.0]), "dtype torch.float32"),
                         (torch.tensor([True]), "dtype torch.bool"), ([None], "NoneType")):  # fmt: skip
        with pytest.raises(TypeError, match=message):
            model.generate(class_labels=bad, top_k=1)
    with pytest.raises(ValueError, match=r"unknown class name 'Biking' in `class_labels`"):
        model.generate(class_labels=["Biking"], top_k=1)
    names = [config.id2label[i] for i in range(config.num_classes)]
    assert class_label_ids([names[2], 0, np.int64(1), torch.tensor(3)], config) == [2, 0, 1, 3]
    assert class_label_ids(names[1].upper(), config) == [1]
    by_name = model.generate(class_labels=[names[2], names[0]], top_k=1)
    assert torch.equal(by_name, model.generate(class_labels=[2, 0], top_k=1))
    with pytest.raises(ValueError, match="out of range"):
        class_label_ids([config.num_classes], config)
    assert class_label_ids([config.num_classes, -1], config, allow_null=True, allow_negative=True) == [config.num_classes, -1]
    with pytest.raises(ValueError, match="empty"):
        class_label_ids([], config)

"""Official-fixture parity and converter coverage for the LARP tokenizer."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from hf_vidtok import LarpTokenizer
from hf_vidtok.models.larp.convert_larp_original_to_hf import (
    KEY_TABLE,
    ConversionError,
    convert_config,
    convert_state_dict,
    load_original_model,
    main,
)

ATOL = RTOL = 1e-5


@pytest.fixture(scope="module")
def official(larp_fixture_dir):
    model = load_original_model(str(larp_fixture_dir))
    inputs = load_file(larp_fixture_dir / "inputs.safetensors")
    outputs = load_file(larp_fixture_dir / "outputs.safetensors")
    return model, inputs["video"], outputs


def test_fixture_parity_every_tensor(official):
    model, video, ref = official
    assert not model.training and model.quantizer.eval_deterministic
    with torch.no_grad():
        patches = model.embed_patches(video)
        hidden = model.encode_hidden(video)
        enc = model.encode(video)
        recon = model.decode_latents(enc.quantized)
        recon_idx = model.decode(enc.indices)
        prior_logits = model.compute_prior_logits(enc.quantized)
    pairs = {
        "patch_embed": patches,
        "encoder_out": hidden,
        "projected_z": enc.z_projected,
        "z_normalized": enc.z_normalized,
        "quantized": enc.quantized,
        "encoded": enc.latents,
        "recon": recon,
        "recon_from_indices": recon_idx,
        "prior_logits": prior_logits,
    }
    for name, value in pairs.items():
        assert value.shape == ref[name].shape, name
        torch.testing.assert_close(value, ref[name], atol=ATOL, rtol=RTOL, msg=name)
    assert enc.indices.dtype == torch.long
    assert torch.equal(enc.indices, ref["indices"])
    torch.testing.assert_close(recon_idx, recon, atol=1e-5, rtol=0)
    ce = F.cross_entropy(prior_logits.reshape(-1, prior_logits.shape[-1]), enc.indices[:, 1:].reshape(-1))
    for name, value in {
        "prior_ce": ce,
        "loss_q": enc.vq_loss,
        "loss_commit": enc.commitment_loss,
        "loss_codebook": enc.codebook_loss,
    }.items():
        assert abs(value.item() - ref[name].item()) <= 1e-5, name


def test_fixture_layer_norm_eps_matters(official):
    """Sanity check of the tolerance: eps 1e-6 in the blocks must fail parity (larp.md §9.1)."""
    model, video, ref = official
    for block in model.encoder.blocks:
        block.norm1.eps = block.norm2.eps = 1e-6
    try:
        with torch.no_grad():
            hidden = model.encode_hidden(video)
        assert (hidden - ref["encoder_out"]).abs().max() > 1e-5
    finally:
        for block in model.encoder.blocks:
            block.norm1.eps = block.norm2.eps = 1e-5


def test_converter_cli_writes_loadable_safetensors(larp_fixture_dir, tmp_path, official):
    model, video, ref = official
    out = tmp_path / "converted"
    assert main(["--input", str(larp_fixture_dir), "--output", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    loaded = LarpTokenizer.from_pretrained(out).eval()
    assert loaded.config.prior_name == "custom" and loaded.config.prior_num_layers == 2
    with torch.no_grad():
        assert torch.equal(loaded.encode(video).indices, ref["indices"])
        torch.testing.assert_close(loaded.decode(ref["indices"]), ref["recon_from_indices"], atol=ATOL, rtol=RTOL)


def _official_copy(src, dst, mutate_sd=None, mutate_cfg=None):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("ar", "ar_fp", "*puts.safetensors"))
    sd = load_file(dst / "model.safetensors")
    cfg = json.loads((dst / "config.json").read_text())
    if mutate_sd:
        mutate_sd(sd)
    if mutate_cfg:
        mutate_cfg(cfg)
    save_file(sd, dst / "model.safetensors")
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_converter_fails_on_unconsumed_key(larp_fixture_dir, tmp_path):
    src = _official_copy(larp_fixture_dir, tmp_path / "x", mutate_sd=lambda sd: sd.update(extra_thing=torch.zeros(3)))
    with pytest.raises(ConversionError, match="not consumed.*extra_thing"):
        load_original_model(str(src))


def test_converter_fails_on_missing_key(larp_fixture_dir, tmp_path):
    src = _official_copy(larp_fixture_dir, tmp_path / "x", mutate_sd=lambda sd: sd.pop("decoder.blocks.1.mlp.fc2.bias"))
    with pytest.raises(ConversionError, match="not filled.*decoder.blocks.1.mlp.fc2.bias"):
        load_original_model(str(src))


def test_converter_fails_on_shape_or_table_mismatch(larp_fixture_dir, tmp_path):
    def bad_pe(sd):
        sd["encoder_patch_pe"] = sd["encoder_patch_pe"] + 0.1

    src = _official_copy(larp_fixture_dir, tmp_path / "x", mutate_sd=bad_pe)
    with pytest.raises(ConversionError, match="sin-cos"):
        load_original_model(str(src))


def test_converter_without_prior_weights_keeps_fresh_prior_or_drops_it(larp_fixture_dir, tmp_path):
    def no_prior(sd):
        for k in [k for k in sd if k.startswith("prior_model.")]:
            sd.pop(k)

    src = _official_copy(larp_fixture_dir, tmp_path / "x", mutate_sd=no_prior)
    model = load_original_model(str(src))
    assert model.prior is not None
    dropped = load_original_model(str(larp_fixture_dir), drop_prior=True)
    assert dropped.prior is None and dropped.config.prior_name is None


def test_convert_config_rejects_unsupported_settings():
    base = json.loads(
        json.dumps(
            {
                "bottleneck": {
                    "name": "bottleneck",
                    "args": {"bottleneck_dim": 16, "norm": "none", "regularizer": {"name": "vq", "args": {}}},
                },
                "prior_model": {"name": "gptc-S", "args": {"l2_normalized": True}},
            }
        )
    )
    cfg = convert_config(base)
    assert (cfg.prior_num_layers, cfg.prior_num_heads, cfg.prior_hidden_size) == (12, 6, 384)
    assert cfg.encoder_depth == 6 and cfg.use_decoder_patch_query_token_type_embed is False  # class defaults
    for mutate in (
        lambda c: c.update(transformer_name="other"),
        lambda c: c["bottleneck"]["args"].update(norm="l2"),
        lambda c: c["bottleneck"]["args"]["regularizer"].update(name="skl"),
        lambda c: c["prior_model"].update(name="gptc-weird"),
        lambda c: c["prior_model"]["args"].update(fully_separated=True),
    ):
        c = json.loads(json.dumps(base))
        mutate(c)
        with pytest.raises(ConversionError):
            convert_config(c)


# ---- any official configuration: build an official-format export from one of ours via the inverse
# key table, then convert it back and compare outputs.
OFFICIAL_NAMES = {
    "patch_embed.proj": "x_embedder.proj",
    "pre_quant_proj": "bottleneck.in_linear",
    "post_quant_proj": "bottleneck.out_linear",
    "quantizer.embedding": "bottleneck.regularizer.embedding",
    "output_layer.norm": "final_layer.norm_final",
    "output_layer.linear": "final_layer.linear",
    "encoder_queries": "encoder_latent_query_embed",
    "encoder_patch_pe_t": "encoder_t_embed",
    "encoder_patch_pe_h": "encoder_h_embed",
    "encoder_patch_pe_w": "encode_w_embed",
    "decoder_patch_query_pe_t": "decoder_t_embed",
    "decoder_patch_query_pe_h": "decoder_h_embed",
    "decoder_patch_query_pe_w": "decoder_w_embed",
    "encoder_query_token_type_embed": "encoder_latent_query_token_type_embed",
    "decoder_patch_query_pe": "decoder_patch_query_embed",
    "prior.position_embeddings": "prior_model.pos_emb",
    "prior.norm": "prior_model.ln_f",
    "prior.head": "prior_model.head",
    "prior.input_proj": "prior_model.input_proj",
}


def _to_official_key(key):
    import re

    m = re.match(r"prior\.blocks\.(\d+)\.(.*)", key)
    if m:
        rest = m.group(2)
        for a, b in (("norm1", "ln1"), ("norm2", "ln2"), ("attn.q_proj", "attn.query"), ("attn.k_proj", "attn.key"),
                     ("attn.v_proj", "attn.value"), ("attn.o_proj", "attn.proj"), ("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.2")):
            if rest.startswith(a):
                return f"prior_model.blocks.{m.group(1)}.{b}{rest[len(a):]}"
    for ours, theirs in sorted(OFFICIAL_NAMES.items(), key=lambda kv: -len(kv[0])):
        if key == ours or key.startswith(ours + "."):
            return theirs + key[len(ours):]
    return key


def _official_config_dict(cfg):
    d = {k: getattr(cfg, k) for k in (
        "bottleneck_token_num", "input_size", "frame_num", "temporal_patch_size", "patch_size",
        "decoder_temporal_patch_size", "decoder_patch_size", "in_channels", "latent_pe_scale_factor",
        "query_init_std", "encoder_hidden_size", "decoder_hidden_size", "encoder_num_heads", "decoder_num_heads",
        "encoder_depth", "decoder_depth", "learned_encoder_patch_pe", "learned_encoder_latent_query_embed",
        "learned_decoder_latent_pe", "learned_decoder_patch_query_embed", "use_encoder_patch_token_type_embed",
        "use_encoder_latent_query_token_type_embed", "use_decoder_latent_token_type_embed",
        "use_decoder_patch_query_token_type_embed", "encoder_query_gaussian_init")}
    d.update(transformer_name="transformer_encoder_parallel", encoder_name="none", decoder_name="none")
    d["bottleneck"] = {"name": "bottleneck", "args": {"bottleneck_dim": cfg.bottleneck_dim, "norm": "none",
        "regularizer": {"name": "vq", "args": {"codebook_size": cfg.codebook_size, "l2_normalized": True,
        "stochastic": True, "stochastic_temperature": 0.03, "commitment_loss_weight": 0.25,
        "codebook_loss_weight": 1.0, "entropy_loss_weight": 0.0, "entropy_loss_temperature": 0.01}}}}
    if cfg.prior_name is None:
        d["prior_model"] = {"name": "none"}
    else:
        d["prior_model"] = {"name": "gptc-custom", "args": {"n_layer": cfg.prior_num_layers, "n_head": cfg.prior_num_heads,
            "n_embd": cfg.prior_hidden_size, "max_seq_len": cfg.prior_max_seq_len, "l2_normalized": True},
            "use_mix_ss": True, "mix_ss_max_ratio": 0.5, "mix_ss_peak_steps_ratio": 0.3, "n_rounds": 2,
            "avg_loss_over_rounds": True, "no_grad_before_last_round": False, "no_dropout": True,
            "latent_ce_temperature": 1.0}
    return d


@pytest.mark.parametrize(
    "overrides",
    [
        dict(temporal_patch_size=1, learned_encoder_patch_pe=True, learned_decoder_patch_query_embed=True),
        dict(temporal_patch_size=2, use_encoder_patch_token_type_embed=True,
             use_encoder_latent_query_token_type_embed=True, use_decoder_latent_token_type_embed=True,
             learned_decoder_latent_pe=True),
        dict(temporal_patch_size=4, learned_encoder_latent_query_embed=False, encoder_query_gaussian_init=False,
             prior_name=None, codebook_size=53, bottleneck_dim=6),
    ],
)
def test_converter_handles_other_official_configurations(tmp_path, overrides):
    from hf_vidtok import LarpTokenizerConfig

    kwargs = dict(frame_num=4, input_size=16, patch_size=8, encoder_hidden_size=32, decoder_hidden_size=32,
                  encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=2,
                  bottleneck_token_num=12, codebook_size=37, bottleneck_dim=8, prior_name="custom",
                  prior_num_layers=1, prior_num_heads=2, prior_hidden_size=16, prior_max_seq_len=16,
                  prior_embd_dropout=0.0, prior_resid_dropout=0.0, prior_attn_dropout=0.0)
    kwargs.update(overrides)
    torch.manual_seed(0)
    ours = LarpTokenizer(LarpTokenizerConfig(**kwargs)).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    # official exports hold the fixed tables as persistent buffers
    sd = {_to_official_key(k): v.clone() for k, v in ours.state_dict().items()}
    for name, buf in ours.named_buffers():
        sd[_to_official_key(name)] = buf.clone()
    if kwargs["temporal_patch_size"] == 1:
        assert sd["x_embedder.proj.weight"].dim() == 4  # timm 2-D PatchEmbed layout
    folder = tmp_path / "official"
    folder.mkdir()
    save_file(sd, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(_official_config_dict(ours.config)))
    converted = load_original_model(str(folder))
    video = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours.encode(video), converted.encode(video)
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(converted.decode(b.indices), ours.decode(a.indices), atol=0, rtol=0)
    for k, v in ours.state_dict().items():
        assert torch.equal(converted.state_dict()[k], v), k

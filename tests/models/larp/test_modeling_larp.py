"""ModelTester-style suite for LarpTokenizer over several tiny configurations."""

import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_vidtok import LarpTokenizer, LarpTokenizerConfig
from hf_vidtok.models.larp import LarpEncoderOutput, LarpTokenizerOutput


class LarpTokenizerTester:
    """Tiny odd sizes so that shape bugs show."""

    def __init__(self, batch_size=3, **overrides):
        self.batch_size = batch_size
        self.kwargs = dict(
            frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32,
            decoder_hidden_size=24, encoder_num_heads=2, decoder_num_heads=3, encoder_depth=2, decoder_depth=1,
            bottleneck_token_num=7, codebook_size=37, bottleneck_dim=5, prior_name="custom", prior_num_layers=1,
            prior_num_heads=2, prior_hidden_size=12, prior_max_seq_len=9,
        )
        self.kwargs.update(overrides)

    def get_config(self):
        return LarpTokenizerConfig(**self.kwargs)

    def prepare_config_and_inputs(self, seed=0):
        config = self.get_config()
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(self.batch_size, config.in_channels, config.frame_num, config.input_size, config.input_size, generator=g)
        return config, x

    def create_and_check_encode(self, model, x):
        out = model.encode(x)
        assert isinstance(out, LarpEncoderOutput)
        c = model.config
        assert out.indices.shape == (x.shape[0], c.bottleneck_token_num) and out.indices.dtype == torch.long
        assert out.quantized.shape == (x.shape[0], c.bottleneck_token_num, c.bottleneck_dim)
        assert int(out.indices.min()) >= 0 and int(out.indices.max()) < c.codebook_size
        torch.testing.assert_close(out.quantized.norm(dim=-1), torch.ones(out.indices.shape))
        return out

    def create_and_check_decode(self, model, x, enc):
        video = model.decode(enc.indices)
        assert video.shape == x.shape
        torch.testing.assert_close(model.decode_latents(enc.quantized), video, atol=1e-5, rtol=1e-5)
        return video


CONFIGS = {
    "tpatch1_learned_pe": dict(temporal_patch_size=1, learned_encoder_patch_pe=True, learned_decoder_patch_query_embed=True),
    "tpatch2_fixed_pe": dict(temporal_patch_size=2),
    "tpatch4_all_token_types": dict(
        temporal_patch_size=4, use_encoder_patch_token_type_embed=True, use_encoder_latent_query_token_type_embed=True,
        use_decoder_latent_token_type_embed=True, learned_decoder_latent_pe=True,
    ),
    "fixed_queries_no_prior": dict(learned_encoder_latent_query_embed=False, encoder_query_gaussian_init=False, prior_name=None),
}


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def tester(request):
    return LarpTokenizerTester(**CONFIGS[request.param])


def test_encode_decode_shapes(tester):
    config, x = tester.prepare_config_and_inputs()
    model = LarpTokenizer(config).eval()
    with torch.no_grad():
        enc = tester.create_and_check_encode(model, x)
        video = tester.create_and_check_decode(model, x, enc)
    # official init zeroes the output layer: an untrained tokenizer outputs exactly 0
    assert torch.count_nonzero(video) == 0


def test_eval_is_deterministic_and_official_stochastic_flag(tester):
    config, x = tester.prepare_config_and_inputs()
    model = LarpTokenizer(config).eval()
    with torch.no_grad():
        a, b = model.encode(x).indices, model.encode(x).indices
        assert torch.equal(a, b)
        z = model.encode(x).z_normalized
        assert torch.equal(a, (z @ model.quantizer.get_codebook().t()).argmax(-1))
        model.set_vq_eval_deterministic(False)  # the official eval behaviour: sampled tokens
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        s1, s2 = model.encode(x, generator=g1).indices, model.encode(x, generator=g2).indices
        assert torch.equal(s1, s2)
        draws = torch.stack([model.encode(x).indices for _ in range(20)])
        assert (draws != draws[0]).any(), "stochastic VQ never changed a token"


def test_forward_training_outputs_and_gradients_reach_every_parameter(tester):
    config, x = tester.prepare_config_and_inputs()
    model = LarpTokenizer(config).train()
    # give the zero-initialised output layer some weight so gradients flow to the decoder
    with torch.no_grad():
        model.output_layer.linear.weight.normal_(std=0.02)
    out = model(x, global_step=5, max_steps=10, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, LarpTokenizerOutput)
    assert out.reconstruction.shape == x.shape
    loss = (out.reconstruction - x).abs().mean() + 0.1 * out.vq_loss
    if model.prior is not None:
        assert out.prior_loss.ndim == 0 and torch.isfinite(out.prior_loss)
        assert 0.0 <= out.prior_top1_acc.item() <= out.prior_top5_acc.item() <= 1.0
        loss = loss + 0.06 * out.prior_loss
    else:
        assert out.prior_loss is None and out.prior_top1_acc is None
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert no_grad == []


def test_prior_loss_matches_hand_computation_without_scheduled_sampling():
    """At global_step 0 the mix ratio is 0: both rounds see the ground truth and the loss equals the
    teacher-forced CE; at the peak, round 2 differs and the loss changes."""
    tester = LarpTokenizerTester(prior_embd_dropout=0.0, prior_resid_dropout=0.0, prior_attn_dropout=0.0)
    config, x = tester.prepare_config_and_inputs()
    model = LarpTokenizer(config).train()
    g = torch.Generator().manual_seed(1)
    enc = model.encode(x, generator=g)
    loss0, _, _ = model.compute_prior_loss(enc.quantized, enc.indices, global_step=0, max_steps=10)
    logits = model.compute_prior_logits(enc.quantized)
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), enc.indices[:, 1:].reshape(-1))
    torch.testing.assert_close(loss0, expected)
    assert model.scheduled_sampling_ratio(3, 10) == pytest.approx(0.5 * 3 / 3)
    assert model.scheduled_sampling_ratio(1, 10) == pytest.approx(1 / 3 * 0.5)
    assert model.scheduled_sampling_ratio(9, 10) == 0.5
    loss_peak, _, _ = model.compute_prior_loss(enc.quantized, enc.indices, global_step=10, max_steps=10,
                                               generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(loss_peak, loss0)
    with pytest.raises(ValueError, match="global_step"):
        model(x)


def test_save_load_round_trip_bit_exact_and_automodel(tmp_path):
    tester = LarpTokenizerTester(**CONFIGS["tpatch4_all_token_types"])
    config, x = tester.prepare_config_and_inputs()
    model = LarpTokenizer(config).eval()
    with torch.no_grad():
        model.output_layer.linear.weight.normal_(std=0.02)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    auto_cfg = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(auto_cfg, LarpTokenizerConfig)
    ignore = {"transformers_version", "_name_or_path", "architectures"}
    got = {k: v for k, v in auto_cfg.to_dict().items() if k not in ignore}
    assert got == {k: v for k, v in config.to_dict().items() if k not in ignore}
    for loaded in (LarpTokenizer.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert type(loaded) is LarpTokenizer
        loaded.eval()
        sd_a, sd_b = model.state_dict(), loaded.state_dict()
        assert sd_a.keys() == sd_b.keys()
        assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
        for name, buf in model.named_buffers():
            assert torch.equal(buf, dict(loaded.named_buffers())[name]), name
        with torch.no_grad():
            ea, eb = model.encode(x), loaded.encode(x)
            assert torch.equal(ea.indices, eb.indices)
            assert torch.equal(model.decode(ea.indices), loaded.decode(eb.indices))


def test_fixed_tables_are_not_in_the_state_dict():
    model = LarpTokenizer(LarpTokenizerTester().get_config())
    keys = set(model.state_dict())
    assert "encoder_patch_pe" not in keys and "decoder_latent_pe" not in keys and "decoder_patch_query_pe" not in keys
    assert "encoder_queries" in keys


def test_bf16_and_compiled_graph_without_breaks():
    config, x = LarpTokenizerTester().prepare_config_and_inputs()
    model = LarpTokenizer(config).eval()
    with torch.no_grad():
        model.output_layer.linear.weight.normal_(std=0.02)
        ref = model.decode(model.encode(x).indices)
        bf = LarpTokenizer(config).eval()
        bf.load_state_dict(model.state_dict())
        bf = bf.to(torch.bfloat16)
        enc = bf.encode(x)  # float32 input is cast to the model dtype
        assert enc.indices.shape == (3, 7)
        out = bf.decode(enc.indices)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(bf.decode(model.encode(x).indices).float(), ref, atol=2e-2, rtol=5e-2)
        # fullgraph=True fails on any graph break (e.g. a host sync such as .item())
        torch._dynamo.reset()
        enc_c = torch.compile(model.encode, fullgraph=True, backend="eager")
        dec_c = torch.compile(model.decode, fullgraph=True, backend="eager")
        idx = enc_c(x).indices
        assert torch.equal(idx, model.encode(x).indices)
        torch.testing.assert_close(dec_c(idx), ref)
        model.train()
        fwd_c = torch.compile(model.forward, fullgraph=True, backend="eager")
        out = fwd_c(x, global_step=torch.tensor(3.0), max_steps=torch.tensor(10.0))
        assert torch.isfinite(out.prior_loss)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.rand(3, 4, 16, 16), ValueError, "5 dims"),
        (torch.rand(1, 4, 4, 16, 16), ValueError, "channels"),
        (torch.rand(1, 3, 6, 16, 16), ValueError, "frames"),
        (torch.rand(1, 3, 4, 16, 24), ValueError, "16x16"),
        (torch.randint(0, 255, (1, 3, 4, 16, 16), dtype=torch.uint8), TypeError, "floating-point"),
        ("video", TypeError, "torch.Tensor"),
    ],
)
def test_bad_pixel_values(bad, error, match):
    model = LarpTokenizer(LarpTokenizerTester().get_config())
    with pytest.raises(error, match=match) as exc:
        model.encode(bad)
    assert "pixel_values" in str(exc.value)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.full((2, 7), 37), ValueError, r"\[0, 37\)"),
        (torch.full((2, 7), -1), ValueError, r"\[0, 37\)"),
        (torch.zeros(2, 6, dtype=torch.long), ValueError, r"\(B, 7\)"),
        (torch.zeros(7, dtype=torch.long), ValueError, r"\(B, 7\)"),
        (torch.zeros(2, 7), TypeError, "integer"),
    ],
)
def test_bad_indices(bad, error, match):
    model = LarpTokenizer(LarpTokenizerTester().get_config())
    with pytest.raises(error, match=match) as exc:
        model.decode(bad)
    assert "indices" in str(exc.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frame_num=6, temporal_patch_size=4), "frame_num"),
        (dict(input_size=20, patch_size=8), "input_size"),
        (dict(encoder_hidden_size=30, encoder_num_heads=4), "encoder_hidden_size"),
        (dict(decoder_patch_size=4), "decoder_patch_size"),
        (dict(codebook_size=0), "codebook_size"),
        (dict(learned_encoder_latent_query_embed=False), "encoder_query_gaussian_init"),
        (dict(prior_name="gptc-Q"), "prior_name"),
        (dict(prior_name="gptc-S", bottleneck_token_num=2048), "prior_max_seq_len"),
        (dict(vq_stochastic_temperature=0.0), "vq_stochastic_temperature"),
    ],
)
def test_invalid_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LarpTokenizerConfig(**kwargs)


def test_release_config_sizes():
    """Default config = LARP-L-long: 172,179,984 parameters without the prior, 21,700,240 in gptc-S."""
    with torch.device("meta"):
        model = LarpTokenizer(LarpTokenizerConfig())
    n_prior = sum(p.numel() for p in model.prior.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    assert n_prior == 21_700_240
    assert n_all - n_prior == 172_179_984

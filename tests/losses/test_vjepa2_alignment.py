import pytest
import torch
from transformers import VJEPA2Config, VJEPA2Model

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.losses import VJepa2Alignment


@pytest.fixture(scope="module")
def vjepa2_dir(tmp_path_factory):
    """A tiny random V-JEPA 2 (crop 32, patch 4, tubelet 2) saved to disk: the local-folder branch."""
    torch.manual_seed(0)
    cfg = VJEPA2Config(patch_size=4, crop_size=32, frames_per_clip=4, tubelet_size=2, hidden_size=24,
                       num_attention_heads=2, num_hidden_layers=3, pred_hidden_size=12, pred_num_attention_heads=2,
                       pred_num_hidden_layers=1, num_pooler_layers=1)
    path = tmp_path_factory.mktemp("vjepa2")
    VJEPA2Model(cfg).save_pretrained(path)
    return path


def tiny_tokenizer():
    torch.manual_seed(0)
    cfg = EvatokTokenizerConfig(image_size=16, num_frames=8, patch_size=4, temporal_patch_size=4, token_levels=(2, 4),
                                hidden_size=16, num_attention_heads=2, encoder_layers=1, decoder_layers=2,
                                codebook_size=11, code_dim=4, align_decoder_layer=1)
    return EvatokTokenizer(cfg).train()


def test_crop_size_override_shapes_and_frozen_backbone(vjepa2_dir):
    align = VJepa2Alignment(vjepa2_dir, decoder_hidden_size=16, temporal_patch_size=4, input_size=16)
    assert align.backbone.config.crop_size == 16 and align.input_size == 16 and align.split_ratio == 2
    assert align.backbone.predictor is None and not align.backbone.training
    assert all(not p.requires_grad for p in align.backbone.parameters())
    assert {id(p) for p in align.trainable_parameters()} == {id(p) for p in align.projector.parameters()}
    feat = align.target_features(torch.rand(2, 3, 8, 16, 16))
    assert feat.shape == (2, 4, 4, 4, 24)
    align.train()
    assert not align.backbone.training


def test_target_features_match_the_backbone(vjepa2_dir):
    align = VJepa2Alignment(vjepa2_dir, decoder_hidden_size=16, input_size=16, feature_layer=2)
    x = torch.rand(1, 3, 8, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
    ref = VJEPA2Model.from_pretrained(vjepa2_dir, crop_size=16).eval()
    with torch.no_grad():
        hs = ref(((x - mean) / std).transpose(1, 2), skip_predictor=True, output_hidden_states=True).hidden_states[2]
    torch.testing.assert_close(align.target_features(x).flatten(1, 3), hs)


def test_gradients_reach_projector_and_tokenizer_not_backbone(vjepa2_dir):
    tok = tiny_tokenizer()
    # decoder grid 4x4 = V-JEPA 2 grid at input 16; and a coarser 8 px input (grid 2x2, pooled)
    for input_size in (16, 8):
        align = VJepa2Alignment(vjepa2_dir, decoder_hidden_size=16, temporal_patch_size=4, input_size=input_size)
        tok.zero_grad()
        x = torch.rand(2, 3, 8, 16, 16)
        out = tok(x, (4, 2), output_align_hidden_states=True)
        loss = align(out.align_hidden_states, x)
        assert loss.shape == () and -1 <= float(loss.detach()) <= 1
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in align.projector.parameters())
        assert all(p.grad is None for p in align.backbone.parameters())
        assert tok.decoder_layers[0].mlp.fc1.weight.grad.abs().sum() > 0
        assert tok.patch_embed.proj.weight.grad.abs().sum() > 0


def test_perfect_prediction_gives_minus_one(vjepa2_dir):
    align = VJepa2Alignment(vjepa2_dir, decoder_hidden_size=16, temporal_patch_size=4, input_size=16)
    x = torch.rand(1, 3, 8, 16, 16)
    target = align.target_features(x)
    align.project = lambda h: target.clone()
    assert float(align(torch.zeros(1, 2, 4, 4, 16), x)) == pytest.approx(-1.0, abs=1e-6)


def test_bad_inputs_raise(vjepa2_dir):
    align = VJepa2Alignment(vjepa2_dir, decoder_hidden_size=16, temporal_patch_size=4, input_size=16)
    x = torch.rand(1, 3, 8, 16, 16)
    with pytest.raises(ValueError, match="decoder_hidden_states"):
        align(torch.zeros(1, 2, 4, 16), x)
    with pytest.raises(ValueError, match="decoder_hidden_states"):
        align(torch.zeros(1, 2, 4, 4, 15), x)
    with pytest.raises(ValueError, match="pixel_values"):
        align(torch.zeros(1, 3, 4, 4, 16), x)
    with pytest.raises(ValueError, match="grid"):
        align(torch.zeros(1, 2, 3, 3, 16), x)
    with pytest.raises(TypeError, match="pixel_values"):
        align(torch.zeros(1, 2, 4, 4, 16), (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="temporal_patch_size"):
        VJepa2Alignment(vjepa2_dir, decoder_hidden_size=16, temporal_patch_size=3)
    with pytest.raises(ValueError, match="feature_layer"):
        VJepa2Alignment(vjepa2_dir, decoder_hidden_size=16, feature_layer=7)

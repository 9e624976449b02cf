import pytest
import torch
from transformers import VideoMAEConfig, VideoMAEModel, VJEPA2Config, VJEPA2Model

from hf_vidtok import EvatokTokenizer, EvatokTokenizerConfig
from hf_vidtok.losses import TransformerDiscriminator, VideoMAEDiscriminator, VJepa2Alignment
from hf_vidtok.losses.evatok_objective import EvatokGeneratorObjective, semantic_discriminator_loss


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("backbones")
    VJEPA2Model(VJEPA2Config(patch_size=4, crop_size=16, frames_per_clip=4, tubelet_size=2, hidden_size=24,
                             num_attention_heads=2, num_hidden_layers=2, pred_hidden_size=12, pred_num_attention_heads=2,
                             pred_num_hidden_layers=1, num_pooler_layers=1)).save_pretrained(root / "vjepa2")
    VideoMAEModel(VideoMAEConfig(image_size=16, patch_size=4, num_frames=8, tubelet_size=2, hidden_size=24,
                                 num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)).save_pretrained(root / "videomae")
    return root


def tokenizer():
    torch.manual_seed(0)
    return EvatokTokenizer(EvatokTokenizerConfig(
        image_size=16, num_frames=8, patch_size=4, temporal_patch_size=4, token_levels=(2, 4), hidden_size=16,
        num_attention_heads=2, encoder_layers=1, decoder_layers=2, codebook_size=11, code_dim=4)).train()


def test_weights_combine_the_parts(backbones):
    tok = tokenizer()
    disc = TransformerDiscriminator(hidden_size=16, num_heads=2, depth=1, patch_size=8, temporal_patch_size=4, input_size=16, num_frames=8)
    align = VJepa2Alignment(backbones / "vjepa2", decoder_hidden_size=16, temporal_patch_size=4)
    sem = VideoMAEDiscriminator(backbones / "videomae", key_layers=(1, 2), kernel_size=3, head_channels=8)
    obj = EvatokGeneratorObjective(None, disc, alignment=align, semantic_discriminator=sem, perceptual_weight=0.0)
    x = torch.rand(2, 3, 8, 16, 16)
    out = tok(x, generator=torch.Generator().manual_seed(0), output_align_hidden_states=True)
    parts = obj(x, out, global_step=10)
    expected = (parts.pixel_loss + 0.3 * parts.adversarial_loss + 0.25 * parts.commitment_loss + parts.codebook_loss
                + 0.02 * parts.entropy_loss + 0.7 * parts.alignment_loss + 0.5 * parts.semantic_adversarial_loss)
    torch.testing.assert_close(parts.loss, expected)
    torch.testing.assert_close(parts.pixel_loss, (out.reconstruction - x).abs().mean())
    assert parts.entropy_loss != 0 and parts.alignment_loss != 0 and parts.semantic_adversarial_loss != 0
    parts.loss.backward()
    assert tok.patch_embed.proj.weight.grad.abs().sum() > 0 and tok.quantizer.embedding.weight.grad is not None
    assert all(p.grad is not None for p in align.projector.parameters())
    # discriminators are not updated by the generator loss; backbones stay frozen
    assert all(p.grad is None for p in (*disc.parameters(), *sem.heads.parameters(), *sem.backbone.parameters()))
    d_loss = semantic_discriminator_loss(sem, x, out.reconstruction)
    d_loss.backward()
    assert all(p.grad is not None for p in sem.heads.parameters())


def test_optional_terms_and_errors(backbones):
    tok = tokenizer()
    obj = EvatokGeneratorObjective(None, None, perceptual_weight=0.0, adversarial_weight=0.0)
    x = torch.rand(2, 3, 8, 16, 16)
    out = tok(x, (4, 2))
    parts = obj(x, out)
    assert parts.alignment_loss == 0 and parts.semantic_adversarial_loss == 0 and parts.adversarial_loss == 0
    align = VJepa2Alignment(backbones / "vjepa2", decoder_hidden_size=16, temporal_patch_size=4)
    with pytest.raises(ValueError, match="output_align_hidden_states"):
        EvatokGeneratorObjective(None, None, alignment=align, perceptual_weight=0.0, adversarial_weight=0.0)(x, out)
    with pytest.raises(ValueError, match="reconstruction"):
        obj(x, object())

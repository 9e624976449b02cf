import pytest
import torch
import torch.nn.functional as F

from hf_vidtok.losses import (
    OFFICIAL_LECAM_WEIGHT,
    LarpDiscriminatorObjective,
    LarpGeneratorObjective,
    TransformerDiscriminator,
    ns_smooth_discriminator_loss,
)
from hf_vidtok.metrics import LPIPS

TINY_D = dict(hidden_size=32, num_heads=2, depth=1, patch_size=8, temporal_patch_size=2, input_size=16, num_frames=4)


@pytest.fixture(scope="module")
def lpips():
    torch.manual_seed(0)
    m = LPIPS()
    with torch.no_grad():
        for lin in m.lins:
            lin.weight.uniform_(0, 1)
    return m


@pytest.fixture
def disc():
    torch.manual_seed(1)
    return TransformerDiscriminator(**TINY_D)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 4, 16, 16, generator=g)
    x_hat = x + 0.1 * torch.randn(x.shape, generator=g)  # unclamped, as the decoder returns it
    return x, x_hat


def test_generator_objective_official_weights_and_parts(lpips, disc):
    x, x_hat = _batch()
    x_hat.requires_grad_(True)
    vq, prior = torch.tensor(0.7), torch.tensor(2.5)
    objective = LarpGeneratorObjective(lpips, disc)
    out = objective(x, reconstruction=x_hat, vq_loss=vq, prior_loss=prior)
    pixel = (x - x_hat).abs().mean()
    frames = lambda v: v.transpose(1, 2).reshape(-1, 3, 16, 16)  # noqa: E731
    perceptual = lpips(frames(x_hat), frames(x)).mean()
    adversarial = F.softplus(-disc(x_hat)).mean()
    torch.testing.assert_close(out.pixel_loss, pixel)
    torch.testing.assert_close(out.perceptual_loss, perceptual)
    torch.testing.assert_close(out.adversarial_loss, adversarial)
    expected = pixel + perceptual + 0.3 * adversarial + 0.1 * vq + 0.06 * prior
    torch.testing.assert_close(out.loss, expected)
    # gradients reach the reconstruction only; the discriminator stays trainable afterwards
    out.loss.backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())
    assert all(p.requires_grad for p in disc.parameters())


def test_generator_objective_with_model_output_start_step_and_errors(lpips, disc):
    x, x_hat = _batch(1)

    class Out:  # the LarpTokenizerOutput fields the objective reads
        reconstruction, vq_loss, prior_loss = x_hat, torch.tensor(0.3), None

    objective = LarpGeneratorObjective(lpips, disc, adversarial_start_step=10)
    early = objective(x, Out(), global_step=3)
    late = objective(x, Out(), global_step=10)
    assert early.adversarial_loss.item() == 0.0 and early.prior_loss.item() == 0.0
    torch.testing.assert_close(late.loss - early.loss, 0.3 * late.adversarial_loss)
    with pytest.raises(ValueError, match="must match"):
        objective(x, reconstruction=x_hat[:, :, :2])
    with pytest.raises(ValueError, match="not both"):
        objective(x, Out(), reconstruction=x_hat)
    with pytest.raises(ValueError, match="discriminator"):
        LarpGeneratorObjective(lpips, None)
    no_gan = LarpGeneratorObjective(lpips, None, adversarial_weight=0.0)
    assert no_gan(x, Out()).adversarial_loss.item() == 0.0


def test_generator_objective_on_a_larp_tokenizer_output(lpips, disc):
    from hf_vidtok import LarpTokenizer, LarpTokenizerConfig

    torch.manual_seed(0)
    config = LarpTokenizerConfig(
        frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32,
        decoder_hidden_size=32, encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1,
        bottleneck_token_num=8, codebook_size=37, bottleneck_dim=8, prior_name=None,
    )  # fmt: skip
    model = LarpTokenizer(config)
    x, _ = _batch(2)
    output = model(x)
    out = LarpGeneratorObjective(lpips, disc)(x, output)
    expected = (
        (x - output.reconstruction).abs().mean() + out.perceptual_loss + 0.3 * out.adversarial_loss + 0.1 * output.vq_loss
    )
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_discriminator_objective_ns_smooth_plus_lecam(disc):
    x, x_hat = _batch(3)
    x_hat.requires_grad_(True)
    objective = LarpDiscriminatorObjective(disc)
    assert objective.lecam_weight == OFFICIAL_LECAM_WEIGHT == pytest.approx(1e-6)
    out = objective(x, x_hat, generator=torch.Generator().manual_seed(4))
    real_logits, fake_logits = disc(x), disc(x_hat.detach())
    d_loss = ns_smooth_discriminator_loss(real_logits, fake_logits, generator=torch.Generator().manual_seed(4))
    reg = torch.relu(real_logits.mean()).pow(2) + torch.relu(-fake_logits.mean()).pow(2)  # EMAs were 0
    torch.testing.assert_close(out.adversarial_loss, d_loss)
    torch.testing.assert_close(out.lecam_loss, reg)
    torch.testing.assert_close(out.loss, d_loss + 1e-6 * reg)
    assert objective.lecam.lecam_ema_real.item() == pytest.approx(0.001 * real_logits.mean().item(), rel=1e-5)
    out.loss.backward()
    assert x_hat.grad is None  # the fake video is detached
    assert disc.fc.weight.grad is not None
    assert objective.is_update_step(10) and not objective.is_update_step(11)
    assert set(objective.state_dict()) >= {"lecam.lecam_ema_real", "lecam.lecam_ema_fake", "discriminator.fc.bias"}
    with pytest.raises(ValueError, match="loss_type"):
        LarpDiscriminatorObjective(disc, loss_type="wgan")
    with pytest.raises(ValueError, match="same shape"):
        objective(x, x_hat[:1])
    hinge = LarpDiscriminatorObjective(disc, loss_type="hinge", lecam_weight=0.0)(x, x_hat)
    assert hinge.lecam_loss.item() == 0.0

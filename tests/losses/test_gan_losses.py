import math

import pytest
import torch
import torch.nn.functional as F

from hf_vidtok.losses import (
    LeCamRegularizer,
    discriminator_loss,
    generator_adversarial_loss,
    hinge_discriminator_loss,
    non_saturating_discriminator_loss,
    ns_smooth_discriminator_loss,
)


def test_ns_smooth_uses_generator_noise_and_clamps():
    real = torch.tensor([[1.5], [-0.3], [0.2]])
    fake = torch.tensor([[-2.0], [0.4], [0.0]])
    loss = ns_smooth_discriminator_loss(real, fake, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    nr = torch.randn(real.shape, generator=g).abs()
    nf = torch.randn(fake.shape, generator=g).abs()
    t_real = (1 - 0.15 * nr).clamp(min=0.7)
    t_fake = (0.15 * nf).clamp(max=0.3)
    bce = lambda x, t: (-(t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x))).mean()  # noqa: E731
    assert loss.item() == pytest.approx((bce(real, t_real) + bce(fake, t_fake)).item(), rel=1e-6)
    again = ns_smooth_discriminator_loss(real, fake, generator=torch.Generator().manual_seed(7))
    other = ns_smooth_discriminator_loss(real, fake, generator=torch.Generator().manual_seed(8))
    assert again.item() == loss.item() and other.item() != loss.item()
    # zero logits: BCE = log 2 whatever the (smoothed) target
    z = torch.zeros(4, 1)
    assert ns_smooth_discriminator_loss(z, z, torch.Generator().manual_seed(0)).item() == pytest.approx(2 * math.log(2))
    # huge smoothing: every target clamps to 0.7 / 0.3 exactly
    x = torch.tensor([[2.0]])
    expected = bce(x, torch.tensor([[0.7]])) + bce(-x, torch.tensor([[0.3]]))
    assert ns_smooth_discriminator_loss(x, -x, smoothing=100.0).item() == pytest.approx(expected.item(), rel=1e-6)


def test_hinge_ns_and_generator_losses_known_values():
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.5])
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert non_saturating_discriminator_loss(real, fake).item() == pytest.approx(
        (sp(-2) + sp(-0.5)) / 2 + (sp(-2) + sp(0.5)) / 2, rel=1e-6
    )
    assert generator_adversarial_loss(torch.zeros(3)).item() == pytest.approx(math.log(2))
    assert generator_adversarial_loss(fake).item() == pytest.approx((sp(2) + sp(-0.5)) / 2, rel=1e-6)
    assert discriminator_loss("hinge", real, fake).item() == hinge_discriminator_loss(real, fake).item()
    with pytest.raises(ValueError, match="loss_type"):
        discriminator_loss("wgan", real, fake)


def test_lecam_regularizer_values_and_ema():
    lecam = LeCamRegularizer(decay=0.9)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -3.0])
    # EMAs start at 0: relu(2 - 0)^2 + relu(0 - (-2))^2 = 8
    assert lecam(real, fake).item() == pytest.approx(8.0)
    assert lecam.lecam_ema_real.item() == pytest.approx(0.2) and lecam.lecam_ema_fake.item() == pytest.approx(-0.2)
    # second call uses the updated EMAs: relu(2 + 0.2)^2 + relu(0.2 + 2)^2
    assert lecam(real, fake, update_ema=False).item() == pytest.approx(2 * 2.2**2)
    assert lecam.lecam_ema_real.item() == pytest.approx(0.2)
    # relu: no penalty when D(x) is below ema_fake and D(x_hat) above ema_real
    lecam.lecam_ema_real.fill_(-5.0)
    lecam.lecam_ema_fake.fill_(5.0)
    assert lecam(real, fake, update_ema=False).item() == 0.0
    logits = torch.tensor([1.0], requires_grad=True)
    LeCamRegularizer()(logits, torch.tensor([0.0])).backward()
    assert logits.grad.item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="decay"):
        LeCamRegularizer(decay=1.0)

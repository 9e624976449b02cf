import pytest
import torch
import torch.nn.functional as F

from hf_vidtok.modules import VectorQuantizer


def test_argmax_selection_losses_and_straight_through():
    torch.manual_seed(0)
    vq = VectorQuantizer(11, 4).eval()
    z = torch.randn(2, 5, 4, requires_grad=True)
    out = vq(z)
    zn = F.normalize(z, dim=-1)
    cb = F.normalize(vq.embedding.weight, dim=-1)
    assert torch.equal(out.indices, (zn @ cb.t()).argmax(-1))
    q = cb[out.indices]
    torch.testing.assert_close(out.quantized, q)
    torch.testing.assert_close(out.commitment_loss, ((q - zn) ** 2).mean())
    torch.testing.assert_close(out.loss, 0.25 * out.commitment_loss + out.codebook_loss)
    out.quantized.sum().backward()  # straight-through: gradient reaches z
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_training_samples_with_temperature_and_generator():
    torch.manual_seed(0)
    vq = VectorQuantizer(7, 3, stochastic_temperature=10.0).train()  # hot: many different codes
    z = torch.randn(1, 400, 3)
    a = vq(z, generator=torch.Generator().manual_seed(5)).indices
    b = vq(z, generator=torch.Generator().manual_seed(5)).indices
    assert torch.equal(a, b)
    assert (a != vq.eval()(z).indices).float().mean() > 0.3


def test_mask_excludes_padding_from_losses():
    torch.manual_seed(0)
    vq = VectorQuantizer(9, 4).eval()
    z = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]).bool()
    out = vq(z, mask=mask)
    z_valid = torch.cat([z[0, :3], z[1]])[None]
    ref = vq(z_valid)
    torch.testing.assert_close(out.commitment_loss, ref.commitment_loss)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(B, N, 4\)"):
        VectorQuantizer(5, 4)(torch.randn(3, 4))


def test_sample_categorical_matches_distribution():
    from hf_vidtok.modules import sample_categorical

    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    draws = sample_categorical(probs.expand(40000, 4), generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)
    assert (draws != 1).all()
    # unnormalised rows, and a one-hot row is always hit
    assert torch.equal(sample_categorical(torch.tensor([[0.0, 0.0, 5.0]])), torch.tensor([2]))


@pytest.mark.parametrize("l2_normalized", [True, False])
def test_nearest_code_in_row_blocks_equals_the_full_argmax(l2_normalized):
    """A large codebook's argmax runs a few rows at a time (2**21 // 8192 = 256 rows here, 700 rows in all: three
    blocks, the last one short); ``return_logits=False`` skips the full similarity matrix, ``logits`` is then None,
    and the losses and codes are those of the full path."""
    torch.manual_seed(0)
    vq = VectorQuantizer(8192, 6, l2_normalized=l2_normalized).eval()
    z = torch.randn(2, 350, 6, requires_grad=True)
    full, lean = vq(z), vq(z, return_logits=False)
    assert full.logits.shape == (2, 350, 8192) and lean.logits is None
    assert torch.equal(full.indices, full.logits.argmax(-1)) and torch.equal(lean.indices, full.indices)
    for name in ("quantized", "loss", "commitment_loss", "codebook_loss"):
        assert torch.equal(getattr(lean, name), getattr(full, name)), name
    lean.quantized.sum().backward()
    assert z.grad.abs().sum() > 0
    # sampling (training) and the entropy loss need the similarities: return_logits=False does not drop them
    assert vq.train()(z, return_logits=False).logits is not None
    assert VectorQuantizer(64, 6, entropy_loss_weight=0.1).eval()(z, return_logits=False).logits is not None

import json

import pytest
import torch
from transformers import VideoMAEConfig, VideoMAEModel

from hf_vidtok.losses import VideoMAEDiscriminator, hinge_discriminator_loss, hinge_generator_loss


@pytest.fixture(scope="module")
def videomae_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = VideoMAEConfig(image_size=16, patch_size=4, num_frames=4, tubelet_size=2, hidden_size=24, num_hidden_layers=3,
                         num_attention_heads=2, intermediate_size=37)
    path = tmp_path_factory.mktemp("videomae")
    VideoMAEModel(cfg).save_pretrained(path)
    return path


def test_shapes_taps_and_frozen_backbone(videomae_dir):
    disc = VideoMAEDiscriminator(videomae_dir, key_layers=(0, 2, 3), kernel_size=3, head_channels=8, virtual_batch_size=2)
    assert all(not p.requires_grad for p in disc.backbone.parameters())
    assert {id(p) for p in disc.trainable_parameters()} == {id(p) for p in disc.heads.parameters()}
    assert disc.image_mean == (0.485, 0.456, 0.406)  # no preprocessor_config.json: ImageNet default
    x = torch.rand(4, 3, 4, 20, 20)  # resized to 16
    logits = disc(x)
    assert logits.shape == (4, 3 * 32)
    feats = disc.features(x)
    assert [f.shape for f in feats] == [(4, 32, 24)] * 3
    disc.train()
    assert not disc.backbone.training


def test_checkpoint_normalisation_is_read(videomae_dir, tmp_path):
    import shutil

    path = tmp_path / "with_processor"
    shutil.copytree(videomae_dir, path)
    (path / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    disc = VideoMAEDiscriminator(path, key_layers=(3,), kernel_size=3, head_channels=8)
    assert disc.image_mean == (0.5, 0.5, 0.5) and disc.image_std == (0.5, 0.5, 0.5)


def test_hinge_losses_and_gradients(videomae_dir):
    disc = VideoMAEDiscriminator(videomae_dir, key_layers=(1, 3), kernel_size=3, head_channels=8, gradient_checkpointing=True)
    disc.train()
    real = torch.rand(2, 3, 4, 16, 16)
    fake_param = torch.nn.Parameter(torch.rand(2, 3, 4, 16, 16))  # stands in for the tokenizer output
    d_loss = hinge_discriminator_loss(disc(real), disc(fake_param.detach()))
    d_loss.backward()
    assert all(p.grad is not None for p in disc.heads.parameters())
    assert all(p.grad is None for p in disc.backbone.parameters())
    disc.zero_grad()
    g_loss = hinge_generator_loss(disc(fake_param))
    g_loss.backward()
    assert fake_param.grad is not None and fake_param.grad.abs().sum() > 0  # through the frozen backbone
    assert all(p.grad is None for p in disc.backbone.parameters())
    logits = torch.tensor([[2.0, -0.5]])
    assert float(hinge_generator_loss(logits)) == pytest.approx(-0.75)


def test_bad_inputs_raise(videomae_dir):
    with pytest.raises(ValueError, match="key_layers"):
        VideoMAEDiscriminator(videomae_dir, key_layers=(0, 4))
    with pytest.raises(ValueError, match="kernel_size"):
        VideoMAEDiscriminator(videomae_dir, key_layers=(1,), kernel_size=4)
    disc = VideoMAEDiscriminator(videomae_dir, key_layers=(1,), kernel_size=3, head_channels=8)
    with pytest.raises(ValueError, match="frames"):
        disc(torch.rand(1, 3, 6, 16, 16))
    with pytest.raises(ValueError, match="pixel_values"):
        disc(torch.rand(1, 4, 16, 16))
    with pytest.raises(TypeError, match="pixel_values"):
        disc(torch.zeros(1, 3, 4, 16, 16, dtype=torch.uint8))

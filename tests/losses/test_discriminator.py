import math

import pytest
import torch
import torch.nn.functional as F

from hf_vidtok.losses import LarpDiscriminatorObjective, TransformerDiscriminator, convert_official_discriminator_state_dict
from hf_vidtok.modules.position_embeddings import sincos_3d

TINY = dict(hidden_size=32, num_heads=2, depth=2, patch_size=8, temporal_patch_size=2, input_size=16, num_frames=4)


def test_release_architecture_matches_official_state_dict():
    d = TransformerDiscriminator()
    sd = d.state_dict()
    assert len(sd) == 140
    assert sum(p.numel() for p in d.parameters()) == 38_205_953
    assert list(sd)[:4] == ["cls_token", "encoder_pos_embed", "x_embedder.proj.weight", "x_embedder.proj.bias"]
    assert list(sd)[-4:] == ["norm_final.weight", "norm_final.bias", "fc.weight", "fc.bias"]
    assert sd["encoder_pos_embed"].shape == (1, 1024, 512)
    assert sd["x_embedder.proj.weight"].shape == (512, 3, 4, 8, 8)
    assert sd["transformer_encoder.blocks.11.attn.qkv.weight"].shape == (1536, 512)
    assert "transformer_encoder.blocks.0.attn.qkv.bias" not in sd
    assert d.norm_final.eps == 1e-6 and d.transformer_encoder.blocks[0].norm1.eps == 1e-5


def _manual_forward(d: TransformerDiscriminator, x: torch.Tensor) -> torch.Tensor:
    """Independent re-statement of the official forward (timm Block written out)."""
    w = d.x_embedder.proj
    h = F.conv3d(x, w.weight, w.bias, stride=w.kernel_size).flatten(2).transpose(1, 2)
    pe = torch.from_numpy(sincos_3d(d.hidden_size, 2, 2)).float()
    h = torch.cat([d.cls_token.expand(x.shape[0], -1, -1), h + pe], dim=1)
    for blk in d.transformer_encoder.blocks:
        y = F.layer_norm(h, (d.hidden_size,), blk.norm1.weight, blk.norm1.bias, 1e-5)
        b, n, c = y.shape
        heads = blk.attn.num_heads
        q, k, v = (y @ blk.attn.qkv.weight.T).view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // heads), dim=-1)
        h = h + F.linear((att @ v).transpose(1, 2).reshape(b, n, c), blk.attn.proj.weight, blk.attn.proj.bias)
        y = F.layer_norm(h, (c,), blk.norm2.weight, blk.norm2.bias, 1e-5)
        h = h + F.linear(F.gelu(F.linear(y, blk.mlp.fc1.weight, blk.mlp.fc1.bias)), blk.mlp.fc2.weight, blk.mlp.fc2.bias)
    cls = F.layer_norm(h[:, 0], (d.hidden_size,), d.norm_final.weight, d.norm_final.bias, 1e-6)
    return F.linear(cls, d.fc.weight, d.fc.bias)


def test_forward_matches_manual_computation_and_validates_input():
    torch.manual_seed(0)
    d = TransformerDiscriminator(**TINY)
    with torch.no_grad():
        d.fc.bias.fill_(0.1)
        d.norm_final.weight.uniform_(0.5, 1.5)
    x = torch.rand(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    out = d(x)
    assert out.shape == (3, 1)
    torch.testing.assert_close(out, _manual_forward(d, x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"pixel_values.*\(B, 3, 4, 16, 16\)"):
        d(torch.rand(1, 3, 2, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        TransformerDiscriminator(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="num_frames"):
        TransformerDiscriminator(**{**TINY, "num_frames": 5})


def test_official_loss_state_dict_loads(tmp_path):
    torch.manual_seed(0)
    src = TransformerDiscriminator(**TINY)
    loss_sd = {f"discriminator.{k}": v.clone() for k, v in src.state_dict().items()}
    loss_sd["lecam_ema_real"] = torch.tensor([0.25])
    loss_sd["lecam_ema_fake"] = torch.tensor(-0.5)
    loss_sd["perceptual_loss.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
    assert set(convert_official_discriminator_state_dict(loss_sd)) == set(src.state_dict())

    torch.manual_seed(1)
    objective = LarpDiscriminatorObjective(TransformerDiscriminator(**TINY))
    objective.load_official_loss_state_dict(loss_sd)
    for k, v in src.state_dict().items():
        assert torch.equal(objective.discriminator.state_dict()[k], v)
    assert objective.lecam.lecam_ema_real.item() == 0.25 and objective.lecam.lecam_ema_fake.item() == -0.5
    with pytest.raises(RuntimeError, match="Missing key"):
        objective.load_official_loss_state_dict({k: v for k, v in loss_sd.items() if k != "discriminator.fc.bias"})

    # Hub-mixin round trip (config from the constructor arguments)
    src.save_pretrained(tmp_path / "disc")
    loaded = TransformerDiscriminator.from_pretrained(tmp_path / "disc")
    x = torch.rand(2, 3, 4, 16, 16)
    torch.testing.assert_close(loaded(x), src(x))

import sys
import types

import pytest
import torch
from safetensors.torch import save_file

from hf_vidtok.metrics import LPIPS, VGG16Features
from hf_vidtok.metrics.convert_lpips_weights import convert_lpips_state_dicts, load_state_dict_file, main
from hf_vidtok.metrics.lpips_vgg import VGG16_CONV_INDICES


def _torchvision_like_vgg_state_dict(seed=0):
    """A random VGG16 state dict with torchvision's key names (features.* + a classifier)."""
    torch.manual_seed(seed)
    feats = VGG16Features()
    for m in feats.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=(2.0 / (9 * m.in_channels)) ** 0.5)
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
    sd = {k: v.clone() for k, v in feats.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(4, 3)
    return sd


def _random_heads(seed=1):
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate((64, 128, 256, 512, 512))}


@pytest.fixture(scope="module")
def vgg_sd():
    return _torchvision_like_vgg_state_dict()


@pytest.fixture(scope="module")
def model(vgg_sd):
    m = LPIPS()
    m.load_state_dict(convert_lpips_state_dicts(vgg_sd, _random_heads()), strict=True)
    return m


def test_parameter_names_follow_torchvision_and_lpips():
    sd = LPIPS().state_dict()
    conv_keys = sorted(int(k.split(".")[2]) for k in sd if k.startswith("vgg.features.") and k.endswith("weight"))
    assert conv_keys == list(VGG16_CONV_INDICES)
    assert sd["vgg.features.28.weight"].shape == (512, 512, 3, 3)
    assert [tuple(sd[f"lins.{k}.weight"].shape) for k in range(5)] == [(1, c, 1, 1) for c in (64, 128, 256, 512, 512)]
    assert len(sd) == 26 + 5  # no scaling buffers in the file (they are constants)


def test_distance_properties_and_video_layout(model):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 3, 16, 24, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert torch.allclose(model(x, x), torch.zeros(2), atol=1e-7)
    per_video = model(y, x)
    assert per_video.shape == (2,) and bool((per_video > 0).all())
    frames = model(y.transpose(1, 2).reshape(-1, 3, 16, 24), x.transpose(1, 2).reshape(-1, 3, 16, 24))
    assert frames.shape == (6,)
    assert torch.allclose(per_video, frames.view(2, 3).mean(1), atol=1e-6)
    # symmetric, frozen, differentiable w.r.t. the input
    assert torch.allclose(model(x, y), per_video, atol=1e-6)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training
    yy = y.clone().requires_grad_(True)
    model(yy, x).sum().backward()
    assert yy.grad is not None and yy.grad.abs().sum() > 0


def test_bad_inputs(model):
    x = torch.rand(1, 3, 2, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        model(x, x[:, :, :1])
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(x[:, :2], x[:, :2])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(x[0, 0], x[0, 0])
    with pytest.raises(ValueError, match="at least 16x16"):
        model(x[..., :15], x[..., :15])


@pytest.fixture
def lpips_package(monkeypatch, vgg_sd):
    """Import the `lpips` package with a stand-in `torchvision` whose vgg16 is OUR VGG16Features
    holding the same random weights (torchvision cannot be imported next to torch 2.13 CPU)."""
    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")

    class _VGG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            f = VGG16Features()
            f.load_state_dict({k: v for k, v in vgg_sd.items() if k.startswith("features.")})
            self.features = f.features

    models.vgg16 = lambda pretrained=False, **kwargs: _VGG()
    tv.models = models
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    lpips = pytest.importorskip("lpips", reason="the lpips package is a test-only dependency (pip install --no-deps lpips)")
    monkeypatch.setattr(lpips.pretrained_networks, "tv", models)
    return lpips


def test_matches_lpips_package_with_same_weights(lpips_package, vgg_sd, tmp_path):
    """The lpips package (its ScalingLayer, normalisation, v0.1 heads from its own vgg.pth, spatial
    averaging and layer sum) on the same random VGG trunk gives the same distances."""
    import os

    ref = lpips_package.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
    heads_path = os.path.join(os.path.dirname(lpips_package.__file__), "weights", "v0.1", "vgg.pth")
    ours = LPIPS()
    ours.load_state_dict(convert_lpips_state_dicts(vgg_sd, load_state_dict_file(heads_path)), strict=True)
    # the same conversion from the package model's own full state dict
    full = {f"perceptual_loss.{k}": v for k, v in ref.state_dict().items()}
    from_full = convert_lpips_state_dicts(lpips_state_dict=full, prefix="perceptual_loss.")
    for k, v in ours.state_dict().items():
        assert torch.equal(from_full[k], v), k

    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 32, 24, generator=g)
    y = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        expected = ref(y, x, normalize=True).view(-1)
        got = ours(y, x)
    assert expected.abs().min() > 1e-3
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_converter_checks_coverage_and_constants(vgg_sd):
    heads = _random_heads()
    with pytest.raises(ValueError, match="missing target keys"):
        convert_lpips_state_dicts({k: v for k, v in vgg_sd.items() if k != "features.0.weight"}, heads)
    with pytest.raises(ValueError, match="unknown keys"):
        convert_lpips_state_dicts({**vgg_sd, "features.99.weight": torch.zeros(1)}, heads)
    bad = {**{f"net.slice1.{k.split('.')[1]}.{k.split('.')[2]}": v for k, v in vgg_sd.items() if k.startswith("features.")}, **heads}
    bad["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)
    with pytest.raises(ValueError, match="v0.1 constants"):
        convert_lpips_state_dicts(lpips_state_dict=bad)
    with pytest.raises(ValueError, match="shape"):
        convert_lpips_state_dicts(vgg_sd, {**heads, "lin0.model.1.weight": torch.zeros(1, 3, 1, 1)})


def test_converter_cli_and_from_pretrained_round_trip(vgg_sd, model, tmp_path):
    torch.save(vgg_sd, tmp_path / "vgg16.pth")
    torch.save(_random_heads(), tmp_path / "heads.pth")
    out = main(["--vgg", str(tmp_path / "vgg16.pth"), "--heads", str(tmp_path / "heads.pth"), "--output", str(tmp_path / "w")])
    loaded_dir = LPIPS.from_pretrained(tmp_path / "w")
    loaded_file = LPIPS.from_pretrained(out)
    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    assert torch.equal(loaded_dir(x, y), model(x, y))
    assert torch.equal(loaded_file(x, y), model(x, y))

    with pytest.raises(FileNotFoundError):
        LPIPS.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        LPIPS.from_pretrained(tmp_path / "nothing.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an hf_vidtok LPIPS file"):
        LPIPS.from_pretrained(tmp_path / "other.safetensors")

import math
import pickle
import zipfile

import pytest
import torch
from torch import nn

from hf_vidtok.metrics import InceptionI3D
from hf_vidtok.metrics.convert_i3d_weights import (
    convert_i3d_state_dict,
    load_i3d_source,
    main,
    read_torchscript_tensors,
)
from hf_vidtok.metrics.i3d import same_padding_3d

TINY = 16  # width divisor of the random stand-in network


def _randomized(model: InceptionI3D, seed=0) -> InceptionI3D:
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for k, v in sd.items():
        if v.is_floating_point():
            if k.endswith("running_var"):
                v.copy_(0.5 + torch.rand(v.shape, generator=g))
            elif k.endswith("conv3d.weight"):
                v.copy_(torch.randn(v.shape, generator=g) * math.sqrt(2.0 / v[0].numel()))
            else:
                v.copy_(0.1 * torch.randn(v.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def tiny():
    return _randomized(InceptionI3D(width_divisor=TINY))


def test_key_names_and_shapes_follow_pytorch_i3d():
    sd = InceptionI3D().state_dict()
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["Conv3d_2c_3x3.bn.running_var"].shape == (192,)
    assert sd["Mixed_3b.b1b.conv3d.weight"].shape == (128, 96, 3, 3, 3)
    assert sd["Mixed_5c.b3b.conv3d.weight"].shape == (128, 832, 1, 1, 1)
    assert sd["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert sd["logits.conv3d.bias"].shape == (400,)
    assert sum(k.endswith("conv3d.weight") for k in sd) == 3 + 9 * 6 + 1


def test_same_padding_matches_tensorflow_rule():
    for size, k, s in [(16, 7, 2), (15, 7, 2), (224, 3, 2), (7, 2, 2), (5, 3, 1)]:
        x = torch.zeros(1, 1, size, size, size)
        padded = same_padding_3d(x, (k, k, k), (s, s, s))
        out = (padded.shape[-1] - k) // s + 1
        assert out == math.ceil(size / s)
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)  # TF's formula
        assert padded.shape[-1] - size == total


def test_forward_shapes_and_errors(tiny):
    x = torch.rand(2, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        per_time = tiny(x, return_per_time=True)
        pooled = tiny(x)
    assert per_time.shape == (2, 400, 1) and pooled.shape == (2, 400)
    assert torch.allclose(pooled, per_time.mean(2))
    with torch.no_grad():  # batch independence (eval-mode batch norm)
        assert torch.allclose(tiny(x[:1]), pooled[:1], atol=1e-5)
    with pytest.raises(ValueError, match="T >= 9"):
        tiny(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        tiny(torch.zeros(1, 4, 16, 224, 224))
    with pytest.raises(ValueError, match="width_divisor"):
        InceptionI3D(width_divisor=0)


def test_pytorch_i3d_state_dict_converts_one_to_one(tiny):
    src = {f"module.{k}": v.clone() for k, v in tiny.state_dict().items() if not k.endswith("num_batches_tracked")}
    out = convert_i3d_state_dict(src, width_divisor=TINY)
    for k, v in tiny.state_dict().items():
        assert torch.equal(out[k], v), k
    with pytest.raises(ValueError, match="unexpected keys"):
        convert_i3d_state_dict({**src, "module.extra.weight": torch.zeros(1)}, width_divisor=TINY)
    bad = dict(src)
    bad["module.logits.conv3d.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        convert_i3d_state_dict(bad, width_divisor=TINY)


class _TFUnit(nn.Module):
    """A unit laid out as TF-Hub's I3D: kernel (kT, kH, kW, in, out), BN without scale."""

    def __init__(self, w, bias=None, beta=None, mean=None, var=None):
        super().__init__()
        self.w = nn.Parameter(w.permute(2, 3, 4, 1, 0).contiguous())
        if bias is not None:
            self.b = nn.Parameter(bias.clone())
        if beta is not None:
            self.beta = nn.Parameter(beta.clone())
            self.register_buffer("moving_mean", mean.clone())
            self.register_buffer("moving_variance", var.clone())

    def forward(self, x):
        return x


class _TFStyleNet(nn.Module):
    def __init__(self, model: InceptionI3D):
        super().__init__()
        sd = model.state_dict()
        units = []
        for key in sd:
            if key.endswith("conv3d.weight"):
                p = key[: -len("conv3d.weight")]
                if p + "bn.bias" in sd:
                    units.append(_TFUnit(sd[key], beta=sd[p + "bn.bias"], mean=sd[p + "bn.running_mean"], var=sd[p + "bn.running_var"]))
                else:
                    units.append(_TFUnit(sd[key], bias=sd[p + "conv3d.bias"]))
        self.units = nn.ModuleList(units)

    def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
        return x


def test_torchscript_archive_is_read_without_executing_it_and_converted(tmp_path):
    tiny = _randomized(InceptionI3D(width_divisor=TINY), seed=5)
    for k, v in tiny.state_dict().items():
        if k.endswith("bn.weight"):
            v.fill_(1.0)  # TF-Hub's batch norm has no scale: the converter fills 1
    scripted = torch.jit.script(_TFStyleNet(tiny))
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(scripted, str(path))

    tensors = read_torchscript_tensors(path)
    assert "units.0.w" in tensors and tensors["units.0.w"].shape == (7, 7, 7, 3, 4)
    assert set(load_i3d_source(path)) == set(tensors)
    out = convert_i3d_state_dict(tensors, width_divisor=TINY)
    for k, v in tiny.state_dict().items():
        assert torch.equal(out[k], v), k


def test_torchscript_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
        z.writestr("archive/code/__torch__.py", "")
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global .*print"):
        read_torchscript_tensors(path)


def test_save_load_round_trip_and_cli(tiny, tmp_path):
    path = tiny.save_pretrained(tmp_path / "w")
    loaded = InceptionI3D.from_pretrained(tmp_path / "w")
    assert loaded.width_divisor == TINY and loaded.num_classes == 400
    for k, v in tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert InceptionI3D.from_pretrained(path).width_divisor == TINY
    # the CLI writes the full-size network; feed it a full-size pytorch-i3d style .pt
    full = InceptionI3D()
    torch.save({k: v for k, v in full.state_dict().items() if not k.endswith("num_batches_tracked")}, tmp_path / "rgb.pt")
    out = main(["--input", str(tmp_path / "rgb.pt"), "--output", str(tmp_path / "conv" / "i3d.safetensors")])
    reloaded = InceptionI3D.from_pretrained(out)
    assert torch.equal(reloaded.state_dict()["Mixed_4d.b2b.conv3d.weight"], full.state_dict()["Mixed_4d.b2b.conv3d.weight"])

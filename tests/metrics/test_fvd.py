import math

import pytest
import torch
import torch.nn.functional as F

from hf_vidtok.metrics import FVD, InceptionI3D, preprocess_for_i3d


@pytest.fixture(scope="module")
def fvd():
    g = torch.Generator().manual_seed(0)
    i3d = InceptionI3D(width_divisor=16)
    for name, t in i3d.state_dict().items():  # He-normal kernels keep the signal alive through depth
        if name.endswith("conv3d.weight"):
            t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2.0 / t[0].numel()))
    return FVD(i3d)


def test_preprocess_resizes_and_maps_to_minus_one_one():
    x = torch.rand(2, 3, 4, 20, 30)
    y = preprocess_for_i3d(x, 224)
    assert y.shape == (2, 3, 4, 224, 224)
    frame = F.interpolate(x[:, :, 1], size=(224, 224), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[:, :, 1], frame * 2 - 1)
    same = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3, 1, 1).expand(1, 3, 3, 4, 4)
    assert preprocess_for_i3d(same, None)[0, 0, :, 0, 0].tolist() == [-1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_for_i3d(torch.rand(1, 1, 4, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        preprocess_for_i3d(torch.rand(1, 3, 4, 8, 8) + 1)


def test_fvd_of_a_set_with_itself_is_zero_and_streams(fvd):
    g = torch.Generator().manual_seed(1)
    videos = torch.rand(4, 3, 16, 32, 32, generator=g)
    fvd.reset()
    feats = torch.cat([fvd.update(videos[:2], real=True), fvd.update(videos[2:], real=True)])
    fvd.update_features(feats, real=False)
    assert feats.shape == (4, 400)
    assert abs(fvd.compute()) < 1e-6 * max(1.0, float(feats.var(0).sum()))
    # a different set is farther away; statistics survive a state-dict round trip
    fvd.reset(real=False)
    fvd.update(torch.rand(4, 3, 16, 32, 32, generator=g) * 0.3, real=False)
    value = fvd.compute()
    assert value > 1e-3 and math.isfinite(value)
    other = FVD(fvd.i3d)
    other.load_stats_state_dict(fvd.stats_state_dict())
    assert other.compute() == pytest.approx(value, rel=1e-12)
    fvd.gather()  # single process: a no-op
    assert fvd.compute() == pytest.approx(value, rel=1e-12)


def test_fvd_from_pretrained_local(fvd, tmp_path):
    fvd.i3d.save_pretrained(tmp_path)
    loaded = FVD.from_pretrained(tmp_path)
    assert loaded.i3d.width_divisor == 16
    x = torch.rand(1, 3, 16, 16, 16)
    torch.testing.assert_close(loaded.extract_features(x), fvd.extract_features(x))

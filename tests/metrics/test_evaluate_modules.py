import math

import pytest
import torch

pytest.importorskip("evaluate", reason="evaluate is an optional extra (pip install hf_vidtok[evaluate])")

from hf_vidtok.metrics import FVD, LPIPS, InceptionI3D, psnr, ssim  # noqa: E402
from hf_vidtok.metrics.evaluate_modules import FVDMetric, LPIPSMetric, PSNRMetric, SSIMMetric  # noqa: E402


def _pairs(seed=0, b=3):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(b, 3, 2, 16, 16, generator=g)
    fake = (real + 0.05 * torch.randn(real.shape, generator=g)).clamp(0, 1)
    return fake, real


def test_metrics_package_does_not_import_evaluate():
    """Only evaluate_modules.py may import evaluate / datasets (static check of the sources)."""
    import ast
    import pathlib

    import hf_vidtok.metrics

    for path in pathlib.Path(hf_vidtok.metrics.__file__).parent.glob("*.py"):
        if path.name == "evaluate_modules.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            assert not any(n.split(".")[0] in ("evaluate", "datasets") for n in names), path.name


def test_psnr_ssim_batches_and_compute(tmp_path):
    (f1, r1), (f2, r2) = _pairs(0), _pairs(1, b=2)
    m = PSNRMetric(cache_dir=str(tmp_path))
    m.add_batch(predictions=f1, references=r1)
    m.add_batch(predictions=f2.numpy(), references=r2.numpy())
    expected = psnr(torch.cat([f1, f2]), torch.cat([r1, r2])).item()
    assert m.compute()["psnr"] == pytest.approx(expected, rel=1e-12)
    s = SSIMMetric(cache_dir=str(tmp_path)).compute(predictions=f1, references=r1)["ssim"]
    assert s == pytest.approx(ssim(f1, r1).item(), rel=1e-12)
    with pytest.raises(TypeError, match="predictions"):
        PSNRMetric(cache_dir=str(tmp_path)).add_batch(predictions=[1, 2], references=r1)


def test_lpips_and_fvd_wrappers(tmp_path):
    torch.manual_seed(0)
    lpips = LPIPS()
    fake, real = _pairs(2, b=2)
    value = LPIPSMetric(lpips=lpips, cache_dir=str(tmp_path)).compute(predictions=fake, references=real)["lpips"]
    assert value == pytest.approx(lpips(fake, real).mean().item(), rel=1e-6)

    g = torch.Generator().manual_seed(0)
    i3d = InceptionI3D(width_divisor=16)
    for k, t in i3d.state_dict().items():
        if k.endswith("conv3d.weight"):
            t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2.0 / t[0].numel()))
    fvd = FVD(i3d)
    videos_r = torch.rand(3, 3, 10, 16, 16, generator=g)
    videos_g = torch.rand(3, 3, 10, 16, 16, generator=g) * 0.5
    metric = FVDMetric(fvd=fvd, cache_dir=str(tmp_path))
    metric.add_batch(predictions=videos_g, references=videos_r)
    result = metric.compute()["fvd"]
    fvd.update(videos_r, real=True)
    fvd.update(videos_g, real=False)
    assert result == pytest.approx(fvd.compute(), rel=1e-6)
    with pytest.raises(TypeError, match="fvd"):
        FVDMetric(fvd=lpips)
